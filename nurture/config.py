"""Settings, built once at the edge from ``NURTURE_*`` variables and a file.

This is the only module that reads the environment.  Every other part takes a
``Settings`` (or the few values it needs) as an argument.  The embedded
default (an SQLite file and an outbox folder in the working directory, a
sample clinic) runs out of the box; a malformed value raises
``ConfigurationError`` naming the setting and what it accepts.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from nurture.errors import ConfigurationError

PACKAGE_DIR = Path(__file__).resolve().parent


def _bundled(installed: str, source: str) -> Path:
    """A folder shipped in the wheel, or beside the package in a source tree."""
    inside = PACKAGE_DIR / installed
    return inside if inside.is_dir() else PACKAGE_DIR.parent / source


DEFAULT_TEMPLATES = _bundled("_templates", "templates")
MIGRATIONS_DIR = _bundled("_alembic", "alembic")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated."""

    database_url: str = "sqlite:///nurture.db"
    clinic_name: str = "Sample Skin Clinic"
    clinic_address: str = "1 Example Street, London EC1A 1AA, United Kingdom"
    clinic_phone: str = "+44 20 7946 0000"
    clinic_email: str = "hello@clinic.example.com"
    from_name: str = "Sample Skin Clinic"
    from_address: str = "hello@clinic.example.com"
    timezone: str = "Europe/London"
    base_url: str = "https://clinic.example.com/nurture"
    secret_key: str | None = None
    transport: str = "outbox:./outbox"
    templates_dir: Path = DEFAULT_TEMPLATES
    send_window_start: time = time(9, 0)
    send_window_end: time = time(18, 0)
    min_spacing: timedelta = timedelta(weeks=6)
    lease_seconds: int = 300
    tick_seconds: int = 60
    batch_size: int = 200
    smtp_timeout: float = 30.0
    now_override: datetime | None = None
    config_file: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def now(self) -> datetime:
        """The current instant in UTC (``NURTURE_NOW`` replaces the clock)."""
        return self.now_override if self.now_override is not None else datetime.now(UTC)

    @property
    def clock(self) -> Callable[[], datetime]:
        """``now`` as a callable, for code that takes a clock."""
        return self.now

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded default database."""
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The SQLite file behind ``database_url``, if it is a file."""
        if not self.is_sqlite:
            return None
        from sqlalchemy.engine import make_url  # noqa: PLC0415  (keep settings import light)

        database = make_url(self.database_url).database
        if database in (None, "", ":memory:") or database.startswith("file:"):
            return None
        return Path(database)

    def signing_key(self) -> str:
        """The key that signs unsubscribe links and staff sessions.

        ``NURTURE_SECRET_KEY`` wins.  On an SQLite file a key is generated once
        and kept beside the database, so links stay valid across restarts and
        between ``tick``, ``run`` and ``serve``.
        """
        if self.secret_key:
            return self.secret_key
        db_file = self.sqlite_path()
        if db_file is None:
            raise ConfigurationError(
                "NURTURE_SECRET_KEY: not set. A server database needs a signing key "
                "shared by every worker; set NURTURE_SECRET_KEY to a long random string."
            )
        key_file = db_file.with_name(db_file.name + ".secret")
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return key_file.read_text().strip()

    def with_now(self, now: datetime | None) -> Settings:
        """A copy whose clock reads ``now``."""
        return replace(self, now_override=now)

    @property
    def sender(self) -> Address:
        """The From address as a header object."""
        local, _, domain = self.from_address.rpartition("@")
        return Address(display_name=self.from_name, username=local, domain=domain)


