"""Calendar invites (.ics) that keep a client's calendar in step with the clinic's book.

Each session has one UID for its whole life, so a calendar treats every
invite about it as the same appointment: a booking is a ``METHOD:REQUEST``,
a reschedule is a REQUEST with a higher ``SEQUENCE`` (the session's
revision), and a cancellation is a ``METHOD:CANCEL``.  Nothing in an invite
names a treatment or a scar type: the UID is a hash, and the summary is
"Appointment at <clinic>".
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address

from nurture.errors import TemplateError

#: How long a session is blocked out in the client's calendar.
SESSION_LENGTH = timedelta(minutes=60)
PRODID = "-//nurture//appointment invites//EN"
FILENAME = "invite.ics"


class Method(enum.StrEnum):
    """The iTIP method of an invite (RFC 5546)."""

    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class SessionInvite:
    """One session's calendar entry, as of one revision."""

    uid: str
    sequence: int
    method: Method
    start: datetime
    clinic_name: str
    clinic_address: str
    clinic_phone: str
    organizer: Address
    attendee_name: str
    attendee_email: str
    label: str

    @property
    def end(self) -> datetime:
        """When the session's calendar slot ends."""
        return self.start + SESSION_LENGTH


def session_uid(client_key: str, course_id: int, number: int, domain: str) -> str:
    """A UID stable for one session of one course, carrying no personal or health data.

    ``client_key`` is the client's opaque public id; hashing it with the course
    and session number gives the same UID for every invite about that session.
    """
    digest = hashlib.sha256(f"{client_key}/{course_id}/{number}".encode()).hexdigest()[:32]
    return f"{digest}@{domain}"


def to_ics(invite: SessionInvite, stamp: datetime) -> bytes:
    """The invite as iCalendar bytes (RFC 5545: CRLF lines, folded at 75 octets).

    Written directly, for one known shape of calendar: icalendar's general
    component model cost about a millisecond per invite, more than rendering
    the email around it.  The tests check the output against icalendar's, for
    any names, addresses and phone numbers.
    """
    cancelled = invite.method is Method.CANCEL
    organizer_name = invite.organizer.display_name or invite.clinic_name
    description = (
        f"{invite.label} at {invite.clinic_name}, {invite.clinic_address}. "
        f"To change it, call {invite.clinic_phone} or reply to our email."
    )
    lines = (
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{invite.method.value}",
        "BEGIN:VEVENT",
        f"SUMMARY:{_text(f'Appointment at {invite.clinic_name}')}",
        f"DTSTART:{_utc(invite.start)}",
        f"DTEND:{_utc(invite.end)}",
        f"DTSTAMP:{_utc(stamp)}",
        f"UID:{_text(invite.uid)}",
        f"SEQUENCE:{int(invite.sequence)}",
        f"ATTENDEE;CN={_param(invite.attendee_name)};PARTSTAT=ACCEPTED;"
        f"ROLE=REQ-PARTICIPANT;RSVP=FALSE:{_mailto(invite.attendee_email)}",
        f"DESCRIPTION:{_text(description)}",
        f"LOCATION:{_text(invite.clinic_address)}",
        f"ORGANIZER;CN={_param(organizer_name)}:{_mailto(invite.organizer.addr_spec)}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        f"TRANSP:{'TRANSPARENT' if cancelled else 'OPAQUE'}",
        "END:VEVENT",
        "END:VCALENDAR",
    )
    return b"".join(_folded(line) for line in lines)


def _utc(moment: datetime) -> str:
    """A DATE-TIME in UTC form, ``20261203T103000Z`` (RFC 5545 3.3.5)."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _text(value: str) -> str:
    """A TEXT value, escaped (RFC 5545 3.3.11)."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _param(value: str) -> str:
    """A parameter value: RFC 6868 caret escapes, always a quoted-string (RFC 5545 3.2)."""
    value = value.replace("^", "^^").replace('"', "^'")
    value = value.replace("\r\n", "^n").replace("\n", "^n").replace("\r", "^n")
    return f'"{value}"'


def _mailto(addr: str) -> str:
    """A CAL-ADDRESS; addresses are validated when recorded, this is the last guard."""
    if any(c in addr for c in '\r\n"<>') or not addr.isprintable():
        raise TemplateError(f"refused to build the invite: {addr!r} is not a plain address")
    return f"mailto:{addr}"


def _folded(line: str) -> bytes:
    """One content line, CRLF-ended, folded so no line exceeds 75 octets (RFC 5545 3.1).

    A fold is CRLF and a space; it never splits a UTF-8 sequence.
    """
    data = line.encode("utf-8")
    if len(data) <= 74:
        return data + b"\r\n"
    chunks, start = [], 0
    while start < len(data):
        end = min(start + 74, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # inside a character
            end -= 1
        chunks.append(data[start:end])
        start = end
    return b"\r\n ".join(chunks) + b"\r\n"
