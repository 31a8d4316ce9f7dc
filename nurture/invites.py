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

from icalendar import Calendar, Event, vCalAddress, vText

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
    """The invite as iCalendar bytes (CRLF lines, folded at 75 octets)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
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
    cancelled = invite.method is Method.CANCEL
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