_ENV_PREFIX = "NURTURE_"


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Build ``Settings`` from a config file, the environment and CLI overrides.

    Later sources win: file, then ``NURTURE_*`` variables, then ``overrides``
    (keys as in the file, e.g. ``database_url``).
    """
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    config_file = _config_file(env)
    if config_file is not None:
        raw.update(_read_config_file(config_file))
    for key in _FILE_KEYS | {"now"}:
        value = env.get(_ENV_PREFIX + key.upper())
        if value is not None and value != "":
            raw[key] = value
    for key, value in (overrides or {}).items():
        if key not in _PARSERS:
            raise ConfigurationError(f"unknown setting {key!r}")
        if value is not None:
            raw[key] = value
    return _build(raw, config_file)


def _config_file(env: Mapping[str, str]) -> Path | None:
    named = env.get("NURTURE_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(f"NURTURE_CONFIG: no file at {path}; fix the path or unset it")
        return path
    local = Path("nurture.toml")
    return local if local.is_file() else None


def _read_config_file(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_FILE_KEYS))}"
        )
    return {k: str(v) for k, v in data.items()}


def _build(raw: Mapping[str, str], config_file: Path | None) -> Settings:
    values: dict[str, Any] = {"config_file": config_file}
    for key, text in raw.items():
        values.update(_PARSERS[key](text))
    if not values.get("from_name"):  # no sender name given: the clinic's name
        values["from_name"] = values.get("clinic_name", Settings.clinic_name)
    settings = replace(Settings(), **values)
    if settings.lease_seconds <= settings.smtp_timeout:
        raise ConfigurationError(
            f"NURTURE_LEASE_SECONDS: {settings.lease_seconds} must be longer than "
            f"NURTURE_SMTP_TIMEOUT ({settings.smtp_timeout:g}), "
            "or a slow send could outlive its claim"
        )
    return settings


def _whole(key: str, low: int, high: int) -> Callable[[str], dict[str, Any]]:
    def parse(text: str) -> dict[str, Any]:
        return {key: int(_number(f"NURTURE_{key.upper()}", text, low, high, whole=True))}

    return parse


def _parse_sender(text: str) -> dict[str, Any]:
    name, address = _sender(text)
    return {"from_name": name, "from_address": address}


def _parse_window(text: str) -> dict[str, Any]:
    start, end = _window(text)
    return {"send_window_start": start, "send_window_end": end}


# Each setting's parser returns the Settings fields it sets.
_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "database_url": lambda t: {"database_url": _database_url(t)},
    "clinic_name": lambda t: {"clinic_name": _one_line("clinic_name", t)},
    "clinic_address": lambda t: {"clinic_address": _one_line("clinic_address", t)},
    "clinic_phone": lambda t: {"clinic_phone": _one_line("clinic_phone", t)},
    "clinic_email": lambda t: {"clinic_email": _address("NURTURE_CLINIC_EMAIL", t)},
    "from": _parse_sender,
    "timezone": lambda t: {"timezone": _zone("NURTURE_TIMEZONE", t)},
    "base_url": lambda t: {"base_url": _base_url(t)},
    "secret_key": lambda t: {"secret_key": _secret(t)},
    "transport": lambda t: {"transport": _transport(t)},
    "templates": lambda t: {"templates_dir": _templates(t)},
    "send_window": _parse_window,
    "min_spacing_weeks": lambda t: {
        "min_spacing": timedelta(weeks=_number("NURTURE_MIN_SPACING_WEEKS", t, 0, 52))
    },
    "lease_seconds": _whole("lease_seconds", 5, 86400),
    "tick_seconds": _whole("tick_seconds", 1, 3600),
    "batch_size": _whole("batch_size", 1, 10000),
    "smtp_timeout": lambda t: {"smtp_timeout": _number("NURTURE_SMTP_TIMEOUT", t, 1, 600)},
    "now": lambda t: {"now_override": parse_now(t)},
}
#: Keys a config file may set (NURTURE_NOW is for the environment only).
_FILE_KEYS = frozenset(_PARSERS) - {"now"}


def parse_now(text: str) -> datetime:
    """Parse ``NURTURE_NOW``: ISO 8601 with a UTC offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise ConfigurationError(
            f"NURTURE_NOW: {text!r} is not an ISO 8601 date-time with offset, "
            "e.g. 2026-12-01T09:00:00+00:00"
        )
    return value.astimezone(UTC)


