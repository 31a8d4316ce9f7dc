"""Value objects and enums shared by every stage of the pipeline.

Stages pass these frozen objects to each other, never ORM rows.  Every enum's
values are the strings stored in the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ScarType(enum.StrEnum):
    """Scar types staff record at the consultation (health data)."""

    ATROPHIC = "atrophic"
    HYPERTROPHIC = "hypertrophic"
    PIH = "pih"

    @property
    def label(self) -> str:
        """Plain-language name for people."""
        return _SCAR_LABELS[self]


_SCAR_LABELS = {
    ScarType.ATROPHIC: "atrophic (depressed) scars",
    ScarType.HYPERTROPHIC: "hypertrophic (raised) scars",
    ScarType.PIH: "post-inflammatory hyperpigmentation (dark marks)",
}

#: Canonical order, used when storing and displaying a set of scar types.
SCAR_ORDER = (ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC)


def canonical_scars(scars: frozenset[ScarType] | set[ScarType]) -> tuple[ScarType, ...]:
    """Return ``scars`` in canonical order."""
    return tuple(s for s in SCAR_ORDER if s in scars)


def only_hypertrophic(scars: frozenset[ScarType] | tuple[ScarType, ...]) -> bool:
    """True when microneedling would be offered for raised scars alone."""
    return set(scars) == {ScarType.HYPERTROPHIC}


class CourseStatus(enum.StrEnum):
    """Where a course stands."""

    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class SessionStatus(enum.StrEnum):
    """Where one treatment session stands."""

    BOOKED = "booked"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MessageStatus(enum.StrEnum):
    """Where one planned email stands."""

    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"


class EventKind(enum.StrEnum):
    """Facts staff (or clients) record; the course history is a list of these."""

    ENROLLED = "enrolled"
    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    COURSE_COMPLETED = "course_completed"
    WITHDRAWN = "withdrawn"
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """One booked, attended or cancelled treatment session (times in UTC)."""

    number: int
    status: SessionStatus
    scheduled_at: datetime | None
    completed_at: datetime | None
    revision: int
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """Everything recorded about one course that planning needs (times in UTC)."""

    course_id: int
    client_id: int
    timezone: str
    scar_types: tuple[ScarType, ...]
    sessions_planned: int
    status: CourseStatus
    enrolled_at: datetime
    ended_at: datetime | None
    sessions: tuple[SessionFacts, ...]
    emailable: bool

    def session(self, number: int) -> SessionFacts | None:
        """The facts of session ``number``, if it was ever booked."""
        for s in self.sessions:
            if s.number == number:
                return s
        return None
