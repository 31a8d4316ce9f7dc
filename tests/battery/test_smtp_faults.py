"""Scenario 5: an SMTP server that refuses, drops and hangs, then recovers.

Real `nurture tick` processes on a simulated clock (NURTURE_NOW), so the
five-minute backoff can be walked through in seconds.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nurture.domain import MessageStatus
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Fleet, enrol_many, worker_env
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _tick(fleet: Fleet, at: datetime) -> str:
    return fleet.tick(NURTURE_NOW=at.isoformat()).output()


def _welcome(cli: Cli, email: str) -> dict[str, Any]:
    entries = json.loads(cli.ok("timeline", email, "--json").out)
    return next(e for e in entries if e["step"] == "welcome")


def test_outage_is_retried_with_backoff_and_delivered_once(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet
) -> None:
    """421s, 451s and drops for a while: three tries per tick, backoff, then each arrives once."""
    emails = enrol_many(cli, 12, NOW)
    fleet.env = worker_env(db_url, sink.url, NOW)
    sink.plan.outage = (time.monotonic() + 3600, ("421", "451", "drop"))
    for minute in range(4):  # every email fails once, three per tick
        out = _tick(fleet, NOW + minute * MINUTE)
        assert "transport_unavailable" in out
        assert sink.data_commands == 3 * (minute + 1)  # no hammering a failing server
    first = emails[:3]
    assert {_welcome(cli, e)["due_at"] for e in first} == {(NOW + 5 * MINUTE).isoformat()}
    _tick(fleet, NOW + 5 * MINUTE)  # the first three fail again: the delay doubles
    assert {_welcome(cli, e)["due_at"] for e in first} == {(NOW + 15 * MINUTE).isoformat()}
    sink.plan.outage = None
    _tick(fleet, NOW + 8 * MINUTE)
    assert sink.count() == 9  # the first three wait for their backoff
    _tick(fleet, NOW + 15 * MINUTE)
    summary = check(db_url, sink, settled_by=NOW + 15 * MINUTE)
    assert summary.sent == 12
    assert set(summary.arrivals.values()) == {1}
    assert {_welcome(cli, e)["attempts"] for e in first} == {3}
    dropped = sink.faulted_ids("drop")  # cut after the whole message: maybe delivered
    assert {m for m, r in summary.rows.items() if r.possible_duplicate} == dropped


@pytest.mark.parametrize(
    "fault", ["accept_then_drop", pytest.param("accept_then_hang", marks=pytest.mark.slow)]
)
def test_lost_confirmation_is_retried_and_flagged(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet, fault: str
) -> None:
    """The server took the email but the reply was lost: sent again, same Message-ID, flagged."""
    enrol_many(cli, 3, NOW)
    fleet.env = worker_env(db_url, sink.url, NOW)
    sink.plan.faults = {2: fault}
    _tick(fleet, NOW)
    ambiguous = sink.arrivals[1].message_id
    _tick(fleet, NOW + 5 * MINUTE)
    summary = check(db_url, sink, settled_by=NOW + 5 * MINUTE)
    assert summary.sent == 3
    assert summary.arrivals[ambiguous] == 2
    assert summary.rows[ambiguous].possible_duplicate
    assert summary.flagged == 1


def test_permanent_refusal_fails_and_suppresses_one_address(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet
) -> None:
    """A 550 for one address in a batch: it fails and is suppressed; the rest arrive once."""
    emails = enrol_many(cli, 10, NOW)
    bad = emails[4]
    sink.plan.reject[bad] = "550 5.1.1 No such user"
    fleet.env = worker_env(db_url, sink.url, NOW)
    _tick(fleet, NOW)
    later = NOW + timedelta(days=3)
    _tick(fleet, later)
    summary = check(db_url, sink, settled_by=later, blocked=[bad])
    entries = {e["step"]: e for e in json.loads(cli.ok("timeline", bad, "--json").out)}
    assert entries["welcome"]["status"] == MessageStatus.FAILED.value
    assert entries["what_to_expect"]["reason"] == "the address is on the do-not-email list"
    assert set(summary.arrivals.values()) == {1}
    assert len(summary.arrivals) == 9 + 9  # welcome and what_to_expect for the nine others
