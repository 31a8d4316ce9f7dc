"""Pure checks of what staff type in; each failure names the field and the fix.

Every front door (CLI, CSV import, web form, JSON API) calls these same
functions, so one rule holds everywhere.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from email_validator import EmailNotValidError, validate_email

from nurture.domain import ScarType, canonical_scars
from nurture.errors import ValidationError

MAX_NAME = 200
MAX_SESSIONS = 20
#: Session dates outside these years are typing mistakes (and would overflow date arithmetic).
MIN_YEAR, MAX_YEAR = 2000, 2100
_SCAR_ALIASES = {
    "atrophic": ScarType.ATROPHIC,
    "hypertrophic": ScarType.HYPERTROPHIC,
    "pih": ScarType.PIH,
    "post-inflammatory-hyperpigmentation": ScarType.PIH,
}


@cache
def known_zones() -> frozenset[str]:
    """Every IANA zone name this machine knows."""
    return frozenset(available_timezones())


def clean_email(text: str) -> str:
    """Return the normalised, lower-cased address or raise ``ValidationError``.

    Addresses are checked by syntax only (no DNS).  Internationalised domains
    are accepted; a non-ASCII local part is refused because many mail servers
    cannot deliver to it.
    """
    value = text.strip()
    if not value:
        raise ValidationError("email", "is empty; give the client's email address")
    if len(value) > 254:
        raise ValidationError("email", "is longer than 254 characters")
    if "=?" in value or "?=" in value:
        raise ValidationError(
            "email", "must not contain '=?' or '?=' (mail software would decode it as a header)"
        )
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValidationError("email", f"{_printable(value)!r} is not usable: {exc}") from None
    return str(result.normalized).lower()


def clean_name(text: str) -> str:
    """Return the trimmed name or raise ``ValidationError``."""
    value = text.strip()
    if not value:
        raise ValidationError("name", "is empty; give the client's name")
    if len(value) > MAX_NAME:
        raise ValidationError("name", f"is longer than {MAX_NAME} characters")
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp", "Co", "Cn"):
            raise ValidationError(
                "name", "contains a control character or line break; type the name on one line"
            )
    if "=?" in value or "?=" in value:
        raise ValidationError("name", "must not contain '=?' or '?=' (email header encoding)")
    return value


def clean_scars(values: Iterable[str]) -> tuple[ScarType, ...]:
    """Return the scar types in canonical order or raise ``ValidationError``."""
    found: set[ScarType] = set()
    for raw in values:
        key = raw.strip().lower().replace("_", "-").replace(" ", "-")
        if key not in _SCAR_ALIASES:
            raise ValidationError(
                "scar", f"{_printable(raw)!r} is not a scar type; use atrophic, hypertrophic or pih"
            )
        found.add(_SCAR_ALIASES[key])
    if not found:
        raise ValidationError("scar", "give at least one scar type: atrophic, hypertrophic or pih")
    return canonical_scars(found)


def clean_zone(text: str) -> str:
    """Return an IANA zone name or raise ``ValidationError``."""
    value = text.strip()
    if value not in known_zones():
        raise ValidationError(
            "timezone",
            f"{_printable(value)!r} is not an IANA time zone; use a name like Europe/London",
        )
    return value


def clean_sessions(value: int | str) -> int:
    """Return the planned number of sessions (1..20) or raise ``ValidationError``."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_SESSIONS:
        raise ValidationError(
            "sessions",
            f"{_printable(str(value))!r} must be a whole number from 1 to {MAX_SESSIONS}",
        )
    return number


def clean_session_number(value: int | str, planned: int) -> int:
    """Return a session number within 1..planned or raise ``ValidationError``."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if not 1 <= number <= planned:
        raise ValidationError(
            "session", f"{_printable(str(value))!r} must be a session number from 1 to {planned}"
        )
    return number


def parse_local(text: str, zone: str, field: str = "when") -> datetime:
    """Parse an ISO 8601 local date-time in ``zone`` and return it in UTC.

    A time with an explicit offset is taken as is.  A date that does not exist,
    a time in a daylight-saving gap, or an ambiguous time in the repeated hour
    (without an offset to settle it) is refused.
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            field,
            f"{_printable(value)!r} is not a valid date and time; "
            "use YYYY-MM-DDTHH:MM, e.g. 2026-12-03T10:30",
        ) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValidationError(
            field, f"{_printable(value)!r} is outside {MIN_YEAR}-{MAX_YEAR}; check the year"
        )
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    tz = ZoneInfo(zone)
    early = parsed.replace(tzinfo=tz, fold=0)
    late = parsed.replace(tzinfo=tz, fold=1)
    early_utc, late_utc = early.astimezone(UTC), late.astimezone(UTC)
    if early_utc.astimezone(tz).replace(tzinfo=None) != parsed:
        raise ValidationError(
            field,
            f"{value} does not exist in {zone} (the clocks skip it for daylight saving); "
            "pick a time outside the gap",
        )
    if early_utc != late_utc:
        raise ValidationError(
            field,
            f"{value} happens twice in {zone} (the clocks go back); add the UTC offset, "
            f"e.g. {early.isoformat(timespec='minutes')} or {late.isoformat(timespec='minutes')}",
        )
    return early_utc


def _printable(text: str) -> str:
    """Shorten and defang input before echoing it in an error message."""
    shown = "".join(c if c.isprintable() else "?" for c in text)
    return shown if len(shown) <= 60 else shown[:57] + "..."
