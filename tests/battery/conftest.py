"""Fixtures of the battery: a faulty SMTP server, worker fleets, databases.

The scenarios with real worker processes wait out real leases, so the default
run keeps them on SQLite; CI (or NURTURE_SLOW=1) runs them on PostgreSQL too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nurture.db.engine import upgrade
from tests.battery.pgcluster import Cluster
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet
from tests.conftest import RUN_SLOW, Cli, _postgres_database


@pytest.hookimpl(tryfirst=True)  # before the root conftest skips what is marked slow
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the PostgreSQL variant of every worker-process scenario slow in the default run."""
    if RUN_SLOW:
        return
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and params.params.get("empty_db_url") == "postgres"
        if on_postgres and "fleet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def sink() -> Iterator[FaultSink]:
    """An SMTP server on loopback that can be told to fail."""
    server = FaultSink().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Worker processes (configure ``fleet.env`` first); all are killed at the end."""
    folder = tmp_path / "workers"
    folder.mkdir()
    group = Fleet(folder, {})
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated database on the shared PostgreSQL (for PostgreSQL-only tests)."""
    for url in _postgres_database():
        upgrade(url)
        yield url


@pytest.fixture
def make_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[str], Cli]:
    """The in-process CLI against any database URL (for setting up facts)."""
    for key in list(os.environ):
        if key.startswith("NURTURE_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return lambda url: Cli(url, capsys, monkeypatch, work)


@pytest.fixture
def db_probe() -> Iterator[Callable[[str], Db]]:
    """Read-only database probes, disposed at the end."""
    opened: list[Db] = []

    def probe(url: str) -> Db:
        db = Db(url)
        opened.append(db)
        return db

    try:
        yield probe
    finally:
        for db in opened:
            db.close()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A throwaway PostgreSQL cluster, started; destroyed at the end."""
    server = Cluster()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
