"""Calendar invites: written by nurture, checked against icalendar, parsed back with it."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event, vCalAddress, vText

from nurture import invites
from nurture.domain import CourseFacts, ScarType, SessionStatus
from nurture.rendering import Composer
from tests.conftest import Cli
from tests.smtp_sink import SMTPSink
from tests.test_content import CLIENT, MEDICAL_WORDS, compose, runtime, situation

INVITE_STEPS = ("booking_confirmed", "day_before", "session_moved", "session_cancelled")


@pytest.fixture(scope="module")
def composer() -> Composer:
    """The real Composer on the bundled templates."""
    return runtime().composer


def calendar_parts(message: EmailMessage) -> list[EmailMessage]:
    """Every part of a message that carries a calendar (the alternative and the file)."""
    return [
        p
        for p in message.walk()
        if p.get_content_type() in ("text/calendar", "application/ics")
        and isinstance(p, EmailMessage)
    ]


def invite_of(message: EmailMessage) -> tuple[Calendar, Event]:
    """The calendar in the message's text/calendar alternative, parsed back with icalendar."""
    part = next(p for p in calendar_parts(message) if p.get_content_type() == "text/calendar")
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    calendar = Calendar.from_ical(payload)
    events = [c for c in calendar.walk() if isinstance(c, Event)]
    assert len(events) == 1
    return calendar, events[0]


def invite_for(
    composer: Composer, step: str, number: int = 2, course: CourseFacts | None = None
) -> tuple[Calendar, Event, CourseFacts]:
    """Compose ``step`` about session ``number`` of a sample course and parse its invite."""
    if course is None:
        course, _ = situation(composer, step, (ScarType.ATROPHIC,), 5, number)
    _, message = compose(composer, step, course, number)
    calendar, event = invite_of(message)
    return calendar, event, course


def test_booking_invite_is_a_request_for_the_session(composer: Composer) -> None:
    """A booking is a REQUEST for the session's start in UTC, an hour long, at SEQUENCE 0."""
    calendar, event, course = invite_for(composer, "booking_confirmed")
    session = course.sessions[-1]
    assert str(calendar["METHOD"]) == "REQUEST"
    assert event.decoded("DTSTART") == session.scheduled_at
    assert event["DTSTART"].to_ical().endswith(b"Z")  # written in UTC, no time zone table
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=60)
    assert int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "CONFIRMED"


def test_invite_names_clinic_place_organizer_and_client(composer: Composer) -> None:
    """The invite is at the clinic's address, organised by the sender, for the client."""
    _, event, _ = invite_for(composer, "day_before")
    clinic = composer.clinic
    assert str(event["SUMMARY"]) == f"Appointment at {clinic.name}"
    assert str(event["LOCATION"]) == clinic.address
    assert str(event["ORGANIZER"]) == f"mailto:{clinic.sender.addr_spec}"
    assert str(event["ATTENDEE"]) == f"mailto:{CLIENT.email}"
    assert event["ATTENDEE"].params["CN"] == CLIENT.name


def test_invite_text_has_no_scar_type_or_medical_word(composer: Composer) -> None:
    """Summary, description and UID name no scar type or treatment, for every mix."""
    for scars in ((ScarType.HYPERTROPHIC,), (ScarType.ATROPHIC, ScarType.PIH)):
        course, _ = situation(composer, "booking_confirmed", scars, 5, 1)
        _, event, _ = invite_for(composer, "booking_confirmed", 1, course)
        for field in ("SUMMARY", "DESCRIPTION", "UID"):
            shown = str(event[field]).lower().replace(composer.clinic.name.lower(), "")
            assert [w for w in MEDICAL_WORDS if w in shown] == [], field


def test_uid_carries_no_personal_data(composer: Composer) -> None:
    """The UID is a hash at the clinic's domain: no client id, name or address in it."""
    _, event, _ = invite_for(composer, "booking_confirmed")
    uid = str(event["UID"])
    local, _, domain = uid.partition("@")
    assert domain == composer.clinic.sender.domain
    assert len(local) == 32
    assert int(local, 16) >= 0
    for personal in (CLIENT.public_id, CLIENT.email, CLIENT.name.split()[0]):
        assert personal.lower() not in uid.lower()


