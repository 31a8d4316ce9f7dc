"""Where the bench keeps its databases, and how it builds, copies and clones them.

Everything lives in one scratch folder (``bench/results/work-*``, removed at
the end) and in PostgreSQL databases named ``bench_*`` that the bench creates
and drops itself.  Settings are built with ``load_settings(environ=...)`` from
an explicit environment (and an empty config file), so a ``nurture.toml`` in
the caller's folder or stray ``NURTURE_*`` variables cannot change a run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, func, make_url, select, text

from nurture.config import load_settings
from nurture.db.engine import upgrade
from nurture.db.models import Base
from nurture.runtime import Runtime

SECRET = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105  (signs links in throw-away bench databases)
PG_ADMIN_URL = os.environ.get(
    "NURTURE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
COPY_BATCH = 5000


@dataclass(frozen=True)
class Workspace:
    """The scratch folder of one bench run."""

    root: Path

    @classmethod
    def create(cls, parent: Path) -> Workspace:
        """A fresh folder under ``parent`` with an empty nurture config file."""
        root = parent / f"work-{os.getpid()}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "empty.toml").write_text("", encoding="utf-8")
        return cls(root)

    def path(self, name: str) -> Path:
        """A file in the workspace."""
        return self.root / name

    def env(self, database_url: str, transport: str, now: str, **extra: str) -> dict[str, str]:
        """The environment of a ``nurture`` process: this run's settings and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        env.update(
            NURTURE_CONFIG=str(self.path("empty.toml")),
            NURTURE_DATABASE_URL=database_url,
            NURTURE_TRANSPORT=transport,
            NURTURE_SECRET_KEY=SECRET,
            NURTURE_NOW=now,
            NURTURE_ACTOR="bench",
            **extra,
        )
        return env

    def runtime(self, database_url: str, transport: str, now: str) -> Runtime:
        """An in-process runtime with the same settings a ``nurture`` process would get."""
        environ: Mapping[str, str] = self.env(database_url, transport, now)
        runtime = Runtime(load_settings(environ=environ), actor="bench")
        return runtime

    def remove(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an SQLite file."""
    return f"sqlite:///{path}"


def new_sqlite(path: Path) -> str:
    """A migrated, empty SQLite database at ``path``; its URL."""
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    url = sqlite_url(path)
    upgrade(url)
    return url


def settle_file(path: Path) -> None:
    """Fold the write-ahead log into the main file, so copying the file copies everything."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def copy_sqlite(source: Path, target: Path) -> str:
    """A copy of a settled SQLite file; its URL."""
    for leftover in target.parent.glob(target.name + "*"):
        leftover.unlink()
    shutil.copyfile(source, target)
    return sqlite_url(target)


def postgres_error() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else why not."""
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: no PostgreSQL here
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


class Postgres:
    """Creates, clones and drops the bench's own databases (all named bench_*)."""

    def __init__(self) -> None:
        self.prefix = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
        self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self._made: list[str] = []

    def url(self, name: str) -> str:
        """The URL of one of the bench's databases."""
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def create(self, suffix: str, template: str | None = None) -> str:
        """Create ``<prefix>_<suffix>`` (a copy of ``template`` when given); its name."""
        name = f"{self.prefix}_{suffix}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        self._made.append(name)
        return name

    def drop(self, name: str) -> None:
        """Drop one of the bench's databases."""
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self._made:
            self._made.remove(name)

    def close(self) -> None:
        """Drop every database this instance created."""
        for name in list(self._made):
            self.drop(name)
        self._admin.dispose()

    @contextmanager
    def clone(self, template: str, suffix: str) -> Iterator[str]:
        """A throw-away copy of ``template`` for one repetition; its URL."""
        name = self.create(suffix, template)
        try:
            yield self.url(name)
        finally:
            self.drop(name)


def copy_to_postgres(source_url: str, target_url: str) -> None:
    """Migrate ``target_url`` to head and copy every nurture table's rows into it."""
    upgrade(target_url)
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        with source.connect() as src, target.begin() as dst:
            for table in Base.metadata.sorted_tables:
                result = src.execute(select(table)).mappings()
                while batch := result.fetchmany(COPY_BATCH):
                    dst.execute(table.insert(), [dict(row) for row in batch])
                if "id" in table.c:
                    top = dst.scalar(select(func.max(table.c.id)))
                    if top is not None:
                        dst.execute(
                            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
                            {"t": table.name, "v": top},
                        )
        with target.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        source.dispose()
        target.dispose()