def _database_url(text: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (keep settings import light)
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"NURTURE_DATABASE_URL: {exc}; expected e.g. sqlite:///nurture.db or "
            "postgresql+psycopg://user@host/dbname"
        ) from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"NURTURE_DATABASE_URL: backend {url.get_backend_name()!r} is not supported; "
            "use sqlite:/// or postgresql+psycopg://"
        )
    if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _one_line(name: str, text: str) -> str:
    value = text.strip()
    controls = any(ord(c) < 32 or ord(c) == 127 for c in value)
    if not value or len(value.splitlines()) != 1 or controls:
        raise ConfigurationError(f"NURTURE_{name.upper()}: must be one non-empty line of text")
    return value


def _address(setting: str, text: str) -> str:
    try:
        return str(validate_email(text.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ConfigurationError(f"{setting}: {text!r} is not an email address ({exc})") from exc


def _sender(text: str) -> tuple[str, str]:
    if any(c in text for c in "\r\n"):
        raise ConfigurationError("NURTURE_FROM: must be one line")
    name, addr = parseaddr(text)
    if not addr:
        raise ConfigurationError(
            f"NURTURE_FROM: {text!r} is not a sender; use 'Clinic Name <care@clinic.com>'"
        )
    return name.strip(), _address("NURTURE_FROM", addr)


def _zone(setting: str, text: str) -> str:
    from nurture.validation import known_zones  # noqa: PLC0415  (avoids an import cycle)

    if text not in known_zones():
        raise ConfigurationError(
            f"{setting}: {text!r} is not an IANA time zone; use a name like Europe/London"
        )
    try:
        ZoneInfo(text)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - known_zones guards this
        raise ConfigurationError(f"{setting}: {text!r} cannot be loaded") from exc
    return text


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _base_url(text: str) -> str:
    parts = urlsplit(text.strip())
    loopback_http = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if (parts.scheme != "https" and not loopback_http) or not parts.hostname:
        raise ConfigurationError(
            f"NURTURE_BASE_URL: {text!r} must be an absolute https:// URL "
            "(http:// is allowed only for localhost), e.g. https://clinic.example.com/nurture"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError("NURTURE_BASE_URL: must not have a query or fragment")
    return text.strip().rstrip("/")


def _secret(text: str) -> str:
    if len(text) < 32:
        raise ConfigurationError(
            "NURTURE_SECRET_KEY: too short; use at least 32 random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return text


def _transport(text: str) -> str:
    scheme = text.split(":", 1)[0]
    if scheme not in ("outbox", "smtp", "smtps", "memory") or ":" not in text:
        raise ConfigurationError(
            f"NURTURE_TRANSPORT: {text!r} is not a transport; use outbox:FOLDER, "
            "smtp://user:pass@host:587 (STARTTLS with ?starttls=1) or smtps://host:465"
        )
    return text


def _templates(text: str) -> Path:
    path = Path(text).expanduser()
    if not (path / "sequence.toml").is_file():
        raise ConfigurationError(
            f"NURTURE_TEMPLATES: {path} has no sequence.toml; point it at a folder laid out "
            f"like {DEFAULT_TEMPLATES}"
        )
    return path


_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _window(text: str) -> tuple[time, time]:
    match = _WINDOW.match(text)
    try:
        if match is None:
            raise ValueError
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ConfigurationError(
            f"NURTURE_SEND_WINDOW: {text!r} is not a window; use HH:MM-HH:MM, e.g. 09:00-18:00"
        ) from None
    if end <= start:
        raise ConfigurationError("NURTURE_SEND_WINDOW: the end must be later than the start")
    return start, end


def _number(setting: str, text: str, low: float, high: float, *, whole: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(f"{setting}: {text!r} must be {kind} from {low:g} to {high:g}")
    return value
