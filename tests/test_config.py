"""Settings: sources and their precedence, every setting's rule, and the signing key."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from nurture.config import Settings, load_settings, parse_now
from nurture.errors import ConfigurationError


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run each test in an empty folder with no NURTURE_* variables set."""
    for key in list(os.environ):
        if key.startswith("NURTURE_"):
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _write_toml(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def _env(key: str) -> str:
    return "NURTURE_" + key.upper()


# --- sources -----------------------------------------------------------------


def test_no_sources_give_the_embedded_defaults() -> None:
    """With no file, an empty environment and no overrides, Settings() defaults apply."""
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.config_file is None


def test_environment_variables_set_their_settings() -> None:
    """Each NURTURE_* variable in the mapping sets the matching setting."""
    settings = load_settings(
        environ={
            "NURTURE_CLINIC_NAME": "Glow Clinic",
            "NURTURE_TIMEZONE": "America/New_York",
            "NURTURE_BATCH_SIZE": "50",
        }
    )
    assert settings.clinic_name == "Glow Clinic"
    assert settings.timezone == "America/New_York"
    assert settings.batch_size == 50


def test_default_environ_is_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, load_settings reads os.environ."""
    monkeypatch.setenv("NURTURE_CLINIC_NAME", "From Process Env")
    assert load_settings().clinic_name == "From Process Env"


def test_explicit_environ_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An explicit environ mapping replaces os.environ entirely."""
    monkeypatch.setenv("NURTURE_CLINIC_NAME", "From Process Env")
    assert load_settings(environ={}).clinic_name == Settings().clinic_name


def test_variables_without_the_prefix_are_ignored() -> None:
    """Only NURTURE_-prefixed names are read from the environment."""
    settings = load_settings(environ={"CLINIC_NAME": "Nope", "DATABASE_URL": "mysql://x/y"})
    assert settings == Settings()


def test_empty_environment_variable_is_ignored(isolated: Path) -> None:
    """An empty NURTURE_* variable leaves the file's (or default) value in place."""
    _write_toml(isolated / "nurture.toml", 'clinic_name = "File Clinic"\n')
    settings = load_settings(environ={"NURTURE_CLINIC_NAME": "", "NURTURE_TIMEZONE": ""})
    assert settings.clinic_name == "File Clinic"
    assert settings.timezone == Settings().timezone


def test_overrides_use_file_keys() -> None:
    """Overrides are keyed like the file (database_url, from, send_window...)."""
    settings = load_settings(
        environ={},
        overrides={
            "database_url": "sqlite:///other.db",
            "from": "Care Team <care@glow.example.com>",
            "send_window": "10:00-16:00",
        },
    )
    assert settings.database_url == "sqlite:///other.db"
    assert (settings.from_name, settings.from_address) == (
        "Care Team",
        "care@glow.example.com",
    )
    assert (settings.send_window_start, settings.send_window_end) == (time(10), time(16))


def test_config_file_in_working_directory_is_read(isolated: Path) -> None:
    """A nurture.toml in the working directory is read and recorded as the config file."""
    path = _write_toml(
        isolated / "nurture.toml",
        'clinic_name = "File Clinic"\ntimezone = "Europe/Paris"\n',
    )
    settings = load_settings(environ={})
    assert settings.clinic_name == "File Clinic"
    assert settings.timezone == "Europe/Paris"
    assert settings.config_file == Path("nurture.toml")
    assert settings.config_file.resolve() == path.resolve()


def test_nurture_config_names_the_file(tmp_path: Path) -> None:
    """NURTURE_CONFIG points at a config file anywhere, which is read and recorded."""
    path = _write_toml(tmp_path / "elsewhere.toml", 'clinic_phone = "+1 212 555 0100"\n')
    settings = load_settings(environ={"NURTURE_CONFIG": str(path)})
    assert settings.clinic_phone == "+1 212 555 0100"
    assert settings.config_file == path


def test_nurture_config_wins_over_working_directory_file(isolated: Path, tmp_path: Path) -> None:
    """When NURTURE_CONFIG is set, a nurture.toml in the working directory is not read."""
    _write_toml(isolated / "nurture.toml", 'clinic_name = "Local"\nclinic_phone = "111"\n')
    named = _write_toml(tmp_path / "named.toml", 'clinic_name = "Named"\n')
    settings = load_settings(environ={"NURTURE_CONFIG": str(named)})
    assert settings.clinic_name == "Named"
    assert settings.clinic_phone == Settings().clinic_phone


def test_nurture_config_pointing_nowhere_is_refused(tmp_path: Path) -> None:
    """A NURTURE_CONFIG path with no file behind it is a ConfigurationError naming it."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_CONFIG": str(missing)})
    assert str(info.value).startswith("NURTURE_CONFIG:")
    assert str(missing) in str(info.value)


def test_nurture_config_pointing_at_a_folder_is_refused(tmp_path: Path) -> None:
    """A NURTURE_CONFIG path that is a directory is refused like a missing file."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_CONFIG": str(tmp_path)})
    assert str(info.value).startswith("NURTURE_CONFIG:")