def test_uid_is_stable_for_a_session_across_every_invite(composer: Composer) -> None:
    """Booking, reminder, move and cancellation of one session share one UID."""
    uids = {str(invite_for(composer, step)[1]["UID"]) for step in INVITE_STEPS}
    assert len(uids) == 1


def test_uid_differs_between_sessions_and_courses() -> None:
    """Another session, another course or another client gives another UID."""
    base = invites.session_uid("client-a", 1, 1, "clinic.example.com")
    assert base == invites.session_uid("client-a", 1, 1, "clinic.example.com")
    others = {
        invites.session_uid("client-a", 1, 2, "clinic.example.com"),
        invites.session_uid("client-a", 2, 1, "clinic.example.com"),
        invites.session_uid("client-b", 1, 1, "clinic.example.com"),
    }
    assert base not in others
    assert len(others) == 3


def test_reschedule_sends_a_request_with_a_higher_sequence(composer: Composer) -> None:
    """A moved session's invite is a REQUEST at the new time with SEQUENCE = its revision."""
    calendar, event, course = invite_for(composer, "session_moved")
    session = course.sessions[-1]
    assert session.revision == 1
    assert str(calendar["METHOD"]) == "REQUEST"
    assert int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == session.scheduled_at


def test_cancellation_sends_a_cancel(composer: Composer) -> None:
    """A cancelled session's invite is METHOD:CANCEL, STATUS:CANCELLED, with its revision."""
    calendar, event, course = invite_for(composer, "session_cancelled")
    assert course.sessions[-1].status is SessionStatus.CANCELLED
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == course.sessions[-1].revision


def test_invite_is_a_body_alternative_and_an_ics_file(composer: Composer) -> None:
    """The invite rides as text/calendar beside text and HTML, and as the file invite.ics."""
    course, number = situation(composer, "booking_confirmed", (ScarType.PIH,), 5, 1)
    _, message = compose(composer, "booking_confirmed", course, number)
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    alternative = parts[0]
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar_part = list(alternative.iter_parts())[2]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part.get_filename() is None
    assert [(p.get_content_type(), p.get_filename()) for p in parts[1:]] == [
        ("application/ics", "invite.ics")
    ]
    assert parts[1].get_payload(decode=True) == calendar_part.get_payload(decode=True)


def test_steps_without_invite_carry_no_calendar(composer: Composer) -> None:
    """Only steps marked invite = true carry a calendar part."""
    for step in composer.sequence.steps:
        course, number = situation(composer, step.name, (ScarType.ATROPHIC,), 5, 2)
        _, message = compose(composer, step.name, course, number)
        assert bool(calendar_parts(message)) == step.invite, step.name


def test_headers_keep_their_policy_with_an_invite(composer: Composer) -> None:
    """With an invite attached, List-Unsubscribe is still one unencoded line."""
    course, number = situation(composer, "day_before", (ScarType.ATROPHIC,), 5, 1)
    _, outgoing = composer.compose(
        "day_before", course, CLIENT, number, message_id="<h@example.com>", now=course.enrolled_at
    )
    head = outgoing.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    line = next(x for x in head.split("\r\n") if x.startswith("List-Unsubscribe:"))
    assert line.startswith("List-Unsubscribe: <https://")
    assert line.endswith(">")
    assert "=?" not in line


def test_invite_is_stamped_with_the_sending_time(composer: Composer) -> None:
    """DTSTAMP is when the email was composed, in UTC."""
    course, number = situation(composer, "booking_confirmed", (ScarType.ATROPHIC,), 5, 1)
    when = datetime(2026, 12, 1, 9, 15, tzinfo=UTC)
    _, outgoing = composer.compose(
        "booking_confirmed", course, CLIENT, number, message_id="<s@example.com>", now=when
    )
    message = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    _, event = invite_of(message)
    assert event.decoded("DTSTAMP") == when


