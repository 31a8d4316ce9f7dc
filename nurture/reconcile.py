"""Keep a course's stored emails in line with its plan, in the caller's transaction.

Every fact change calls ``Planner.replan``: the pure plan is compared with
the course's message rows by key.  A sent (or permanently failed) email is
never touched again; a pending one that is no longer wanted is cancelled
with the reason; a wanted one is created, moved, or revived.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nurture.db.models import Course, Message, Suppression
from nurture.domain import (
    CourseFacts,
    CourseStatus,
    MessageStatus,
    ScarType,
    SessionFacts,
    SessionStatus,
)
from nurture.planning import PlannedMessage, plan
from nurture.sequence import Condition, Sequence
from nurture.timing import SendWindow
from nurture.tracking import email_hash

log = logging.getLogger(__name__)

FINAL = (MessageStatus.SENT, MessageStatus.FAILED)


def new_message_id(domain: str) -> str:
    """A Message-ID with no personal data: random, fixed for the email's lifetime."""
    return f"<{uuid.uuid4().hex}@{domain}>"


class CourseRecord(Protocol):
    """What ``facts_of`` reads of a course: an ORM ``Course`` or a Core row of its columns."""

    @property
    def id(self) -> int: ...
    @property
    def scar_types(self) -> str: ...
    @property
    def sessions_planned(self) -> int: ...
    @property
    def status(self) -> CourseStatus: ...
    @property
    def enrolled_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...


class ClientRecord(Protocol):
    """What ``facts_of`` reads of a client."""

    @property
    def id(self) -> int: ...
    @property
    def timezone(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def unsubscribed_at(self) -> datetime | None: ...
    @property
    def erased_at(self) -> datetime | None: ...


class SessionRecord(Protocol):
    """What ``facts_of`` reads of a treatment session."""

    @property
    def number(self) -> int: ...
    @property
    def status(self) -> SessionStatus: ...
    @property
    def scheduled_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def revision(self) -> int: ...
    @property
    def updated_at(self) -> datetime: ...


def course_facts(course: Course, suppressed: bool) -> CourseFacts:
    """The planning view of a course and its client."""
    return facts_of(course, course.client, course.sessions, suppressed)


def facts_of(
    course: CourseRecord,
    client: ClientRecord,
    sessions: Iterable[SessionRecord],
    suppressed: bool,
) -> CourseFacts:
    """The planning view of a course from its records (ORM objects or Core rows)."""
    return CourseFacts(
        course_id=course.id,
        client_id=client.id,
        timezone=client.timezone,
        scar_types=tuple(ScarType(s) for s in course.scar_types.split(",") if s),
        sessions_planned=course.sessions_planned,
        status=course.status,
        enrolled_at=course.enrolled_at,
        ended_at=course.ended_at,
        sessions=tuple(
            SessionFacts(
                number=s.number,
                status=s.status,
                scheduled_at=s.scheduled_at,
                completed_at=s.completed_at,
                revision=s.revision,
                changed_at=s.updated_at,
            )
            for s in sessions
        ),
        emailable=emailable(client) and not suppressed,
    )


def is_suppressed(db: Session, email: str) -> bool:
    """True when the address is on the hashed do-not-email list."""
    found = db.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash(email)))
    return found is not None


def emailable(client: ClientRecord) -> bool:
    """Whether the client may be emailed at all (suppressions aside)."""
    return client.unsubscribed_at is None and client.erased_at is None and client.email is not None


def held_invites(messages: Iterable[Message]) -> dict[int, int]:
    """Per session, the newest revision of which the client holds a calendar invite."""
    held: dict[int, int] = {}
    for m in messages:
        if m.status is MessageStatus.SENT and m.invite_revision is not None and m.session_number:
            held[m.session_number] = max(held.get(m.session_number, -1), m.invite_revision)
    return held


