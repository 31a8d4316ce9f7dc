"""Pure time arithmetic: offsets written by people, and the send window."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^\s*([+-]?)\s*((?:\d+\s*[wdhm]\s*)+)$")
_PART = re.compile(r"(\d+)\s*([wdhm])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """Parse '3d', '-1d', '+6w', '1d12h' or '0' into a timedelta.

    Raises ``ValueError`` with a message meant for the person who wrote it.
    """
    stripped = text.strip()
    if stripped in ("0", "+0", "-0"):
        return timedelta(0)
    match = _DURATION.match(stripped)
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit (w, d, h, m), "
            "e.g. '3d', '-1d', '6w', '1d12h'"
        )
    total = timedelta(0)
    for amount, unit in _PART.findall(match.group(2)):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return -total if match.group(1) == "-" else total


@functools.cache
def zone_named(name: str) -> ZoneInfo:
    """The time zone ``name``, read from the tz database once per process.

    ``ZoneInfo`` keeps only the last eight zones it made and any still in
    use; a worker cycling through clients in many zones would otherwise
    read and parse a zone file for most emails.  Unknown names raise
    ``ZoneInfoNotFoundError`` (and are not kept).
    """
    return ZoneInfo(name)


@dataclass(frozen=True)
class SendWindow:
    """The local hours during which email may go out (same every day)."""

    start: time
    end: time

    def contains(self, instant: datetime, zone: str) -> bool:
        """True when ``instant`` falls inside the window in ``zone``."""
        local = instant.astimezone(zone_named(zone)).time()
        return self.start <= local < self.end

    def next_open(self, instant: datetime, zone: str) -> datetime:
        """The first instant at or after ``instant`` that is inside the window (UTC)."""
        tz = zone_named(zone)
        local = instant.astimezone(tz)
        if self.start <= local.time() < self.end:
            return instant.astimezone(UTC)
        day = local.date() if local.time() < self.start else local.date() + timedelta(days=1)
        return _first_instant_at(datetime.combine(day, self.start), tz)


def _first_instant_at(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant whose local time in ``tz`` is ``wall`` or later (UTC).

    Usually that is ``wall`` itself; when a daylight-saving gap swallows it,
    it is the moment the clocks jump (found by bisection between the two
    readings of the missing wall time).
    """
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early == late or early.astimezone(tz).replace(tzinfo=None) == wall:
        return min(early, late)
    low, high = min(early, late), max(early, late)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    whole = high.replace(microsecond=0)  # transitions fall on whole seconds
    return whole + timedelta(seconds=1) if high.microsecond else whole
