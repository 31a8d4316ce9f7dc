"""Scenario 2: a worker killed at chosen points of one email's life, then replaced.

The SMTP server itself pulls the trigger (SIGKILL) at an exact moment: when
email N's envelope arrives (sent ahead, while the worker records email N-1's
answer and flags N), when N itself has come in but is not yet stored
(flagged, not accepted), or just after the server stored N (accepted, not
yet recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from nurture.domain import MessageStatus
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet, enrol_many, wait_for, worker_env
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, 10:00 in London
EMAILS = 8


def _kill_at(sink: FaultSink, fleet: Fleet, url: str, point: str, ordinal: int) -> None:
    """Start a worker, let the server kill it at ``point`` of email ``ordinal``."""
    fleet.env = worker_env(url, sink.url, NOW, NURTURE_BATCH_SIZE="3")
    victim = fleet.run()

    async def kill(n: int) -> str | None:
        if n == ordinal:
            victim.kill()
            if point == "before_accept":
                return "451 4.3.0 Not stored"  # the worker is gone; the message was never taken
        return None

    if point == "envelope":
        sink.plan.on_mail = kill
    elif point == "before_accept":
        sink.plan.on_data = kill
    else:
        sink.plan.hook = kill
    wait_for("the server to kill the worker", lambda: not victim.alive(), timeout=60)
    sink.plan.on_mail = sink.plan.on_data = sink.plan.hook = None


def _replace_and_settle(fleet: Fleet, db: Db) -> None:
    """A new worker finishes the work once the dead one's lease runs out."""
    fleet.run()
    wait_for("every email to be settled", lambda: db.settled(NOW), timeout=60)
    assert set(fleet.stop_all().values()) == {0}


@pytest.mark.parametrize("ordinal", [1, pytest.param(5, marks=pytest.mark.slow)])
def test_killed_after_acceptance_the_email_arrives_twice_flagged(
    cli: Cli,
    db_url: str,
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
    ordinal: int,
) -> None:
    """Killed after the server took email N: N is re-sent with its Message-ID and flagged."""
    enrol_many(cli, EMAILS, NOW)
    _kill_at(sink, fleet, db_url, "after_accept", ordinal)
    victim_id = sink.arrivals[ordinal - 1].message_id
    _replace_and_settle(fleet, db_probe(db_url))
    summary = check(db_url, sink, settled_by=NOW)
    assert summary.sent == EMAILS
    assert summary.arrivals[victim_id] == 2
    assert summary.rows[victim_id].possible_duplicate
    assert [m for m, n in summary.arrivals.items() if n > 1] == [victim_id]


@pytest.mark.slow
@pytest.mark.parametrize("ordinal", [1, 5])
def test_killed_before_acceptance_every_email_arrives_once(
    cli: Cli,
    db_url: str,
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
    ordinal: int,
) -> None:
    """Killed while handing email N over, before the server took it: all arrive exactly once."""
    enrol_many(cli, EMAILS, NOW)
    _kill_at(sink, fleet, db_url, "before_accept", ordinal)
    assert sink.count() == ordinal - 1
    _replace_and_settle(fleet, db_probe(db_url))
    summary = check(db_url, sink, settled_by=NOW)
    assert summary.sent == EMAILS
    assert set(summary.arrivals.values()) == {1}


@pytest.mark.parametrize("ordinal", [1, pytest.param(5, marks=pytest.mark.slow)])
def test_killed_at_the_envelope_only_the_email_before_may_arrive_twice(
    cli: Cli,
    db_url: str,
    sink: FaultSink,
    fleet: Fleet,
    db_probe: Callable[[str], Db],
    ordinal: int,
) -> None:
    """Killed when email N's envelope arrives: nothing lost, N once, and only N-1 maybe twice.

    The envelope goes out while the worker records N-1's answer and flags N
    (the round trip overlaps the commit), so N-1 was accepted and may not be
    recorded yet: it may come again, flagged.  No message follows an
    envelope until N is flagged, so N itself arrives once.
    """
    enrol_many(cli, EMAILS, NOW)
    _kill_at(sink, fleet, db_url, "envelope", ordinal)
    assert sink.count() == ordinal - 1
    before = sink.arrivals[ordinal - 2].message_id if ordinal > 1 else None
    _replace_and_settle(fleet, db_probe(db_url))
    summary = check(db_url, sink, settled_by=NOW)
    assert summary.sent == EMAILS
    twice = [m for m, n in summary.arrivals.items() if n > 1]
    assert twice in ([], [before] if before else [])
    assert all(summary.rows[m].possible_duplicate for m in twice)


def test_killed_after_acceptance_then_unsubscribed_is_flagged_not_dangling(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet, db_probe: Callable[[str], Db]
) -> None:
    """A crash after acceptance, then an unsubscribe: cancelled, flagged, no claim left behind."""
    emails = enrol_many(cli, EMAILS, NOW)
    _kill_at(sink, fleet, db_url, "after_accept", 2)
    victim = sink.arrivals[1]
    cli.ok("unsubscribe", victim.rcpt_tos[0], now=NOW.isoformat())
    _replace_and_settle(fleet, db_probe(db_url))
    summary = check(db_url, sink, settled_by=NOW)
    row = summary.rows[victim.message_id]
    assert (row.status, row.possible_duplicate) == (MessageStatus.CANCELLED, True)
    assert summary.arrivals[victim.message_id] == 1
    assert summary.sent == len(emails) - 1
