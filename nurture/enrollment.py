"""Enrolment and the facts of a course: book, reschedule, cancel, complete.

Each public function here is one fact change.  It validates everything
before it writes anything, records the change and an ``Event`` row, and
re-plans the course's emails, all in the caller's transaction: either the
whole change lands or nothing does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from nurture import validation
from nurture.db.models import Client, Course, Event, Suppression, TreatmentSession, new_public_id
from nurture.domain import CourseStatus, EventKind, ScarType, SessionStatus, only_hypertrophic
from nurture.errors import ConflictError, NotFoundError, ValidationError
from nurture.reconcile import Planner
from nurture.timing import zone_named
from nurture.tracking import email_hash

log = logging.getLogger(__name__)

HYPERTROPHIC_ONLY = (
    "microneedling can make raised (hypertrophic) scars worse by driving too much collagen; "
    "enrol a client whose only scars are hypertrophic only after the therapist has confirmed it "
    "(--confirm-hypertrophic), and invite them back to discuss other options"
)


#: A booking further ahead than this is a typing mistake (2062 for 2026).
MAX_AHEAD = timedelta(days=2 * 366)


@dataclass(frozen=True)
class Context:
    """Who is changing what, and when (the clock is injected, never read here)."""

    now: datetime
    actor: str
    planner: Planner
    default_timezone: str = "Europe/London"
    min_spacing: timedelta = timedelta(weeks=6)


@dataclass(frozen=True)
class Enrolment:
    """A validated enrolment request, ready to record."""

    email: str
    name: str
    scars: tuple[ScarType, ...]
    timezone: str
    sessions: int
    confirm_hypertrophic: bool


@dataclass
class Outcome:
    """What a fact change did, for the front door to report."""

    client: Client
    course: Course | None = None
    warnings: list[str] = field(default_factory=list)
    changed: bool = True


def check_enrolment(
    *,
    email: str,
    name: str,
    scars: Iterable[str],
    timezone: str | None,
    sessions: int | str | None,
    confirm_hypertrophic: bool,
    default_timezone: str,
) -> Enrolment:
    """Validate an enrolment without touching the database."""
    clean_scars = validation.clean_scars(scars)
    request = Enrolment(
        email=validation.clean_email(email),
        name=validation.clean_name(name),
        scars=clean_scars,
        timezone=validation.clean_zone(timezone) if timezone else default_timezone,
        sessions=validation.clean_sessions(5 if sessions in (None, "") else sessions),
        confirm_hypertrophic=confirm_hypertrophic,
    )
    if only_hypertrophic(clean_scars) and not confirm_hypertrophic:
        raise ValidationError("scar", HYPERTROPHIC_ONLY)
    return request


def enroll(db: Session, ctx: Context, request: Enrolment) -> Outcome:
    """Record a new client (or a returning one) with a new active course."""
    return enroll_many(db, ctx, [request])[0]


def enroll_many(db: Session, ctx: Context, requests: Sequence[Enrolment]) -> list[Outcome]:
    """Enrol many clients in the caller's transaction (the CSV import's fast path).

    The same rules as one enrolment, with the database asked once per chunk
    instead of once per row: existing clients and the do-not-email list are
    read up front, new rows are written in bulk.
    """
    emails = [r.email for r in requests]
    existing = {
        c.email: c
        for chunk in _chunks(emails)
        for c in db.scalars(
            select(Client).where(Client.email.in_(chunk)).options(selectinload(Client.courses))
        )
    }
    suppressed = suppressed_hashes(db, emails)
    outcomes = []
    with db.no_autoflush:
        for request in requests:
            client = existing.get(request.email)
            outcomes.append(
                _new_course(db, ctx, request, client, email_hash(request.email) in suppressed)
            )
    db.flush()
    db.execute(
        insert(Event),
        [
            {
                "client_id": o.client.id,
                "course_id": o.course.id,
                "kind": EventKind.ENROLLED,
                "session_number": None,
                "occurred_at": ctx.now,
                "actor": ctx.actor,
                "detail": {"sessions": o.course.sessions_planned},
            }
            for o in outcomes
            if o.course is not None
        ],
    )
    ctx.planner.plan_new_courses(
        db,
        [(o.course, email_hash(o.client.email or "") in suppressed) for o in outcomes if o.course],
        ctx.now,
    )
    for o in outcomes:
        assert o.course is not None
        log.info("client_enrolled client=%s course=%s", o.client.public_id, o.course.id)
    return outcomes


def _new_course(
    db: Session, ctx: Context, request: Enrolment, client: Client | None, suppressed: bool
) -> Outcome:
    warnings: list[str] = []
    if client is not None:
        if any(c.status is CourseStatus.ACTIVE for c in client.courses):
            raise ConflictError(
                f"{request.email} already has an active course; record its sessions, "
                "or withdraw it first (`nurture withdraw`)"
            )
        client.name, client.timezone = request.name, request.timezone
    else:
        client = Client(
            email=request.email,
            name=request.name,
            timezone=request.timezone,
            created_at=ctx.now,
            public_id=new_public_id(),
        )
        db.add(client)
    if client.unsubscribed_at is not None:
        warnings.append(
            f"{request.email} unsubscribed on {client.unsubscribed_at:%Y-%m-%d}; "
            "the course is recorded but no email will be sent"
        )
    elif suppressed:
        warnings.append(
            f"{request.email} is on the do-not-email list; the course is recorded but no email "
            "will be sent"
        )
    course = Course(
        client=client,
        scar_types=",".join(request.scars),
        sessions_planned=request.sessions,
        status=CourseStatus.ACTIVE,
        hypertrophic_confirmed=request.confirm_hypertrophic,
        enrolled_at=ctx.now,
    )
    db.add(course)
    return Outcome(client=client, course=course, warnings=warnings)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def suppressed_hashes(db: Session, emails: Sequence[str]) -> set[str]:
    """Which of these addresses' hashes are on the do-not-email list."""
    hashes = [email_hash(e) for e in emails]
    return {
        h
        for chunk in _chunks(hashes)
        for h in db.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(chunk)))
    }


