"""Scenario 8: a 9 am local send across daylight-saving changes, in four zones.

A sequence with one email a day (offsets 0d..6d from an enrolment at 03:00
local, three days before a clock change) is ticked at 08:59:59 and 09:00:00
local time of each day, computed here with zoneinfo, and every six hours in
between.  Each client must get exactly one email per local day, stamped at
09:00:00 local, across both of its zone's 2026 clock changes (found from the
zone data, not hard-coded: London, New York, Lord Howe's half hour, Santiago
at midnight).
"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nurture.config import DEFAULT_TEMPLATES
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.conftest import Cli

ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago")
DAYS = 7


def clock_changes(zone: str, year: int = 2026) -> list[date]:
    """The local dates on which the zone's offset at noon differs from the day before."""
    tz = ZoneInfo(zone)
    day, changes = date(year, 1, 2), []
    while day.year == year:
        before = datetime.combine(day - timedelta(days=1), time(12), tz).utcoffset()
        if datetime.combine(day, time(12), tz).utcoffset() != before:
            changes.append(day)
        day += timedelta(days=1)
    return changes


def _daily_templates(folder: Path) -> Path:
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    steps = "".join(
        f'[[step]]\nname = "day{n}"\ntemplate = "welcome"\nevent = "enrolled"\n'
        f'offset = "{n}d"\nexpires = "{n}d20h"\n\n'
        for n in range(DAYS)
    )
    (folder / "sequence.toml").write_text(steps, encoding="utf-8")
    return folder


def _local(day: date, at: time, zone: str) -> datetime:
    return datetime.combine(day, at, ZoneInfo(zone)).astimezone(UTC)


@pytest.mark.slow
def test_nine_am_local_once_a_day_across_clock_changes(
    cli: Cli, db_url: str, sink: FaultSink, tmp_path: Path
) -> None:
    """One email per local day at 09:00:00 local, before, on and after each clock change."""
    env = {
        "NURTURE_TEMPLATES": str(_daily_templates(tmp_path / "daily")),
        "NURTURE_TRANSPORT": sink.url,
    }
    clients: dict[str, tuple[str, date]] = {}
    for zone in ZONES:
        changes = clock_changes(zone)
        assert len(changes) == 2, (zone, changes)
        for change in changes:
            email = f"{zone.split('/')[1].lower()}-{change:%m%d}@example.com"
            first = change - timedelta(days=3)
            enrolled = _local(first, time(3), zone).isoformat()
            cli.ok(
                "enroll",
                email,
                "--name",
                "Dee Ess",
                "--scar",
                "pih",
                "--timezone",
                zone,
                now=enrolled,
                env=env,
            )
            clients[email] = (zone, first)
    ticks: set[datetime] = set()
    for zone, first in clients.values():
        for n in range(DAYS):
            nine = _local(first + timedelta(days=n), time(9), zone)
            ticks |= {nine - timedelta(seconds=1), nine, nine + timedelta(hours=6)}
    for at in sorted(ticks):
        cli.ok("tick", now=at.isoformat(), env=env)
    last = max(ticks)
    check(db_url, sink, settled_by=last)
    for email, (zone, first) in clients.items():
        stamps = [a.message["Date"].datetime for a in sink.arrivals if a.rcpt_tos == [email]]
        local = [s.astimezone(ZoneInfo(zone)) for s in stamps]
        expected = [first + timedelta(days=n) for n in range(DAYS)]
        assert Counter(t.date() for t in local) == Counter(expected), email
        assert {t.time() for t in local} == {time(9)}, (email, local)
        assert sorted(stamps) == [_local(d, time(9), zone) for d in expected], email
