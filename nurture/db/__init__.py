"""The database edge: typed models, engine and session factory, migrations."""