def find_client(db: Session, email: str) -> Client:
    """The client with this address, or ``NotFoundError``."""
    try:
        address = validation.clean_email(email)
    except ValidationError:
        raise
    client = db.scalar(select(Client).where(Client.email == address))
    if client is None:
        raise NotFoundError(f"no client with email {address}; enrol them first (`nurture enroll`)")
    return client


def find_client_by_id(db: Session, public_id: str) -> Client:
    """The client with this opaque id, or ``NotFoundError``."""
    client = db.scalar(select(Client).where(Client.public_id == public_id))
    if client is None or client.erased_at is not None:
        raise NotFoundError("no such client")
    return client


def active_course(client: Client) -> Course:
    """The client's active course, or ``ConflictError`` saying why there is none."""
    for course in client.courses:
        if course.status is CourseStatus.ACTIVE:
            return course
    if client.courses:
        last = client.courses[-1]
        raise ConflictError(
            f"the course of {client.email} is {last.status.value}; enrol again to start a new one"
        )
    raise ConflictError(f"{client.email} has no course")  # pragma: no cover - enrol makes one


def book(db: Session, ctx: Context, client: Client, number: int | str, when: str) -> Outcome:
    """Book session ``number`` at ``when`` (local to the client), or move it there."""
    course = active_course(client)
    number = validation.clean_session_number(number, course.sessions_planned)
    at = validation.parse_local(when, client.timezone)
    if at > ctx.now + MAX_AHEAD:
        raise ValidationError(
            "when", f"{_local(at, client.timezone)} is more than two years ahead; check the year"
        )
    sessions = {s.number: s for s in course.sessions}
    current = sessions.get(number)
    if current is not None and current.status is SessionStatus.COMPLETED:
        raise ConflictError(f"session {number} was already attended; it cannot be rebooked")
    for earlier in range(1, number):
        prior = sessions.get(earlier)
        if prior is None or prior.status is SessionStatus.CANCELLED:
            raise ConflictError(f"session {earlier} is not booked; book session {earlier} first")
    _check_order(sessions, number, at, client.timezone)
    warnings = _spacing_warnings(sessions, number, at, ctx.min_spacing)
    if at < ctx.now:
        warnings.append(f"{_local(at, client.timezone)} is in the past")
    if current is None:
        current = TreatmentSession(
            course=course,
            number=number,
            status=SessionStatus.BOOKED,
            scheduled_at=at,
            revision=0,
            updated_at=ctx.now,
        )
        db.add(current)
        kind, detail = EventKind.BOOKED, {"at": at.isoformat()}
    elif current.status is SessionStatus.BOOKED:
        if current.scheduled_at == at:
            return Outcome(client=client, course=course, warnings=warnings, changed=False)
        assert current.scheduled_at is not None
        detail = {"at": at.isoformat(), "previous_at": current.scheduled_at.isoformat()}
        kind = EventKind.RESCHEDULED
        current.scheduled_at, current.revision = at, current.revision + 1
    else:  # cancelled earlier, booked again
        kind, detail = EventKind.BOOKED, {"at": at.isoformat()}
        current.status, current.scheduled_at = SessionStatus.BOOKED, at
        current.revision += 1
    current.updated_at = ctx.now
    db.flush()
    record_event(db, ctx, client, course, kind, number, detail)
    _replan(db, course, ctx)
    return Outcome(client=client, course=course, warnings=warnings)


