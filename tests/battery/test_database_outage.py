"""Scenario 6: PostgreSQL stopped in the middle of a batch, then started again.

A throwaway cluster of the test's own (initdb in a temporary folder, its own
port), never the shared server.  The SMTP server holds its answer to a
message in the middle of the batch while the test stops the database, so the worker that sent it
must record the outcome into a database that is down.  Both workers are
running (past their start-up check) before the database goes away.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from nurture.db.engine import upgrade
from nurture.scheduler import Backoff
from tests.battery.invariants import check
from tests.battery.pgcluster import Cluster
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet, enrol_many, wait_for, worker_env
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
EMAILS = 200
DOWN_SECONDS = 6


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_workers_back_off_and_resume_after_a_database_restart(
    cluster: Cluster,
    make_cli: Callable[[str], Cli],
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
    mode: str,
) -> None:
    """PostgreSQL stopped mid-batch and restarted: workers wait, resume, nothing lost or doubled."""
    upgrade(cluster.url)
    enrol_many(make_cli(cluster.url), EMAILS, NOW)
    fleet.env = worker_env(cluster.url, sink.url, NOW, NURTURE_BATCH_SIZE="10")
    held, release = threading.Event(), asyncio.Event()
    armed = threading.Event()

    async def hold(n: int) -> str | None:
        if armed.is_set() and not held.is_set():
            held.set()
            await release.wait()
        return None

    sink.plan.hook, sink.plan.delay = hold, 0.03
    workers = [fleet.run(), fleet.run()]
    wait_for("both workers", lambda: all("worker_started" in w.output() for w in workers), 60)
    armed.set()
    wait_for("a message to hold", held.is_set, timeout=60)
    cluster.stop(mode)
    sink.call_soon(release.set)
    time.sleep(DOWN_SECONDS)
    assert all(w.alive() for w in workers), [w.output()[-2000:] for w in workers]
    cluster.start()
    db = db_probe(cluster.url)
    wait_for("every email to be settled", lambda: db.settled(NOW), timeout=120, poll=0.5)
    assert set(fleet.stop_all().values()) == {0}
    summary = check(cluster.url, sink, settled_by=NOW)
    assert summary.sent == EMAILS
    assert set(summary.arrivals.values()) == {1}
    logs = "".join(w.output() for w in workers)
    assert "database_unavailable" in logs
    assert "Traceback" not in logs


def test_backoff_doubles_from_the_interval_up_to_a_minute() -> None:
    """Failed ticks wait 1, 2, 4 ... seconds, never more than a minute; a success resets it."""
    backoff = Backoff(interval=1)
    delays = [backoff.failed(now=0) for _ in range(9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert not backoff.ready(59.9)
    assert backoff.ready(60)
    assert backoff.succeeded() == 9
    assert backoff.failed(now=100) == 1


def test_backoff_never_ticks_faster_than_the_interval() -> None:
    """With an interval longer than a minute, a failed tick waits at least the interval."""
    backoff = Backoff(interval=300)
    assert [backoff.failed(now=0) for _ in range(3)] == [300, 300, 300]