# --- the writer against icalendar -----------------------------------------------------------


def icalendar_reference(invite: invites.SessionInvite, stamp: datetime) -> bytes:
    """The same invite built with icalendar's component model: the oracle for ``to_ics``."""
    cal = Calendar()
    cal.add("prodid", invites.PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", invite.method.value)
    event = Event()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", invite.start.astimezone(UTC))
    event.add("dtend", invite.end.astimezone(UTC))
    event.add("summary", f"Appointment at {invite.clinic_name}")
    event.add("location", invite.clinic_address)
    event.add(
        "description",
        f"{invite.label} at {invite.clinic_name}, {invite.clinic_address}. "
        f"To change it, call {invite.clinic_phone} or reply to our email.",
    )
    cancelled = invite.method is invites.Method.CANCEL
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if cancelled else "OPAQUE")
    organizer = vCalAddress(f"mailto:{invite.organizer.addr_spec}")
    organizer.params["cn"] = vText(invite.organizer.display_name or invite.clinic_name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{invite.attendee_email}")
    attendee.params["cn"] = vText(invite.attendee_name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED")
    attendee.params["rsvp"] = vText("FALSE")
    event.add("attendee", attendee)
    cal.add_component(event)
    data: bytes = cal.to_ical()
    return data


one_line = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=90
).filter(lambda s: s.strip() == s)
# icalendar reads a backslash in a parameter value as an escape (RFC 5545 has none there)
# and writes one unquoted, so names with one are checked on their own below.
param_text = one_line.filter(lambda s: "\\" not in s)
moments = st.datetimes(  # hypothesis takes naive bounds and adds the zone itself
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=300, deadline=None)
@given(
    clinic=one_line,
    place=one_line,
    phone=one_line,
    sender_name=st.one_of(st.just(""), param_text),
    client=param_text,
    label=one_line,
    start=moments,
    stamp=moments,
    sequence=st.integers(0, 50),
    cancel=st.booleans(),
)
def test_invite_reads_back_as_icalendar_writes_it(
    clinic: str,
    place: str,
    phone: str,
    sender_name: str,
    client: str,
    label: str,
    start: datetime,
    stamp: datetime,
    sequence: int,
    cancel: bool,
) -> None:
    """For any names, places and times, the invite reads back as icalendar's own does."""
    assume(sender_name or "\\" not in clinic)  # the clinic's name stands in as the organizer's
    invite = invites.SessionInvite(
        uid=invites.session_uid("pid", 1, 2, "clinic.example.com"),
        sequence=sequence,
        method=invites.Method.CANCEL if cancel else invites.Method.REQUEST,
        start=start,
        clinic_name=clinic,
        clinic_address=place,
        clinic_phone=phone,
        organizer=Address(sender_name, "hello", "clinic.example.com"),
        attendee_name=client,
        attendee_email="zoe@example.com",
        label=label,
    )
    written = invites.to_ics(invite, stamp)
    assert written.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in written.replace(b"\r\n", b"")
    assert all(len(line) <= 75 for line in written.split(b"\r\n"))
    assert content(written) == content(icalendar_reference(invite, stamp))
    event = next(c for c in Calendar.from_ical(written).walk() if isinstance(c, Event))
    assert event["ATTENDEE"].params["CN"] == client
    assert str(event["LOCATION"]) == place


def test_a_backslash_in_a_name_is_written_literally() -> None:
    """Parameter values have no escapes in RFC 5545: a backslash stays one, quoted."""
    invite = invites.SessionInvite(
        uid="u@clinic.example.com",
        sequence=0,
        method=invites.Method.REQUEST,
        start=datetime(2026, 12, 3, 10, tzinfo=UTC),
        clinic_name="Glow",
        clinic_address="1 High St",
        clinic_phone="0100",
        organizer=Address("Glow", "hello", "clinic.example.com"),
        attendee_name="Ana \\ Silva; B",
        attendee_email="ana@example.com",
        label="Session 1 of 5",
    )
    unfolded = invites.to_ics(invite, invite.start).replace(b"\r\n ", b"")
    assert b'ATTENDEE;CN="Ana \\ Silva; B";PARTSTAT=' in unfolded


def content(data: bytes) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
    """Every property of every component, parsed: (component, name, params, value)."""
    found = []
    for component in Calendar.from_ical(data).walk():
        for name, value in component.property_items(recursive=False):
            if name in ("BEGIN", "END"):
                continue
            params = sorted((k, str(v)) for k, v in getattr(value, "params", {}).items())
            raw = value.to_ical() if hasattr(value, "to_ical") else str(value).encode()
            found.append((component.name, name, params, raw))
    return sorted(found)


# --- the client's calendar through a real course ------------------------------------------


def invites_received(cli: Cli, smtp: SMTPSink, address: str) -> list[tuple[str, str, Event]]:
    """(step, METHOD, event) of every invite the SMTP server received for ``address``."""
    entries = json.loads(cli.ok("timeline", address, "--json").out)
    steps = {e["message_id"]: e["step"] for e in entries}
    found = []
    for r in smtp.to(address):
        if calendar_parts(r.message):
            calendar, event = invite_of(r.message)
            found.append((steps[r.message_id], str(calendar["METHOD"]), event))
    return found


def test_calendar_follows_booking_move_and_cancellation(cli: Cli, smtp: SMTPSink) -> None:
    """Booking, moving and cancelling a session send REQUEST 0, REQUEST 1, CANCEL 2 on one UID."""
    address = "ana@example.com"
    transport = {"NURTURE_TRANSPORT": smtp.url}
    cli.ok(
        "enroll", address, "--name", "Ana Silva", "--scar", "pih", now="2026-11-30T10:00:00+00:00"
    )
    cli.ok("book", address, "1", "2026-12-10T10:30", now="2026-11-30T10:00:00+00:00")
    cli.ok("tick", now="2026-11-30T10:00:00+00:00", env=transport)
    cli.ok("book", address, "1", "2026-12-17T14:00", now="2026-12-01T10:00:00+00:00")
    cli.ok("tick", now="2026-12-01T10:00:00+00:00", env=transport)
    cli.ok("cancel", address, "1", now="2026-12-02T10:00:00+00:00")
    cli.ok("tick", now="2026-12-02T10:00:00+00:00", env=transport)
    received = invites_received(cli, smtp, address)
    assert [(step, method, int(e["SEQUENCE"])) for step, method, e in received] == [
        ("booking_confirmed", "REQUEST", 0),
        ("session_moved", "REQUEST", 1),
        ("session_cancelled", "CANCEL", 2),
    ]
    assert len({str(e["UID"]) for _, _, e in received}) == 1
    starts = [e.decoded("DTSTART") for _, _, e in received]
    assert starts[0] == datetime(2026, 12, 10, 10, 30, tzinfo=UTC)
    assert starts[1] == datetime(2026, 12, 17, 14, 0, tzinfo=UTC)


def test_day_before_reminder_carries_the_current_invite(cli: Cli, smtp: SMTPSink) -> None:
    """The day-before email re-sends the invite at the session's latest revision."""
    address = "ben@example.com"
    transport = {"NURTURE_TRANSPORT": smtp.url}
    cli.ok(
        "enroll",
        address,
        "--name",
        "Ben Okafor",
        "--scar",
        "atrophic",
        now="2026-11-30T10:00:00+00:00",
    )
    cli.ok("book", address, "1", "2026-12-10T10:30", now="2026-11-30T10:00:00+00:00")
    cli.ok("book", address, "1", "2026-12-11T10:30", now="2026-11-30T10:05:00+00:00")
    cli.ok("tick", now="2026-12-10T11:00:00+00:00", env=transport)
    received = invites_received(cli, smtp, address)
    day_before = [e for step, _, e in received if step == "day_before"]
    assert len(day_before) == 1
    assert int(day_before[0]["SEQUENCE"]) == 1
    assert day_before[0].decoded("DTSTART") == datetime(2026, 12, 11, 10, 30, tzinfo=UTC)
