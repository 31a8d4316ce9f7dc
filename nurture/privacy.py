"""A client's rights over their data: export it, erase it.

Erasure removes everything that identifies the client or describes their
health (name, address, scar types, copies of sent emails), cancels what is
pending, and keeps only a hash of the address on the do-not-email list so
they are never emailed again.  The course skeleton (dates, session numbers,
which steps were sent) stays, with no one to tie it to.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.db import copies
from nurture.db.models import Client, Event, Message, Suppression
from nurture.domain import EventKind
from nurture.enrollment import Context, Outcome, record_event
from nurture.errors import ConflictError
from nurture.reports import client_status, timeline
from nurture.tracking import email_hash


def export_client(db: Session, client: Client) -> dict[str, Any]:
    """Everything nurture holds about a client, as one JSON-ready document."""
    events = db.scalars(select(Event).where(Event.client_id == client.id).order_by(Event.id))
    return {
        "client": {
            "id": client.public_id,
            "email": client.email,
            "name": client.name,
            "timezone": client.timezone,
            "created_at": client.created_at.isoformat(),
            "unsubscribed_at": _iso(client.unsubscribed_at),
            "erased_at": _iso(client.erased_at),
            "status": client_status(client, client.courses[-1] if client.courses else None),
        },
        "courses": [
            {
                "scar_types": [s for s in course.scar_types.split(",") if s],
                "sessions_planned": course.sessions_planned,
                "status": course.status.value,
                "enrolled_at": course.enrolled_at.isoformat(),
                "ended_at": _iso(course.ended_at),
                "sessions": [
                    {
                        "number": s.number,
                        "status": s.status.value,
                        "scheduled_at": _iso(s.scheduled_at),
                        "completed_at": _iso(s.completed_at),
                    }
                    for s in course.sessions
                ],
            }
            for course in client.courses
        ],
        "history": [
            {
                "occurred_at": e.occurred_at.isoformat(),
                "kind": e.kind.value,
                "session": e.session_number,
                "actor": e.actor,
                "detail": e.detail,
            }
            for e in events
        ],
        "emails": [entry.as_dict() for entry in timeline(db, client)],
    }


def erase_client(db: Session, ctx: Context, client: Client) -> Outcome:
    """Erase a client's personal data and suppress their address for good."""
    if client.erased_at is not None or client.email is None:
        raise ConflictError("this client was already erased")
    digest = email_hash(client.email)
    if db.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
        db.add(Suppression(email_hash=digest, reason="erased", created_at=ctx.now))
    client.email = None
    client.name = None
    client.erased_at = ctx.now
    for course in client.courses:
        course.scar_types = ""
    db.execute(
        update(Message)
        .where(Message.client_id == client.id)
        .values(sent_body=None)
        .execution_options(synchronize_session=False)
    )
    db.flush()
    record_event(db, ctx, client, None, EventKind.ERASED)
    for course in client.courses:
        ctx.planner.replan(db, course, ctx.now)
    return Outcome(client=client)


def stored_copy(message: Message) -> bytes | None:
    """The message as it was sent, if a copy is kept."""
    return copies.unpack(message.sent_body) if message.sent_body else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
