"""Scenario 9: hypothesis-generated enrolments and bookings through every front door.

Each input is either accepted and stored exactly (after the documented
trimming and address normalisation), or refused with one clear, printable
error and not a byte written.  Every email that then goes out is parsed: the
same fixed set of headers, one recipient, the name intact in the To header.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from nurture.db.models import Client, Course, TreatmentSession
from nurture.domain import ScarType, canonical_scars
from nurture.rendering import envelope_address
from tests.battery import hostile
from tests.battery.doors import Answer, ApiDoor, CliDoor, FrontDoor
from tests.battery.sink import FaultSink
from tests.conftest import RUN_SLOW, Cli, snapshot

NOW = "2026-11-30T10:00:00+00:00"
#: Open all day, so every client's welcome is due at once, whatever their zone.
ALL_DAY = {"NURTURE_SEND_WINDOW": "00:00-23:59"}
#: Every front door hostile input is tried through.
DOORS: dict[str, Callable[[Cli], FrontDoor]] = {
    "cli": lambda cli: CliDoor(cli, NOW, ALL_DAY),
    "api": lambda cli: ApiDoor(cli, ALL_DAY),
}
HEADERS = [
    "From", "To", "Subject", "Date", "Message-ID",
    "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
]  # fmt: skip
SCAR_WORDS = {"atrophic": "atrophic", "hypertrophic": "hypertrophic", "pih": "pih"}
HYPOTHESIS = settings(
    max_examples=250 if RUN_SLOW else 30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one database across examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def open_door(request: pytest.FixtureRequest, name: str, cli: Cli) -> FrontDoor:
    """Build a front door that is closed (connections released) when the test ends."""
    door = DOORS[name](cli)
    request.addfinalizer(getattr(door, "close", lambda: None))
    return door


def assert_clear_refusal(answer: Answer) -> None:
    """One printable error that says what was wrong; never a traceback."""
    text = answer.error.strip()
    assert text, "refused without saying why"
    assert "Traceback" not in text, text
    assert all(c.isprintable() or c == "\n" for c in text), repr(text)
    lines = text.splitlines()
    if answer.kind == "input":
        assert len(lines) == 1, text
        assert lines[0].startswith("error: "), text
    else:
        assert any(line.startswith("Error: ") for line in lines), text


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text.strip()).casefold()


def _same_address(stored: str, typed: str) -> bool:
    """True when ``stored`` is ``typed`` after trimming, case folding and IDNA."""
    return _fold(stored) == _fold(typed) or envelope_address(stored) == _fold(typed)


def _newest_course(url: str) -> tuple[Client, Course]:
    engine = create_engine(url)
    try:
        with Session(engine) as db:
            course = db.scalars(select(Course).order_by(Course.id.desc()).limit(1)).one()
            return course.client, course
    finally:
        engine.dispose()


def _withdraw(cli: Cli, email: str) -> None:
    """End the course, so a replayed example can enrol the same address again."""
    cli.ok("withdraw", "--", email, now=NOW)


def _expected_scars(typed: list[str]) -> str:
    kinds = {ScarType(SCAR_WORDS[s.strip().lower()]) for s in typed}
    return ",".join(canonical_scars(kinds))


@pytest.mark.parametrize("door_name", DOORS)
def test_enrolment_is_stored_exactly_or_refused_without_a_trace(
    request: pytest.FixtureRequest, cli: Cli, door_name: str
) -> None:
    """A hostile enrolment is stored exactly as typed (trimmed), or refused with nothing written."""
    door = open_door(request, door_name, cli)

    @HYPOTHESIS
    @given(hostile.emails, hostile.names, hostile.scars, hostile.zones, hostile.sessions)
    @example("ana@example.com", "Ana\r\nBcc: x@example.org", ["pih"], None, "5")
    @example("ana@example.com\r\nBcc: x@example.org", "Ana", ["pih"], None, "5")
    @example("ana@example.com", "=?utf-8?b?QWxpY2U=?=", ["pih"], None, "5")
    @example("ana@example.com", "x" * 20000, ["pih"], None, "5")
    @example("ana@example.com", "Ana", ["lasers"], "Mars/Olympus", "99999999999999999999")
    def enrol(email: str, name: str, scars: list[str], zone: str | None, planned: str) -> None:
        before = snapshot(cli.url)
        answer = door.enroll(email, name, scars, zone, planned)
        if not answer.accepted:
            assert_clear_refusal(answer)
            assert snapshot(cli.url) == before
            return
        client, course = _newest_course(cli.url)
        assert client.name == name.strip()
        assert client.email is not None
        assert _same_address(client.email, email), (client.email, email)
        assert client.timezone == (zone.strip() if zone else "Europe/London")
        assert course.sessions_planned == int(planned.strip() or "5")
        assert course.scar_types == _expected_scars(scars)
        _withdraw(cli, client.email)

    enrol()


@pytest.mark.parametrize("door_name", DOORS)
def test_booking_is_stored_exactly_or_refused_without_a_trace(
    request: pytest.FixtureRequest, cli: Cli, door_name: str
) -> None:
    """A hostile booking lands at exactly the local time typed, or is refused, nothing written."""
    door = open_door(request, door_name, cli)
    zones = ["Europe/London", "America/Santiago", "Australia/Lord_Howe", "America/New_York"]
    for n, zone in enumerate(zones):
        assert door.enroll(f"b{n}@example.com", "Bo Oking", ["pih"], zone, "20").accepted

    @HYPOTHESIS
    @given(st.integers(0, len(zones) - 1), hostile.session_numbers, hostile.whens)
    @example(2, "1", "0001-01-01T00:00")  # east of UTC: before the first instant Python knows
    @example(0, "1", "0001-01-01T00:00-05:00")  # planning would reach back before year 1
    @example(0, "1", "9999-12-31T23:59")  # a far-future year: stored exactly, or refused
    def book(who: int, session: str, when: str) -> None:
        before = snapshot(cli.url)
        answer = door.book(f"b{who}@example.com", session, when)
        if not answer.accepted:
            assert_clear_refusal(answer)
            assert snapshot(cli.url) == before
            return
        typed = datetime.fromisoformat(when.strip())
        if typed.tzinfo is None:
            typed = typed.replace(tzinfo=ZoneInfo(zones[who]))
        engine = create_engine(cli.url)
        try:
            with Session(engine) as db:
                stored = db.scalars(
                    select(TreatmentSession.scheduled_at)
                    .join(Course)
                    .join(Client)
                    .where(Client.email == f"b{who}@example.com")
                    .where(TreatmentSession.number == int(session.strip()))
                ).one()
        finally:
            engine.dispose()
        assert stored == typed.astimezone(UTC)

    book()


@pytest.mark.parametrize("door_name", DOORS)
def test_no_header_injection_in_any_sent_email(
    request: pytest.FixtureRequest, cli: Cli, sink: FaultSink, door_name: str
) -> None:
    """Every email sent to a hostile client has the same headers, one recipient, the name intact."""
    door = open_door(request, door_name, cli)
    env = {"NURTURE_TRANSPORT": sink.url, **ALL_DAY}

    @HYPOTHESIS
    @given(hostile.emails, hostile.names, hostile.zones)
    @example("=?utf-8?q?a?=@b.com", "Ana Silva", None)  # a server decodes it to a@b.com
    @example("ana@bücher.example", '"Ana" <x@y.z>, Bob', "Australia/Lord_Howe")
    def deliver(email: str, name: str, zone: str | None) -> None:
        if not door.enroll(email, name, ["atrophic"], zone, "5").accepted:
            return
        client, _ = _newest_course(cli.url)
        assert client.email is not None
        sent = len(sink.arrivals)
        cli.ok("tick", now=NOW, env=env)
        arrivals = sink.arrivals[sent:]
        assert arrivals, "the welcome did not go out"
        for arrival in arrivals:
            head = arrival.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            names = [line.split(b":", 1)[0].decode() for line in head if line[:1] not in b" \t"]
            assert names == HEADERS, names
            msg = arrival.message
            (to,) = msg["To"].addresses
            assert arrival.rcpt_tos == [envelope_address(client.email)]
            assert to.addr_spec == envelope_address(client.email)
            assert to.display_name == client.name
            assert not {"\r", "\n"} & set(str(msg["Subject"]))
            assert msg["Bcc"] is None
            assert msg["Cc"] is None
        _withdraw(cli, client.email)

    deliver()