def complete(
    db: Session, ctx: Context, client: Client, number: int | str, at: str | None = None
) -> Outcome:
    """Record that the client attended session ``number``."""
    course = active_course(client)
    number = validation.clean_session_number(number, course.sessions_planned)
    sessions = {s.number: s for s in course.sessions}
    session = sessions.get(number)
    if session is None or session.status is SessionStatus.CANCELLED:
        raise ConflictError(f"session {number} is not booked; book it before recording attendance")
    if session.status is SessionStatus.COMPLETED:
        return Outcome(client=client, course=course, changed=False)
    for earlier in range(1, number):
        if sessions[earlier].status is not SessionStatus.COMPLETED:
            raise ConflictError(
                f"session {earlier} has not been attended yet; record it (or cancel and rebook it) "
                f"before session {number}"
            )
    assert session.scheduled_at is not None
    attended = validation.parse_local(at, client.timezone, "at") if at else session.scheduled_at
    if attended > ctx.now:
        raise ValidationError(
            "at",
            f"{_local(attended, client.timezone)} is still in the future; record attendance "
            "after the visit",
        )
    previous = sessions.get(number - 1)
    if previous is not None and previous.completed_at and attended <= previous.completed_at:
        raise ValidationError("at", f"must be after session {number - 1} was attended")
    session.status, session.completed_at, session.updated_at = (
        SessionStatus.COMPLETED,
        attended,
        ctx.now,
    )
    record_event(db, ctx, client, course, EventKind.COMPLETED, number, {"at": attended.isoformat()})
    if number == course.sessions_planned:
        course.status, course.ended_at = CourseStatus.COMPLETED, attended
        record_event(db, ctx, client, course, EventKind.COURSE_COMPLETED, None, {})
    db.flush()
    _replan(db, course, ctx)
    return Outcome(client=client, course=course)