def test_config_file_toml_numbers_are_accepted(isolated: Path) -> None:
    """Numeric TOML values (not only strings) are taken for numeric settings."""
    _write_toml(
        isolated / "nurture.toml",
        "lease_seconds = 600\nsmtp_timeout = 45.5\nmin_spacing_weeks = 4\n",
    )
    settings = load_settings(environ={})
    assert settings.lease_seconds == 600
    assert settings.smtp_timeout == 45.5
    assert settings.min_spacing == timedelta(weeks=4)


def test_invalid_toml_is_refused_naming_the_file(isolated: Path) -> None:
    """A config file that is not TOML is a ConfigurationError starting with its path."""
    path = _write_toml(isolated / "nurture.toml", "clinic_name = \n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={})
    assert str(info.value).startswith(f"{Path('nurture.toml')}: not valid TOML")
    assert path.exists()


def test_non_utf8_config_file_is_refused(isolated: Path) -> None:
    """A config file that is not UTF-8 is a ConfigurationError, not a crash."""
    (isolated / "nurture.toml").write_bytes(b'clinic_name = "Caf\xe9"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={})
    assert "not valid TOML" in str(info.value)


def test_unknown_keys_in_config_file_are_refused(isolated: Path) -> None:
    """Unknown keys in the file are listed, sorted, with the known ones."""
    _write_toml(isolated / "nurture.toml", 'colour = "blue"\nclinc_name = "Typo"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={})
    message = str(info.value)
    assert message.startswith("nurture.toml: unknown setting(s) clinc_name, colour;")
    assert "known: " in message
    assert "clinic_name" in message.split("known: ", 1)[1]


def test_now_cannot_be_set_in_the_config_file(isolated: Path) -> None:
    """NURTURE_NOW is environment-only: a 'now' key in the file is unknown."""
    _write_toml(isolated / "nurture.toml", 'now = "2026-12-01T09:00:00+00:00"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={})
    assert "unknown setting(s) now;" in str(info.value)


def test_malformed_value_in_file_names_the_setting(isolated: Path) -> None:
    """A bad value read from the file is reported under the setting's NURTURE_ name."""
    _write_toml(isolated / "nurture.toml", 'timezone = "Mars/Base"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={})
    assert str(info.value).startswith("NURTURE_TIMEZONE: 'Mars/Base'")


# --- precedence --------------------------------------------------------------


@pytest.fixture
def layered(isolated: Path) -> Path:
    """A nurture.toml setting clinic_name, clinic_phone and tick_seconds."""
    return _write_toml(
        isolated / "nurture.toml",
        'clinic_name = "File"\nclinic_phone = "file-phone"\ntick_seconds = 10\n',
    )


def test_environment_beats_file(layered: Path) -> None:
    """A NURTURE_* variable replaces the same setting from the file; others stay."""
    settings = load_settings(environ={"NURTURE_CLINIC_NAME": "Env"})
    assert settings.clinic_name == "Env"
    assert settings.clinic_phone == "file-phone"
    assert settings.tick_seconds == 10


def test_overrides_beat_environment_and_file(layered: Path) -> None:
    """An override replaces the same setting from both the environment and the file."""
    settings = load_settings(
        environ={"NURTURE_TICK_SECONDS": "20", "NURTURE_CLINIC_NAME": "Env"},
        overrides={"tick_seconds": "30"},
    )
    assert settings.tick_seconds == 30
    assert settings.clinic_name == "Env"
    assert settings.clinic_phone == "file-phone"


def test_clinic_name_also_names_the_sender() -> None:
    """Setting clinic_name without 'from' makes it the From display name too."""
    settings = load_settings(environ={"NURTURE_CLINIC_NAME": "Glow Clinic"})
    assert settings.from_name == "Glow Clinic"
    assert settings.from_address == Settings().from_address


def test_explicit_sender_name_wins_over_clinic_name() -> None:
    """A display name given in 'from' is kept even when clinic_name is set."""
    settings = load_settings(
        environ={
            "NURTURE_CLINIC_NAME": "Glow Clinic",
            "NURTURE_FROM": "Glow Care Team <care@glow.example.com>",
        }
    )
    assert settings.from_name == "Glow Care Team"
    assert settings.from_address == "care@glow.example.com"


# --- each setting's rule -----------------------------------------------------


MALFORMED = [
    ("database_url", "not a url"),
    ("database_url", "mysql://user@host/db"),
    ("clinic_name", "   "),
    ("clinic_name", "Glow\nClinic"),
    ("clinic_address", "1 High St\r\nLondon"),
    ("clinic_phone", "+44\x0020"),
    ("clinic_phone", "+44\x7f20"),
    ("clinic_email", "not-an-address"),
    ("clinic_email", "care@@glow.example.com"),
    ("from", "Glow <>"),
    ("from", "Glow Clinic"),
    ("from", "Glow\r\nBcc: x@evil.example.com <care@glow.example.com>"),
    ("timezone", "Mars/Base"),
    ("timezone", "europe/london"),
    ("base_url", "http://clinic.example.com/nurture"),
    ("base_url", "ftp://clinic.example.com/nurture"),
    ("base_url", "clinic.example.com/nurture"),
    ("base_url", "https://"),
    ("base_url", "https://clinic.example.com/nurture?x=1"),
    ("base_url", "https://clinic.example.com/nurture#top"),
    ("secret_key", "x" * 31),
    ("transport", "outbox"),
    ("transport", "http://mail.example.com"),
    ("transport", "./outbox"),
    ("templates", "no-such-folder"),
    ("send_window", "9-18"),
    ("send_window", "09:00"),
    ("send_window", "18:00-09:00"),
    ("send_window", "09:00-09:00"),
    ("send_window", "25:00-26:00"),
    ("send_window", "09:60-18:00"),
    ("min_spacing_weeks", "-1"),
    ("min_spacing_weeks", "53"),
    ("min_spacing_weeks", "six"),
    ("min_spacing_weeks", "nan"),
    ("lease_seconds", "4"),
    ("lease_seconds", "86401"),
    ("lease_seconds", "300.5"),
    ("lease_seconds", "lots"),
    ("tick_seconds", "0"),
    ("tick_seconds", "3601"),
    ("tick_seconds", "1.5"),
    ("batch_size", "0"),
    ("batch_size", "10001"),
    ("batch_size", "inf"),
    ("smtp_timeout", "0.5"),
    ("smtp_timeout", "601"),
    ("smtp_timeout", "nan"),
    ("now", "2026-12-01T09:00:00"),
    ("now", "yesterday"),
]


@pytest.mark.parametrize(("key", "value"), MALFORMED, ids=[f"{k}={v!r}" for k, v in MALFORMED])
def test_malformed_setting_is_refused_naming_the_setting(key: str, value: str) -> None:
    """Every malformed value raises ConfigurationError whose message starts with its name."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={_env(key): value})
    assert str(info.value).startswith(f"{_env(key)}: ")


@pytest.mark.parametrize(("key", "value"), MALFORMED, ids=[f"{k}={v!r}" for k, v in MALFORMED])
def test_malformed_override_is_refused_naming_the_setting(key: str, value: str) -> None:
    """A malformed override is refused under the same NURTURE_ name as the variable."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={}, overrides={key: value})
    assert str(info.value).startswith(f"{_env(key)}: ")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sqlite:///nurture.db", "sqlite:///nurture.db"),
        ("sqlite:////var/lib/nurture/nurture.db", "sqlite:////var/lib/nurture/nurture.db"),
        ("postgresql://app@db.internal/nurture", "postgresql+psycopg://app@db.internal/nurture"),
        (
            "postgresql+psycopg://app:s3cr%40t@db.internal:5433/nurture",
            "postgresql+psycopg://app:s3cr%40t@db.internal:5433/nurture",
        ),
        (
            "postgresql://app:pw@db.internal/nurture",
            "postgresql+psycopg://app:pw@db.internal/nurture",
        ),
    ],
)
def test_database_url_is_normalised(raw: str, expected: str) -> None:
    """SQLite URLs are kept; plain postgresql:// gains the psycopg driver; passwords survive."""
    assert load_settings(environ={"NURTURE_DATABASE_URL": raw}).database_url == expected


def test_unsupported_backend_is_named_in_the_refusal() -> None:
    """A database URL for another backend names that backend."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_DATABASE_URL": "mysql://user@host/db"})
    assert "backend 'mysql' is not supported" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://clinic.example.com/nurture", "https://clinic.example.com/nurture"),
        ("https://clinic.example.com/nurture/", "https://clinic.example.com/nurture"),
        ("  https://clinic.example.com  ", "https://clinic.example.com"),
        ("https://localhost:8443/", "https://localhost:8443"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("http://127.0.0.1:8080/nurture", "http://127.0.0.1:8080/nurture"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_base_url_accepts_https_and_loopback_http(raw: str, expected: str) -> None:
    """https:// anywhere, http:// only on localhost/127.0.0.1/::1; trailing '/' dropped."""
    assert load_settings(environ={"NURTURE_BASE_URL": raw}).base_url == expected


@pytest.mark.parametrize(
    "raw",
    [
        "http://clinic.example.com",
        "http://localhost.example.com",
        "http://127.0.0.2:8000",
        "http://192.168.1.10",
    ],
)
def test_base_url_refuses_http_beyond_loopback(raw: str) -> None:
    """Plain http:// to any host other than the loopback names is refused."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_BASE_URL": raw})
    message = str(info.value)
    assert message.startswith("NURTURE_BASE_URL: ")
    assert "must be an absolute https:// URL" in message


def test_base_url_refuses_query_and_fragment() -> None:
    """A base URL with a query string is refused with a message saying so."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_BASE_URL": "https://clinic.example.com/?a=1"})
    assert str(info.value) == "NURTURE_BASE_URL: must not have a query or fragment"


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        ("09:00-18:00", time(9, 0), time(18, 0)),
        ("8:30-17:45", time(8, 30), time(17, 45)),
        ("  07:05 - 21:00 ", time(7, 5), time(21, 0)),
        ("00:00-23:59", time(0, 0), time(23, 59)),
    ],
)
def test_send_window_is_parsed(raw: str, start: time, end: time) -> None:
    """HH:MM-HH:MM (space around '-' allowed) sets the send window's start and end."""
    settings = load_settings(environ={"NURTURE_SEND_WINDOW": raw})
    assert (settings.send_window_start, settings.send_window_end) == (start, end)