@dataclass(frozen=True)
class Planner:
    """Plans courses with one sequence and send window."""

    sequence: Sequence
    window: SendWindow
    id_domain: str

    def replan(self, db: Session, course: Course, now: datetime) -> None:
        """Bring the course's message rows in line with its facts."""
        client = course.client
        suppressed = client.email is not None and is_suppressed(db, client.email)
        facts = course_facts(course, suppressed)
        existing = {
            m.key: m for m in db.scalars(select(Message).where(Message.course_id == course.id))
        }
        wanted = plan(facts, self.sequence, self.window, now, held_invites(existing.values()))
        wanted_keys = {p.key for p in wanted}
        for key, row in existing.items():
            if row.status in FINAL or key in wanted_keys:
                continue
            if row.status is MessageStatus.PENDING:
                self._set(
                    row, MessageStatus.CANCELLED, self._why_dropped(row, facts, suppressed), now
                )
        fresh = []
        for planned in wanted:
            current = existing.get(planned.key)
            if current is None:
                fresh.append(self._new_row(course, planned, now))
            elif current.status not in FINAL:
                self._update(current, planned, now)
        if fresh:
            db.execute(insert(Message), fresh)

    def plan_new_courses(
        self, db: Session, courses: list[tuple[Course, bool]], now: datetime
    ) -> None:
        """Plan courses that have no emails yet, writing the rows in one statement.

        Each pair is a freshly flushed course and whether its address is on
        the do-not-email list.
        """
        rows = [
            self._new_row(course, planned, now)
            for course, suppressed in courses
            for planned in plan(course_facts(course, suppressed), self.sequence, self.window, now)
        ]
        if rows:
            db.execute(insert(Message), rows)

    def _new_row(self, course: Course, planned: PlannedMessage, now: datetime) -> dict[str, Any]:
        status = MessageStatus.SKIPPED if planned.skip_reason else MessageStatus.PENDING
        return {
            "course_id": course.id,
            "client_id": course.client_id,
            "key": planned.key,
            "step": planned.step,
            "session_number": planned.session_number,
            "status": status,
            "reason": planned.skip_reason,
            "due_at": planned.due_at,
            "expires_at": planned.expires_at,
            "invite_revision": planned.invite_revision,
            "message_id": new_message_id(self.id_domain),
            "attempts": 0,
            "possible_duplicate": False,
            "created_at": now,
            "updated_at": now,
        }

    def _update(self, row: Message, planned: PlannedMessage, now: datetime) -> None:
        if (row.due_at, row.expires_at, row.invite_revision) != (
            planned.due_at,
            planned.expires_at,
            planned.invite_revision,
        ):
            row.due_at, row.expires_at = planned.due_at, planned.expires_at
            row.invite_revision = planned.invite_revision
            row.updated_at = now
        if planned.skip_reason is not None:
            if row.status is not MessageStatus.SKIPPED:
                self._set(row, MessageStatus.SKIPPED, planned.skip_reason, now)
        elif row.status is not MessageStatus.PENDING:
            self._set(row, MessageStatus.PENDING, None, now)

    @staticmethod
    def _set(row: Message, status: MessageStatus, reason: str | None, now: datetime) -> None:
        row.status, row.reason, row.updated_at = status, reason, now

    def _why_dropped(  # noqa: PLR0911  (one plain answer per case reads best)
        self, row: Message, facts: CourseFacts, suppressed: bool
    ) -> str:
        if not facts.emailable:
            return (
                "the address is on the do-not-email list"
                if suppressed
                else "the client unsubscribed"
            )
        if facts.status is CourseStatus.WITHDRAWN:
            return "the course was withdrawn"
        names = {s.name: s for s in self.sequence.steps}
        step = names.get(row.step)
        if step is None:
            return f"the step {row.step!r} is no longer in the sequence"
        if row.session_number is not None:
            session = facts.session(row.session_number)
            if session is None or session.status is SessionStatus.CANCELLED:
                return f"session {row.session_number} was cancelled"
            if session.status is SessionStatus.COMPLETED and row.key.count("/") == 1:
                return f"session {row.session_number} was attended"
            if row.key.count("/") == 2:
                return f"session {row.session_number} changed again"
        if Condition.NEXT_NOT_BOOKED in step.conditions:
            return "the next session is booked"
        return "the course changed; this email no longer applies"
