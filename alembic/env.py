"""Alembic environment: run nurture's migrations online against one URL."""

from __future__ import annotations

from alembic import context

from nurture.db.engine import make_engine
from nurture.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate the database named by ``sqlalchemy.url`` in one transaction."""
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("nurture migrations run online only: use `nurture db upgrade`")
run_migrations_online()