@pytest.mark.parametrize("raw", ["18:00-09:00", "12:00-12:00"])
def test_send_window_must_end_after_it_starts(raw: str) -> None:
    """A window whose end is not later than its start is refused, saying so."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_SEND_WINDOW": raw})
    assert str(info.value) == "NURTURE_SEND_WINDOW: the end must be later than the start"


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        ("lease_seconds", "31", "lease_seconds", 31),
        ("lease_seconds", "86400", "lease_seconds", 86400),
        ("tick_seconds", "1", "tick_seconds", 1),
        ("tick_seconds", "3600", "tick_seconds", 3600),
        ("batch_size", "1", "batch_size", 1),
        ("batch_size", "10000", "batch_size", 10000),
        ("smtp_timeout", "1", "smtp_timeout", 1.0),
        ("smtp_timeout", "12.5", "smtp_timeout", 12.5),
        ("min_spacing_weeks", "0", "min_spacing", timedelta(0)),
        ("min_spacing_weeks", "2.5", "min_spacing", timedelta(weeks=2.5)),
        ("min_spacing_weeks", "52", "min_spacing", timedelta(weeks=52)),
    ],
)
def test_numbers_at_their_limits_are_accepted(
    key: str, value: str, attribute: str, expected: object
) -> None:
    """Numeric settings accept their inclusive bounds and convert to the field's type."""
    settings = load_settings(environ={_env(key): value})
    result = getattr(settings, attribute)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("key", "low", "high"), [("lease_seconds", 5, 86400)])
