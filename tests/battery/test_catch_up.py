"""Scenario 7: the scheduler was down for three days and comes back at night.

Four London clients at different points of their first session; no tick from
Monday 10:00 until Thursday 21:00.  What went stale is skipped with the
reason, nothing goes at night, the rest goes when the window opens on Friday
at 09:00, and nothing about a session that already happened arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nurture.domain import MessageStatus
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Fleet, worker_env
from tests.conftest import Cli

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
THURSDAY_NIGHT = datetime(2026, 12, 3, 21, 0, tzinfo=UTC)
FRIDAY_OPENING = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SESSIONS = {
    "past": "2026-12-02T10:30",
    "friday": "2026-12-04T15:00",
    "next_week": "2026-12-08T10:00",
}
STALE = {
    "none": ["welcome"],
    "past": ["booking_confirmed/1", "day_before/1", "prepare/1", "welcome"],
    "friday": ["booking_confirmed/1", "prepare/1", "welcome"],
    "next_week": ["booking_confirmed/1", "welcome"],
}


def _enrol(cli: Cli) -> None:
    for who in STALE:
        cli.ok(
            "enroll",
            f"{who}@example.com",
            "--name",
            who.title(),
            "--scar",
            "atrophic",
            now=MONDAY.isoformat(),
        )
        if who in SESSIONS:
            cli.ok("book", f"{who}@example.com", "1", SESSIONS[who], now=MONDAY.isoformat())


def test_three_days_down_skips_the_stale_and_sends_the_rest_at_the_opening(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet
) -> None:
    """Back after three days at night: stale ones skipped with why, the rest at 09:00, once."""
    _enrol(cli)
    fleet.env = worker_env(db_url, sink.url, MONDAY)
    fleet.tick(NURTURE_NOW=THURSDAY_NIGHT.isoformat())
    fleet.tick(NURTURE_NOW=FRIDAY_OPENING.replace(hour=8, minute=59).isoformat())
    assert sink.count() == 0  # nothing at night, no burst of old reminders
    summary = check(db_url, sink)
    for who, keys in STALE.items():
        skipped = sorted(
            r.key
            for r in summary.rows.values()
            if r.email == f"{who}@example.com" and r.status is MessageStatus.SKIPPED
        )
        assert skipped == keys, who
    reasons = {r.reason for r in summary.rows.values() if r.status is MessageStatus.SKIPPED}
    assert all(reason and reason.startswith("stale:") for reason in reasons), reasons
    fleet.tick(NURTURE_NOW=FRIDAY_OPENING.isoformat())
    summary = check(db_url, sink, settled_by=FRIDAY_OPENING)
    assert {a.message["Date"].datetime for a in sink.arrivals} == {FRIDAY_OPENING}
    assert {who: summary.arrived(f"{who}@example.com") for who in STALE} == {
        "none": ["what_to_expect"],
        "past": ["what_to_expect"],
        "friday": ["day_before/1", "what_to_expect"],
        "next_week": ["what_to_expect"],
    }
