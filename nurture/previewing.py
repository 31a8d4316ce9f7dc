"""`nurture preview`: render one step for a real client or a sample one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from nurture import enrollment, validation
from nurture.db.models import Message
from nurture.domain import CourseFacts, CourseStatus, SessionFacts, SessionStatus
from nurture.errors import ValidationError
from nurture.reconcile import course_facts, is_suppressed
from nurture.rendering import Recipient
from nurture.runtime import Runtime
from nurture.sequence import Trigger

SAMPLE = Recipient("sample-client", "Alex Sample", "alex.sample@example.com", "Europe/London")
PREVIEW_ID = "<preview@nurture.invalid>"


@dataclass(frozen=True)
class Preview:
    """A rendered email, split for showing."""

    headers: str
    text: str
    html: str
    data: bytes


def preview(
    runtime: Runtime,
    step_name: str,
    *,
    email: str | None,
    session_number: int | None,
    scars: tuple[str, ...],
    planned: int,
) -> Preview:
    """Render ``step_name`` as it would be sent now."""
    step = runtime.sequence.step(step_name)
    now = runtime.now()
    if email is not None:
        if scars:
            raise ValidationError("scar", "give either --email or --scar, not both")
        with runtime.transaction() as db:
            client = enrollment.find_client(db, email)
            course = client.courses[-1]
            facts = course_facts(
                course, client.email is not None and is_suppressed(db, client.email)
            )
            message_id = (
                db.scalar(
                    select(Message.message_id).where(
                        Message.course_id == course.id,
                        Message.step == step.name,
                        Message.session_number.is_(None)
                        if session_number is None
                        else Message.session_number == session_number,
                    )
                )
                or PREVIEW_ID
            )
            assert client.email is not None
            assert client.name is not None
            recipient = Recipient(client.public_id, client.name, client.email, client.timezone)
    else:
        facts = sample_course(
            validation.clean_scars(scars or ("atrophic",)),
            planned,
            session_number or 1,
            step.trigger,
            now,
        )
        recipient, message_id = SAMPLE, PREVIEW_ID
    if step.trigger.per_session and session_number is None:
        session_number = _default_session(facts)
    if session_number is not None and facts.session(session_number) is None:
        raise ValidationError("session", f"session {session_number} has not been booked")
    rendered, outgoing = runtime.composer.compose(
        step.name,
        facts,
        recipient,
        session_number,
        message_id=message_id,
        now=now,
    )
    head = outgoing.data.split(b"\r\n\r\n", 1)[0].decode("ascii", errors="replace")
    return Preview(head, rendered.text, rendered.html, outgoing.data)


def _default_session(facts: CourseFacts) -> int:
    booked = [s.number for s in facts.sessions if s.status is SessionStatus.BOOKED]
    if booked:
        return min(booked)
    done = [s.number for s in facts.sessions]
    if not done:
        raise ValidationError(
            "session", "this client has no booked session to preview this step for"
        )
    return max(done)


def sample_course(
    scars: tuple[object, ...], planned: int, number: int, trigger: Trigger, now: datetime
) -> CourseFacts:
    """A made-up course at the point where ``trigger`` fires for session ``number``."""
    number = min(max(number, 1), planned)
    sessions = []
    for n in range(1, number + 1):
        if n < number or trigger in (Trigger.SESSION_COMPLETED, Trigger.COURSE_COMPLETED):
            at = now - timedelta(weeks=6 * (number - n), hours=2)
            sessions.append(SessionFacts(n, SessionStatus.COMPLETED, at, at, 0, at))
        else:
            at = (now + timedelta(days=4)).replace(hour=10, minute=30, second=0, microsecond=0)
            status = (
                SessionStatus.CANCELLED
                if trigger is Trigger.SESSION_CANCELLED
                else SessionStatus.BOOKED
            )
            revision = 1 if trigger in (Trigger.SESSION_MOVED, Trigger.SESSION_CANCELLED) else 0
            sessions.append(SessionFacts(n, status, at, None, revision, now))
    finished = trigger is Trigger.COURSE_COMPLETED
    return CourseFacts(
        course_id=0,
        client_id=0,
        timezone=SAMPLE.timezone,
        scar_types=tuple(scars),  # type: ignore[arg-type]
        sessions_planned=planned,
        status=CourseStatus.COMPLETED if finished else CourseStatus.ACTIVE,
        enrolled_at=now - timedelta(days=7 + 42 * (number - 1)),
        ended_at=now if finished else None,
        sessions=tuple(sessions),
        emailable=True,
    )