def test_number_refusal_states_the_accepted_range(key: str, low: int, high: int) -> None:
    """A refused whole-number setting says it must be a whole number in its range."""
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={_env(key): "x"})
    assert str(info.value) == f"{_env(key)}: 'x' must be a whole number from {low} to {high}"


@pytest.mark.parametrize(
    "raw",
    [
        "outbox:./outbox",
        "outbox:/var/spool/nurture",
        "smtp://user:pass@mail.example.com:587?starttls=1",
        "smtps://mail.example.com:465",
        "memory:",
    ],
)
def test_supported_transports_are_accepted(raw: str) -> None:
    """outbox:, smtp://, smtps:// and memory: transports are kept as written."""
    assert load_settings(environ={"NURTURE_TRANSPORT": raw}).transport == raw


def test_templates_folder_with_sequence_file_is_accepted(tmp_path: Path) -> None:
    """A templates folder holding sequence.toml becomes templates_dir."""
    folder = tmp_path / "my-templates"
    folder.mkdir()
    (folder / "sequence.toml").write_text("", encoding="utf-8")
    settings = load_settings(environ={"NURTURE_TEMPLATES": str(folder)})
    assert settings.templates_dir == folder


def test_templates_folder_without_sequence_file_is_refused(tmp_path: Path) -> None:
    """A templates folder lacking sequence.toml is refused, naming the folder."""
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_TEMPLATES": str(folder)})
    assert str(info.value).startswith(f"NURTURE_TEMPLATES: {folder} has no sequence.toml")


