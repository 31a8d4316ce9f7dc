"""Bad input is refused with one clear line, a non-zero exit and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli, snapshot

NOW = "2026-11-25T12:00:00+00:00"
ANA = (
    "enroll",
    "ana@example.com",
    "--name",
    "Ana",
    "--scar",
    "atrophic",
    "--timezone",
    "Europe/London",
)

# (what is set up first, the bad command, words the error must contain)
CASES: list[tuple[str, list[tuple[str, ...]], tuple[str, ...], str]] = [
    (
        "malformed email",
        [],
        ("enroll", "ana@@example.com", "--name", "A", "--scar", "pih"),
        "email:",
    ),
    ("email without domain", [], ("enroll", "ana", "--name", "A", "--scar", "pih"), "email:"),
    ("special-use domain", [], ("enroll", "a@localhost", "--name", "A", "--scar", "pih"), "email:"),
    (
        "name with newline",
        [],
        ("enroll", "b@example.com", "--name", "Bo\nBcc: x@evil.com", "--scar", "pih"),
        "name:",
    ),
    (
        "name with carriage return",
        [],
        ("enroll", "b@example.com", "--name", "Bo\rX", "--scar", "pih"),
        "name:",
    ),
    (
        "name with control char",
        [],
        ("enroll", "b@example.com", "--name", "Bo\x07", "--scar", "pih"),
        "name:",
    ),
    (
        "encoded-word name",
        [],
        ("enroll", "b@example.com", "--name", "=?utf-8?q?Admin?=", "--scar", "pih"),
        "name:",
    ),
    ("empty name", [], ("enroll", "b@example.com", "--name", "  ", "--scar", "pih"), "name:"),
    ("huge name", [], ("enroll", "b@example.com", "--name", "x" * 201, "--scar", "pih"), "name:"),
    ("unknown scar", [], ("enroll", "b@example.com", "--name", "B", "--scar", "keloid"), "scar:"),
    (
        "hypertrophic only",
        [],
        ("enroll", "b@example.com", "--name", "B", "--scar", "hypertrophic"),
        "worse",
    ),
    (
        "unknown zone",
        [],
        ("enroll", "b@example.com", "--name", "B", "--scar", "pih", "--timezone", "Mars/Olympus"),
        "timezone:",
    ),
    (
        "zero sessions",
        [],
        ("enroll", "b@example.com", "--name", "B", "--scar", "pih", "--sessions", "0"),
        "sessions:",
    ),
    (
        "too many sessions",
        [],
        ("enroll", "b@example.com", "--name", "B", "--scar", "pih", "--sessions", "21"),
        "sessions:",
    ),
    ("double enrolment", [ANA], ANA, "already has an active course"),
    ("unknown client", [], ("book", "zz@example.com", "1", "2026-12-03T10:30"), "no client"),
    ("session above N", [ANA], ("book", "ana@example.com", "6", "2026-12-03T10:30"), "1 to 5"),
    ("session zero", [ANA], ("book", "ana@example.com", "0", "2026-12-03T10:30"), "1 to 5"),
    (
        "session not a number",
        [ANA],
        ("book", "ana@example.com", "two", "2026-12-03T10:30"),
        "session:",
    ),
    (
        "impossible date",
        [ANA],
        ("book", "ana@example.com", "1", "2026-02-30T10:00"),
        "not a valid date",
    ),
    ("garbage date", [ANA], ("book", "ana@example.com", "1", "next tuesday"), "not a valid date"),
    ("DST gap", [ANA], ("book", "ana@example.com", "1", "2027-03-28T01:30"), "does not exist"),
    (
        "year out of range",
        [ANA],
        ("book", "ana@example.com", "1", "9999-12-31T23:59"),
        "check the year",
    ),
    ("years ahead", [ANA], ("book", "ana@example.com", "1", "2062-12-03T10:30"), "two years ahead"),
    ("DST overlap", [ANA], ("book", "ana@example.com", "1", "2027-10-31T01:30"), "happens twice"),
    (
        "skips a session",
        [ANA],
        ("book", "ana@example.com", "2", "2027-01-20T11:00"),
        "book session 1 first",
    ),
    (
        "out of order",
        [
            ANA,
            ("book", "ana@example.com", "1", "2027-01-20T11:00"),
            ("book", "ana@example.com", "2", "2027-03-20T11:00"),
        ],
        ("book", "ana@example.com", "2", "2027-01-10T11:00"),
        "must be in order",
    ),
    (
        "moves before later one",
        [
            ANA,
            ("book", "ana@example.com", "1", "2027-01-20T11:00"),
            ("book", "ana@example.com", "2", "2027-03-20T11:00"),
        ],
        ("book", "ana@example.com", "1", "2027-04-01T11:00"),
        "must be in order",
    ),
    ("complete never booked", [ANA], ("complete", "ana@example.com", "1"), "not booked"),
    (
        "complete out of order",
        [
            ANA,
            ("book", "ana@example.com", "1", "2026-11-01T11:00"),
            ("book", "ana@example.com", "2", "2026-11-20T11:00"),
        ],
        ("complete", "ana@example.com", "2"),
        "session 1 has not been attended",
    ),
    (
        "complete in the future",
        [ANA, ("book", "ana@example.com", "1", "2026-12-20T11:00")],
        ("complete", "ana@example.com", "1"),
        "still in the future",
    ),
    ("cancel unbooked", [ANA], ("cancel", "ana@example.com", "1"), "nothing to cancel"),
    (
        "withdraw twice",
        [ANA, ("withdraw", "ana@example.com")],
        ("withdraw", "ana@example.com"),
        "withdrawn",
    ),
    (
        "book after withdrawal",
        [ANA, ("withdraw", "ana@example.com")],
        ("book", "ana@example.com", "1", "2026-12-03T10:30"),
        "withdrawn",
    ),
]


@pytest.mark.parametrize(
    ("setup", "command", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_with_nothing_written(
    cli: Cli, setup: list[tuple[str, ...]], command: tuple[str, ...], expected: str
) -> None:
    """The command fails with one `error:` line naming the problem, and no row changes."""
    for step in setup:
        cli.ok(*step, now=NOW)
    before = snapshot(cli.url)
    result = cli(*command, now=NOW)
    assert result.code != 0
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.err
    assert snapshot(cli.url) == before


def test_unmigrated_database_says_what_to_do(tmp_path: Path, cli: Cli) -> None:
    """A command on an empty database tells the user to run `nurture db upgrade`."""
    cli.url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = cli("clients")
    assert result.code == 1
    assert "run `nurture db upgrade`" in result.err


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("NURTURE_TIMEZONE", "Nowhere/Land", "NURTURE_TIMEZONE"),
        ("NURTURE_NOW", "tomorrow", "NURTURE_NOW"),
        ("NURTURE_NOW", "2026-11-25T12:00", "NURTURE_NOW"),
        ("NURTURE_BASE_URL", "ftp://clinic.example.com", "NURTURE_BASE_URL"),
        ("NURTURE_FROM", "not an address", "NURTURE_FROM"),
        ("NURTURE_SEND_WINDOW", "18:00-09:00", "NURTURE_SEND_WINDOW"),
        ("NURTURE_LEASE_SECONDS", "ten", "NURTURE_LEASE_SECONDS"),
        ("NURTURE_DATABASE_URL", "mysql://x/y", "NURTURE_DATABASE_URL"),
    ],
)
def test_malformed_setting_is_named(cli: Cli, variable: str, value: str, expected: str) -> None:
    """A malformed setting stops every command with a message naming it."""
    before = snapshot(cli.url)
    result = cli("enroll", "b@example.com", "--name", "B", "--scar", "pih", env={variable: value})
    assert result.code == 2
    assert result.err.startswith(f"configuration error: {expected}")
    assert snapshot(cli.url) == before
