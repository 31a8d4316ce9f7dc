"""Pure planning: which emails a course should have, and when.

``plan`` is a function of the course's facts, the sequence, the send window
and ``now``; it reads no clock and touches no database.  Each planned email
has a stable ``key`` (the step, and the session and revision it is about), so
re-planning after any fact change can be compared with what already exists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from nurture.domain import CourseFacts, CourseStatus, SessionStatus
from nurture.sequence import Condition, Sequence, Step, Trigger
from nurture.timing import SendWindow


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One email the course should have."""

    key: str
    step: str
    session_number: int | None
    due_at: datetime
    expires_at: datetime
    #: Why it can no longer go out in time (None when it still can).
    skip_reason: str | None
    #: The session revision a calendar invite in it carries (None: no invite).
    invite_revision: int | None


@dataclass(frozen=True, slots=True)
class _Anchor:
    session: int | None
    at: datetime
    key: str
    revision: int | None
    not_after: datetime | None


def plan(
    facts: CourseFacts,
    sequence: Sequence,
    window: SendWindow,
    now: datetime,
    invites: Mapping[int, int] | None = None,
) -> list[PlannedMessage]:
    """Every email the course should have now, in sequence order.

    ``invites`` maps a session number to the newest revision of it for which
    the client already holds a calendar invite (from emails already sent).
    """
    if not facts.emailable or facts.status is CourseStatus.WITHDRAWN:
        return []
    held = invites or {}
    planned = []
    for step in sequence.steps:
        if not step.scars & set(facts.scar_types):
            continue
        for anchor in _anchors(step, facts, held):
            if not all(_holds(c, anchor.session, facts) for c in step.conditions):
                continue
            planned.append(_schedule(step, anchor, facts.timezone, window, now))
    return planned


def _schedule(
    step: Step, anchor: _Anchor, zone: str, window: SendWindow, now: datetime
) -> PlannedMessage:
    expires = anchor.at + step.expires
    if anchor.not_after is not None:
        expires = min(expires, anchor.not_after)
    due = window.next_open(anchor.at + step.offset, zone)
    earliest = window.next_open(max(due, now), zone)
    reason = None
    if earliest >= expires:
        reason = (
            f"too late to be useful: it was worth sending only until {expires:%Y-%m-%d %H:%M} UTC"
        )
    return PlannedMessage(
        key=anchor.key,
        step=step.name,
        session_number=anchor.session,
        due_at=due,
        expires_at=expires,
        skip_reason=reason,
        invite_revision=anchor.revision if step.invite else None,
    )


def _anchors(step: Step, facts: CourseFacts, held: Mapping[int, int]) -> Iterator[_Anchor]:
    trigger = step.trigger
    if trigger is Trigger.ENROLLED:
        yield _Anchor(None, facts.enrolled_at, step.name, None, None)
        return
    if trigger is Trigger.COURSE_COMPLETED:
        if facts.status is CourseStatus.COMPLETED and facts.ended_at is not None:
            yield _Anchor(None, facts.ended_at, step.name, None, None)
        return
    for s in facts.sessions:
        if not step.applies_to_session(s.number, facts.sessions_planned):
            continue
        key = f"{step.name}/{s.number}"
        if trigger is Trigger.BOOKING_MADE and s.status is SessionStatus.BOOKED:
            yield _Anchor(s.number, s.changed_at, key, s.revision, s.scheduled_at)
        elif trigger is Trigger.SESSION_BOOKED and s.status is SessionStatus.BOOKED:
            assert s.scheduled_at is not None
            yield _Anchor(s.number, s.scheduled_at, key, s.revision, s.scheduled_at)
        elif trigger is Trigger.SESSION_COMPLETED and s.status is SessionStatus.COMPLETED:
            assert s.completed_at is not None
            yield _Anchor(s.number, s.completed_at, key, None, None)
        elif s.number in held and held[s.number] < s.revision:
            changed = f"{key}/r{s.revision}"
            if (trigger is Trigger.SESSION_MOVED and s.status is SessionStatus.BOOKED) or (
                trigger is Trigger.SESSION_CANCELLED and s.status is SessionStatus.CANCELLED
            ):
                yield _Anchor(s.number, s.changed_at, changed, s.revision, s.scheduled_at)


def _holds(condition: Condition, session: int | None, facts: CourseFacts) -> bool:
    if condition is Condition.NEXT_NOT_BOOKED:
        following = 1 if session is None else session + 1
        if following > facts.sessions_planned:
            return False
        nxt = facts.session(following)
        return nxt is None or nxt.status is SessionStatus.CANCELLED
    raise AssertionError(condition)  # pragma: no cover - Condition is exhaustive