def test_secret_key_of_32_characters_is_accepted() -> None:
    """A 32-character secret key is long enough and kept as given."""
    key = "k" * 32
    assert load_settings(environ={"NURTURE_SECRET_KEY": key}).secret_key == key


def test_clinic_email_is_normalised() -> None:
    """The clinic email is trimmed and its domain lower-cased."""
    settings = load_settings(environ={"NURTURE_CLINIC_EMAIL": " Care@Glow.Example.COM "})
    assert settings.clinic_email == "Care@glow.example.com"


def test_text_settings_are_trimmed() -> None:
    """Clinic name, address and phone are stored without surrounding whitespace."""
    settings = load_settings(
        environ={
            "NURTURE_CLINIC_NAME": "  Glow  ",
            "NURTURE_CLINIC_ADDRESS": " 1 High St ",
            "NURTURE_CLINIC_PHONE": "\t+44 1 \t",
        }
    )
    assert (settings.clinic_name, settings.clinic_address, settings.clinic_phone) == (
        "Glow",
        "1 High St",
        "+44 1",
    )


def test_sender_header_combines_name_and_address() -> None:
    """Settings.sender is an Address built from from_name and from_address."""
    settings = load_settings(environ={"NURTURE_FROM": "Glow Care <care@glow.example.com>"})
    assert settings.sender.display_name == "Glow Care"
    assert settings.sender.addr_spec == "care@glow.example.com"


# --- lease vs SMTP timeout ---------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "timeout"), [("30", "30"), ("10", None), ("60", "60.5"), ("300", "600")]
)
def test_lease_not_longer_than_smtp_timeout_is_refused(lease: str, timeout: str | None) -> None:
    """A lease that does not outlast the SMTP timeout is refused under NURTURE_LEASE_SECONDS."""
    environ = {"NURTURE_LEASE_SECONDS": lease}
    if timeout is not None:
        environ["NURTURE_SMTP_TIMEOUT"] = timeout
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert message.startswith(f"NURTURE_LEASE_SECONDS: {lease} must be longer than")
    assert "NURTURE_SMTP_TIMEOUT" in message


