"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from nurture.db.engine import SQLITE_BUSY_MS, SQLITE_WAL_PAGES, head_revision, make_engine, upgrade
from nurture.db.models import Base


def test_upgrade_to_head_matches_models(empty_db_url: str) -> None:
    """An empty database upgraded to head has no difference from the models."""
    before, after = upgrade(empty_db_url)
    assert (before, after) == (None, head_revision())
    engine = create_engine(empty_db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert set(Base.metadata.tables) <= tables


def test_upgrade_twice_is_a_no_op(empty_db_url: str) -> None:
    """Running the upgrade on a database already at head changes nothing."""
    upgrade(empty_db_url)
    assert upgrade(empty_db_url) == (head_revision(), head_revision())


def test_every_sqlite_connection_gets_nurtures_settings(tmp_path: Path) -> None:
    """WAL with NORMAL sync, a long busy wait, foreign keys, a 40 MB log: on each connection."""
    engine = make_engine(f"sqlite:///{tmp_path / 'n.db'}", poolclass=NullPool)
    pragmas = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "wal_autocheckpoint")
    try:
        for _ in range(2):  # a new driver connection each time (NullPool)
            with engine.connect() as conn:
                seen = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in pragmas}
            assert seen == {
                "journal_mode": "wal",
                "synchronous": 1,  # NORMAL
                "busy_timeout": SQLITE_BUSY_MS,
                "foreign_keys": 1,
                "wal_autocheckpoint": SQLITE_WAL_PAGES,
            }
    finally:
        engine.dispose()
