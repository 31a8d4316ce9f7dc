"""Scenario 3: several `nurture run` workers share one database.

Each worker runs on its own simulated clock, a second apart, so the
``sent_at`` of every email says which worker recorded it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet, enrol_many, wait_for, worker_env
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _share(url: str, cli: Cli, sink: FaultSink, fleet: Fleet, db: Db, workers: int, n: int) -> None:
    enrol_many(cli, n, NOW)
    fleet.env = worker_env(url, sink.url, NOW, NURTURE_BATCH_SIZE="25")
    started = time.monotonic()
    for i in range(workers):
        fleet.run(NURTURE_NOW=(NOW + timedelta(seconds=i)).isoformat())
    wait_for(f"{n} emails to go out", lambda: db.settled(NOW + timedelta(minutes=1)), 600, 0.5)
    elapsed = time.monotonic() - started
    codes = fleet.stop_all()
    assert set(codes.values()) == {0}, [w.output()[-2000:] for w in fleet.workers]
    summary = check(url, sink, settled_by=NOW)
    assert summary.sent == n
    assert set(summary.arrivals.values()) == {1}
    shares = db.sent_at_counts()
    assert sorted(shares) == [NOW + timedelta(seconds=i) for i in range(workers)], shares
    print(f"{workers} workers, {n} emails in {elapsed:.1f}s, shares {sorted(shares.values())}")  # noqa: T201


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 4])
def test_workers_on_postgres_share_thousands_of_emails_once(
    pg_url: str,
    make_cli: Callable[[str], Cli],
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
    workers: int,
) -> None:
    """Two and four workers on PostgreSQL send 3000 emails: each once, every worker took part."""
    _share(pg_url, make_cli(pg_url), sink, fleet, db_probe(pg_url), workers, 3000)


@pytest.mark.slow
def test_two_workers_on_sqlite_are_safe(
    sqlite_url: str,
    make_cli: Callable[[str], Cli],
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
) -> None:
    """Two workers on one SQLite file serialise their claims: 600 emails, each once."""
    _share(sqlite_url, make_cli(sqlite_url), sink, fleet, db_probe(sqlite_url), 2, 600)