@pytest.mark.parametrize(("lease", "timeout"), [("31", "30"), ("60", "59.5"), ("601", "600")])
def test_lease_longer_than_smtp_timeout_is_accepted(lease: str, timeout: str) -> None:
    """A lease strictly longer than the SMTP timeout is accepted."""
    settings = load_settings(
        environ={"NURTURE_LEASE_SECONDS": lease, "NURTURE_SMTP_TIMEOUT": timeout}
    )
    assert settings.lease_seconds == int(lease)
    assert settings.smtp_timeout == float(timeout)


def test_lease_rule_applies_across_sources(isolated: Path) -> None:
    """The lease rule checks the final values, wherever each came from."""
    _write_toml(isolated / "nurture.toml", "lease_seconds = 40\n")
    with pytest.raises(ConfigurationError) as info:
        load_settings(environ={"NURTURE_SMTP_TIMEOUT": "45"})
    assert str(info.value).startswith("NURTURE_LEASE_SECONDS: 40 must be longer than")


# --- now ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-01T09:00:00+00:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00Z", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        (" 2026-12-01T04:00-05:00 ", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
    ],
)
def test_parse_now_returns_the_instant_in_utc(raw: str, expected: datetime) -> None:
    """NURTURE_NOW with any offset is converted to the same instant tagged UTC."""
    result = parse_now(raw)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize("raw", ["2026-12-01T09:00:00", "2026-12-01", "now", ""])
def test_parse_now_refuses_times_without_offset(raw: str) -> None:
    """A NURTURE_NOW without a UTC offset, or not a date-time, is refused and echoed."""
    with pytest.raises(ConfigurationError) as info:
        parse_now(raw)
    assert str(info.value).startswith(f"NURTURE_NOW: {raw!r} is not an ISO 8601 date-time")


def test_nurture_now_replaces_the_clock() -> None:
    """With NURTURE_NOW set, Settings.now() and Settings.clock() return that instant."""
    settings = load_settings(environ={"NURTURE_NOW": "2026-12-01T10:00:00+01:00"})
    expected = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert settings.now_override == expected
    assert settings.now() == expected
    assert settings.clock() == expected


def test_clock_without_override_is_the_real_utc_time() -> None:
    """Without NURTURE_NOW, now() is the current time, timezone-aware in UTC."""
    before = datetime.now(UTC)
    current = load_settings(environ={}).now()
    after = datetime.now(UTC)
    assert before <= current <= after
    assert current.utcoffset() == timedelta(0)


def test_with_now_returns_a_copy_with_that_clock() -> None:
    """with_now gives a copy reading the given instant and leaves the original alone."""
    original = Settings()
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    copy = original.with_now(moment)
    assert copy.now() == moment
    assert original.now_override is None


# --- signing key -------------------------------------------------------------


def test_configured_secret_key_is_the_signing_key(tmp_path: Path) -> None:
    """NURTURE_SECRET_KEY is used as is, and no key file is written."""
    key = "s" * 40
    db = tmp_path / "nurture.db"
    settings = load_settings(
        environ={"NURTURE_SECRET_KEY": key, "NURTURE_DATABASE_URL": f"sqlite:///{db}"}
    )
    assert settings.signing_key() == key
    assert not (tmp_path / "nurture.db.secret").exists()


def test_sqlite_signing_key_is_generated_beside_the_database(tmp_path: Path) -> None:
    """On an SQLite file without a secret, a long key is written to <db>.secret, mode 0600."""
    db = tmp_path / "data" / "nurture.db"
    settings = load_settings(environ={"NURTURE_DATABASE_URL": f"sqlite:///{db}"})
    key = settings.signing_key()
    key_file = tmp_path / "data" / "nurture.db.secret"
    assert key_file.read_text() == key
    assert len(key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_sqlite_signing_key_is_stable_across_calls_and_loads(tmp_path: Path) -> None:
    """A second call, or a freshly loaded Settings, returns the same generated key."""
    url = f"sqlite:///{tmp_path / 'nurture.db'}"
    first = load_settings(environ={"NURTURE_DATABASE_URL": url}).signing_key()
    again = load_settings(environ={"NURTURE_DATABASE_URL": url})
    assert again.signing_key() == first
    assert again.signing_key() == first


def test_each_sqlite_database_gets_its_own_random_key(tmp_path: Path) -> None:
    """Two databases get different generated keys."""
    one = Settings(database_url=f"sqlite:///{tmp_path / 'one.db'}").signing_key()
    two = Settings(database_url=f"sqlite:///{tmp_path / 'two.db'}").signing_key()
    assert one != two


def test_existing_key_file_is_read_not_replaced(tmp_path: Path) -> None:
    """A key file already beside the database is used (trimmed) and left unchanged."""
    key_file = tmp_path / "nurture.db.secret"
    key_file.write_text("existing-key-value\n")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'nurture.db'}")
    assert settings.signing_key() == "existing-key-value"
    assert key_file.read_text() == "existing-key-value\n"


