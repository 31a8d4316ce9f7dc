"""Engines, sessions and the migration check, for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import MIGRATIONS_DIR
from nurture.db.models import SCHEMA_REVISION
from nurture.errors import DatabaseNotReadyError

if TYPE_CHECKING:
    from alembic.config import Config

SQLITE_BUSY_MS = 30_000
#: Pages the write-ahead log grows to before a commit folds it into the file
#: (SQLite's default is 1,000, 4 MB).  A delivering worker commits once per
#: email; each fold syncs the disk twice and copies every page the log holds,
#: so folding a tenth as often syncs a tenth as often, and a page changed by
#: many commits (an index page, the table's upper levels) is copied once.
SQLITE_WAL_PAGES = 10_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine tuned for nurture's access pattern.

    On SQLite every transaction starts with ``BEGIN IMMEDIATE``: writers queue
    on the busy timeout instead of failing half-way, so two ticks at once are
    serialised by the database rather than racing.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000}, **kwargs)
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_PAGES}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: this runs for every transaction, and going
        # through Connection.exec_driver_sql costs more than the BEGIN itself.
        try:
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise sqlite_error("BEGIN IMMEDIATE", None, exc) from exc


def sqlite_error(statement: str, params: Any, exc: sqlite3.Error) -> StatementError:
    """A driver error from a statement run past SQLAlchemy, as SQLAlchemy would raise it.

    The same exception class (``OperationalError`` for a locked or missing
    database, ...), so callers that retry on an outage catch it either way.
    """
    return DBAPIError.instance(statement, params, exc, sqlite3.Error)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (stages read them later)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory.begin() as session:
        yield session


# alembic is imported where a migration is run or listed, not at start-up:
# with the SQL dialects it loads, it was a sixth of what a `nurture tick`
# process spent before doing anything.


def alembic_config(url: str) -> Config:
    """An alembic configuration pointing at nurture's migrations."""
    from alembic.config import Config  # noqa: PLC0415  (see above)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration in the migrations folder."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415  (see above)

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no nurture tables.

    ``DatabaseNotReadyError`` if it records more than one (nurture's migrations
    are one line; several heads mean it was migrated by something else).
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        revisions = sorted(
            str(v) for v in conn.scalars(text("SELECT version_num FROM alembic_version"))
        )
    if len(revisions) > 1:
        raise DatabaseNotReadyError(
            f"the database records several migrations as current ({', '.join(revisions)}); "
            "nurture's migrations are one line: restore the database or ask for help"
        )
    return revisions[0] if revisions else None


def upgrade(url: str) -> tuple[str | None, str]:
    """Apply every pending migration; return (revision before, revision after)."""
    from alembic import command  # noqa: PLC0415  (see above)

    engine = make_engine(url)
    try:
        before = current_revision(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "head")
    return before, head_revision()


def ensure_ready(engine: Engine) -> None:
    """Raise ``DatabaseNotReadyError`` unless the schema is the one the models describe."""
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise DatabaseNotReadyError(
            f"cannot open the database ({exc.orig}); check NURTURE_DATABASE_URL"
        ) from None
    if current is None:
        raise DatabaseNotReadyError(
            "the database has no nurture tables yet; run `nurture db upgrade` first"
        )
    if current != SCHEMA_REVISION:
        raise DatabaseNotReadyError(
            f"the database is at migration {current} but this nurture needs {SCHEMA_REVISION}; "
            "run `nurture db upgrade`"
        )
