"""Read-only views of clients and their courses for the front doors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from nurture.db.models import Client, Course, Message
from nurture.domain import SessionStatus
from nurture.timing import zone_named


@dataclass(frozen=True)
class ClientRow:
    """One line of the clients list."""

    id: str
    email: str | None
    name: str | None
    timezone: str
    status: str
    sessions_planned: int
    sessions_booked: int
    sessions_completed: int
    next_session: int | None
    next_session_at: str | None
    next_session_local: str | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return asdict(self)


def client_status(client: Client, course: Course | None) -> str:
    """One word for where the client stands."""
    if client.erased_at is not None:
        return "erased"
    if client.unsubscribed_at is not None:
        return "unsubscribed"
    return course.status.value if course is not None else "none"


def summarise(client: Client, now: datetime) -> ClientRow:
    """Course progress of a client's latest course."""
    course = client.courses[-1] if client.courses else None
    booked = completed = 0
    next_number: int | None = None
    next_at: datetime | None = None
    if course is not None:
        for s in course.sessions:
            if s.status is SessionStatus.COMPLETED:
                completed += 1
            elif s.status is SessionStatus.BOOKED:
                booked += 1
                if next_at is None or (s.scheduled_at is not None and s.scheduled_at < next_at):
                    next_number, next_at = s.number, s.scheduled_at
    zone = zone_named(client.timezone)
    return ClientRow(
        id=client.public_id,
        email=client.email,
        name=client.name,
        timezone=client.timezone,
        status=client_status(client, course),
        sessions_planned=course.sessions_planned if course else 0,
        sessions_booked=booked,
        sessions_completed=completed,
        next_session=next_number,
        next_session_at=next_at.isoformat() if next_at else None,
        next_session_local=next_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        if next_at
        else None,
    )


def list_clients(db: Session, now: datetime, search: str | None = None) -> list[ClientRow]:
    """Every client (erased ones last), optionally filtered by name or email."""
    query = (
        select(Client)
        .options(selectinload(Client.courses).selectinload(Course.sessions))
        .order_by(Client.erased_at.is_not(None), Client.name, Client.id)
    )
    if search:
        pattern = f"%{search.strip().lower()}%"
        query = query.where(Client.email.like(pattern) | Client.name.ilike(pattern))
    return [summarise(c, now) for c in db.scalars(query)]


@dataclass(frozen=True)
class TimelineEntry:
    """One email of a client's course, as staff see it."""

    id: int
    step: str
    session: int | None
    status: str
    due_at: str
    due_local: str
    expires_at: str
    sent_at: str | None
    reason: str | None
    message_id: str
    attempts: int
    possible_duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return asdict(self)


def timeline(db: Session, client: Client) -> list[TimelineEntry]:
    """Every email of every course of the client, in due order."""
    zone = zone_named(client.timezone)
    rows = db.scalars(
        select(Message).where(Message.client_id == client.id).order_by(Message.due_at, Message.id)
    )
    return [
        TimelineEntry(
            id=m.id,
            step=m.step,
            session=m.session_number,
            status=m.status.value,
            due_at=m.due_at.isoformat(),
            due_local=m.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            expires_at=m.expires_at.isoformat(),
            sent_at=m.sent_at.isoformat() if m.sent_at else None,
            reason=m.reason,
            message_id=m.message_id,
            attempts=m.attempts,
            possible_duplicate=m.possible_duplicate,
        )
        for m in rows
    ]


@dataclass(frozen=True)
class SessionRow:
    """One planned session of a course, for the staff page."""

    number: int
    status: str
    local: str | None
    local_input: str
    can_book: bool
    can_cancel: bool
    can_complete: bool


def session_rows(course: Course, zone_name: str) -> list[SessionRow]:
    """Every session 1..N with what staff can do with it now."""
    zone = zone_named(zone_name)
    by_number = {s.number: s for s in course.sessions}
    active = course.status.value == "active"
    rows = []
    for number in range(1, course.sessions_planned + 1):
        s = by_number.get(number)
        status = s.status.value if s else "not booked"
        at = (s.completed_at or s.scheduled_at) if s else None
        local = at.astimezone(zone) if at else None
        rows.append(
            SessionRow(
                number=number,
                status=status,
                local=local.strftime("%a %d %b %Y %H:%M %Z") if local else None,
                local_input=local.strftime("%Y-%m-%dT%H:%M") if local else "",
                can_book=active and status != "completed",
                can_cancel=active and status == "booked",
                can_complete=active and status == "booked",
            )
        )
    return rows