def test_relative_sqlite_key_file_goes_in_the_working_directory(isolated: Path) -> None:
    """The default sqlite:///nurture.db keeps its key as ./nurture.db.secret."""
    key = load_settings(environ={}).signing_key()
    assert (isolated / "nurture.db.secret").read_text() == key


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db.internal/nurture",
        "postgresql+psycopg://app@db.internal/nurture",
        "sqlite://",
    ],
)
def test_signing_key_without_secret_or_sqlite_file_is_refused(url: str, isolated: Path) -> None:
    """A server database, or SQLite without a file, cannot get a key without a secret."""
    settings = load_settings(environ={"NURTURE_DATABASE_URL": url})
    with pytest.raises(ConfigurationError) as info:
        settings.signing_key()
    assert str(info.value).startswith("NURTURE_SECRET_KEY: not set.")
    assert list(isolated.iterdir()) == []


def test_in_memory_sqlite_settings_refuse_to_make_a_key(isolated: Path) -> None:
    """Settings on sqlite:///:memory: have no file to keep a key beside, so refuse."""
    with pytest.raises(ConfigurationError) as info:
        Settings(database_url="sqlite:///:memory:").signing_key()
    assert str(info.value).startswith("NURTURE_SECRET_KEY: not set.")
    assert list(isolated.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///nurture.db", Path("nurture.db")),
        ("sqlite:////var/lib/n/nurture.db", Path("/var/lib/n/nurture.db")),
        ("sqlite:///nurture.db?timeout=5", Path("nurture.db")),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://app@db/n", None),
    ],
)
def test_sqlite_path_finds_the_database_file(url: str, expected: Path | None) -> None:
    """sqlite_path is the file behind an SQLite URL, without query, else None."""
    assert Settings(database_url=url).sqlite_path() == expected


def test_sender_without_display_name_takes_the_clinic_name() -> None:
    """NURTURE_FROM without a name shows the configured clinic's name, not the sample's."""
    settings = load_settings(
        environ={"NURTURE_CLINIC_NAME": "Glow Clinic", "NURTURE_FROM": "care@glow.example.com"}
    )
    assert (settings.from_name, settings.from_address) == ("Glow Clinic", "care@glow.example.com")


def test_memory_database_from_environment_makes_no_key_file(isolated: Path) -> None:
    """An in-memory SQLite URL given by variable has no file to keep a key beside."""
    settings = load_settings(environ={"NURTURE_DATABASE_URL": "sqlite:///:memory:"})
    with pytest.raises(ConfigurationError, match="NURTURE_SECRET_KEY"):
        settings.signing_key()
    assert list(isolated.iterdir()) == []


def test_key_file_follows_the_real_database_path(tmp_path: Path) -> None:
    """A database path with characters URLs escape keeps its key beside the real file."""
    db_file = tmp_path / "a@b.db"
    settings = load_settings(environ={"NURTURE_DATABASE_URL": f"sqlite:///{db_file}"})
    settings.signing_key()
    assert (tmp_path / "a@b.db.secret").is_file()


@pytest.mark.parametrize("text", ["a\u2028b", "a\x85b", "a\u2029b"])
def test_unicode_line_breaks_in_clinic_text_are_refused(text: str) -> None:
    """Clinic texts must be one line, by Unicode's rules too."""
    with pytest.raises(ConfigurationError, match="NURTURE_CLINIC_ADDRESS"):
        load_settings(environ={"NURTURE_CLINIC_ADDRESS": text})


def test_unknown_override_is_a_configuration_error() -> None:
    """An override naming no setting is refused as configuration, not a crash."""
    with pytest.raises(ConfigurationError, match="bogus"):
        load_settings(environ={}, overrides={"bogus": "x"})
