"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from nurture.db.engine import (
    SQLITE_BUSY_MS,
    SQLITE_WAL_PAGES,
    alembic_config,
    current_revision,
    ensure_ready,
    head_revision,
    make_engine,
    upgrade,
)
from nurture.db.models import SCHEMA_REVISION, Base
from nurture.errors import DatabaseNotReadyError


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


def test_the_models_revision_is_the_newest_migration() -> None:
    """A new migration cannot land without the models saying they match it."""
    assert head_revision() == SCHEMA_REVISION


def test_a_database_behind_the_code_is_refused_by_name(empty_db_url: str) -> None:
    """At an older migration the check names both revisions and says what to run."""
    command.upgrade(alembic_config(empty_db_url), "0002")
    engine = make_engine(empty_db_url)
    try:
        assert current_revision(engine) == "0002"
        with pytest.raises(DatabaseNotReadyError) as refused:
            ensure_ready(engine)
        upgrade(empty_db_url)
        assert current_revision(engine) == SCHEMA_REVISION
        ensure_ready(engine)  # at the models' revision: no complaint
    finally:
        engine.dispose()
    assert "at migration 0002" in str(refused.value)
    assert f"needs {SCHEMA_REVISION}" in str(refused.value)
    assert "run `nurture db upgrade`" in str(refused.value)


def test_a_database_with_two_current_migrations_is_refused(empty_db_url: str) -> None:
    """Two rows in alembic_version (a branched history nurture never makes) stop the check."""
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0002b')"))
        with pytest.raises(DatabaseNotReadyError, match=r"several migrations .*0002b"):
            ensure_ready(engine)
    finally:
        engine.dispose()


def test_starting_a_worker_does_not_load_the_migration_tool(sqlite_url: str) -> None:
    """alembic (and the SQL dialects it pulls in) stays out of every tick's start-up."""
    probe = (
        "import sys\n"
        "import nurture.cli\n"
        "from nurture.db.engine import ensure_ready, make_engine\n"
        f"ensure_ready(make_engine({sqlite_url!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


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
