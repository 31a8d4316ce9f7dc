"""Scenario 4: a worker frozen past its lease, and facts that change under a claim.

The SMTP server freezes worker A (SIGSTOP) while it waits for the answer to
email N, and holds that answer.  Worker B, on a clock one minute later (so
``sent_at`` tells who recorded what), takes over after the lease.  Then A
is woken, gets a 451 for N, and must neither send nor record anything more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from nurture.domain import MessageStatus
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet, enrol_many, wait_for, worker_env
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
EMAILS = 12
FROZEN_AT = 3


@pytest.mark.slow
def test_frozen_worker_neither_sends_nor_records_after_takeover(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet, db_probe: Callable[[str], Db]
) -> None:
    """A worker frozen past its lease, then woken, sends nothing and records nothing more."""
    enrol_many(cli, EMAILS, NOW)
    db = db_probe(db_url)
    fleet.env = worker_env(db_url, sink.url, NOW)
    frozen = fleet.run()
    release = asyncio.Event()

    async def freeze(n: int) -> str | None:
        if n != FROZEN_AT:
            return None
        frozen.pause()
        await release.wait()
        return "451 4.3.0 Try again later"

    sink.plan.hook = freeze
    wait_for("worker A to be frozen", lambda: sink.count() == FROZEN_AT, timeout=60)
    taker = fleet.run(NURTURE_NOW=LATER.isoformat())
    wait_for("worker B to take over", lambda: sink.count() == EMAILS + 1, timeout=60)
    assert taker.stop() == 0
    frozen.resume()
    sink.call_soon(release.set)
    wait_for("worker A to see its claims gone", lambda: "claim_lost" in frozen.output(), 30)
    assert frozen.stop() == 0, frozen.output()
    assert sink.count() == EMAILS + 1
    assert db.sent_at_counts() == {NOW: FROZEN_AT - 1, LATER: EMAILS - FROZEN_AT + 1}
    summary = check(db_url, sink, settled_by=LATER)
    held = sink.arrivals[FROZEN_AT - 1].message_id
    assert (summary.arrivals[held], summary.rows[held].possible_duplicate) == (2, True)


def test_unsubscribe_while_claimed_stops_the_email(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet
) -> None:
    """A client who unsubscribes after a worker claimed their email does not get it."""
    emails = enrol_many(cli, 3, NOW)
    fleet.env = worker_env(db_url, sink.url, NOW)
    release = asyncio.Event()

    async def hold_first(n: int) -> str | None:
        if n == 1:
            await release.wait()
        return None

    sink.plan.hook = hold_first
    worker = fleet.run()
    wait_for("the first email to be held", lambda: sink.count() == 1, timeout=60)
    cli.ok("unsubscribe", emails[1], now=NOW.isoformat())
    sink.call_soon(release.set)
    wait_for("the batch to finish", lambda: sink.count() >= 2, timeout=30)
    assert worker.stop() == 0, worker.output()
    summary = check(db_url, sink, settled_by=NOW, blocked=[emails[1]])
    assert summary.sent == 2
    assert summary.status_count(MessageStatus.CANCELLED) >= 1


def test_reschedule_while_claimed_sends_the_new_time(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet
) -> None:
    """A session moved after its emails were claimed: they show the new time, never the old."""
    emails = enrol_many(cli, 2, NOW)
    cli.ok("book", emails[1], "1", "2026-12-10T10:30", now=NOW.isoformat())
    fleet.env = worker_env(db_url, sink.url, NOW)
    release = asyncio.Event()

    async def hold_first(n: int) -> str | None:
        if n == 1:
            await release.wait()
        return None

    sink.plan.hook = hold_first
    worker = fleet.run()
    wait_for("the first email to be held", lambda: sink.count() == 1, timeout=60)
    cli.ok("book", emails[1], "1", "2026-12-17T14:00", now=NOW.isoformat())
    sink.call_soon(release.set)
    wait_for("the rest to arrive", lambda: sink.count() >= 3, timeout=30)
    assert worker.stop() == 0, worker.output()
    check(db_url, sink, settled_by=NOW)
    texts = [
        a.message.get_body(("plain",)).get_content()
        for a in sink.arrivals
        if a.rcpt_tos == [emails[1]]
    ]
    assert not any("10 December" in t for t in texts), texts
    assert any("17 December" in t for t in texts), texts