def cancel(db: Session, ctx: Context, client: Client, number: int | str) -> Outcome:
    """Cancel the booking of session ``number``."""
    course = active_course(client)
    number = validation.clean_session_number(number, course.sessions_planned)
    session = next((s for s in course.sessions if s.number == number), None)
    if session is None or session.status is SessionStatus.CANCELLED:
        raise ConflictError(f"session {number} is not booked; there is nothing to cancel")
    if session.status is SessionStatus.COMPLETED:
        raise ConflictError(f"session {number} was already attended; it cannot be cancelled")
    later = [
        s.number for s in course.sessions if s.number > number and s.status is SessionStatus.BOOKED
    ]
    if later:
        raise ConflictError(
            f"session {later[0]} is booked after it; cancel the later sessions first"
        )
    assert session.scheduled_at is not None
    session.status, session.revision, session.updated_at = (
        SessionStatus.CANCELLED,
        session.revision + 1,
        ctx.now,
    )
    db.flush()
    record_event(
        db,
        ctx,
        client,
        course,
        EventKind.CANCELLED,
        number,
        {"at": session.scheduled_at.isoformat()},
    )
    _replan(db, course, ctx)
    return Outcome(client=client, course=course)


def withdraw(db: Session, ctx: Context, client: Client) -> Outcome:
    """End the client's active course early; pending emails are cancelled."""
    course = active_course(client)
    course.status, course.ended_at = CourseStatus.WITHDRAWN, ctx.now
    db.flush()
    record_event(db, ctx, client, course, EventKind.WITHDRAWN, None, {})
    _replan(db, course, ctx)
    return Outcome(client=client, course=course)


def unsubscribe(db: Session, ctx: Context, client: Client) -> Outcome:
    """Stop every email to this client; idempotent."""
    if client.unsubscribed_at is not None:
        return Outcome(client=client, changed=False)
    client.unsubscribed_at = ctx.now
    db.flush()
    record_event(db, ctx, client, None, EventKind.UNSUBSCRIBED, None, {})
    for course in client.courses:
        _replan(db, course, ctx)
    log.info("client_unsubscribed client=%s", client.public_id)
    return Outcome(client=client)


def _check_order(
    sessions: dict[int, TreatmentSession], number: int, at: datetime, zone: str
) -> None:
    for other in sessions.values():
        if other.number == number or other.status is SessionStatus.CANCELLED:
            continue
        other_at = other.completed_at or other.scheduled_at
        assert other_at is not None
        if other.number < number and other_at >= at:
            raise ConflictError(
                f"session {number} at {_local(at, zone)} would come before session "
                f"{other.number} ({_local(other_at, zone)}); sessions must be in order"
            )
        if other.number > number and other_at <= at:
            raise ConflictError(
                f"session {number} at {_local(at, zone)} would come after session "
                f"{other.number} ({_local(other_at, zone)}); sessions must be in order"
            )


def _spacing_warnings(
    sessions: dict[int, TreatmentSession], number: int, at: datetime, minimum: timedelta
) -> list[str]:
    warnings = []
    for neighbour in (number - 1, number + 1):
        other = sessions.get(neighbour)
        if other is None or other.status is SessionStatus.CANCELLED:
            continue
        other_at = other.completed_at or other.scheduled_at
        assert other_at is not None
        gap = abs(at - other_at)
        if gap < minimum:
            warnings.append(
                f"session {number} is {_weeks(gap)} from session {neighbour}, closer than the "
                f"clinic's minimum of {_weeks(minimum)}; booked anyway (the therapist decides)"
            )
    return warnings


def _weeks(delta: timedelta) -> str:
    weeks, rest = divmod(delta.days, 7)
    text = f"{weeks} week{'s' * (weeks != 1)}"
    return f"{text} {rest} day{'s' * (rest != 1)}" if rest else text


def _local(at: datetime, zone: str) -> str:
    return at.astimezone(zone_named(zone)).strftime("%Y-%m-%d %H:%M %Z")


def record_event(
    db: Session,
    ctx: Context,
    client: Client,
    course: Course | None,
    kind: EventKind,
    number: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    db.add(
        Event(
            client_id=client.id,
            course_id=course.id if course is not None else None,
            kind=kind,
            session_number=number,
            occurred_at=ctx.now,
            actor=ctx.actor,
            detail=detail or {},
        )
    )


def _replan(db: Session, course: Course, ctx: Context) -> None:
    """Bring the course's emails in line with its facts, in this transaction."""
    ctx.planner.replan(db, course, ctx.now)
