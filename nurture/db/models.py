"""SQLAlchemy 2 typed models: the durable state of every course.

Times are aware UTC datetimes (``UTCDateTime``); statuses are the domain
enums, stored as their string values.  Migrations in ``alembic/`` must build
exactly this schema (a test compares them).
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from nurture.db.types import UTCDateTime
from nurture.domain import CourseStatus, EventKind, MessageStatus, SessionStatus

#: The migration (in ``alembic/``) that builds exactly these models: the one a
#: database must be at for this code to use it.  A test checks that it is the
#: newest migration, so a new migration cannot land without moving it.
SCHEMA_REVISION = "0003"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_public_id() -> str:
    """An opaque, unguessable identifier for URLs and the API."""
    return secrets.token_urlsafe(16)


def _enum(kind: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with one naming convention and UTC datetimes."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012  (SQLAlchemy's contract)


class Client(Base):
    """A person who receives emails; personal data is nulled when erased."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    unsubscribed_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]

    courses: Mapped[list[Course]] = relationship(back_populates="client", order_by="Course.id")


class Course(Base):
    """One course of treatment, from enrolment to completion or withdrawal."""

    __tablename__ = "courses"
    __table_args__ = (
        Index(
            "uq_courses_one_active",
            "client_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    #: Health data: canonical, comma-separated scar types.  Never logged.
    scar_types: Mapped[str] = mapped_column(String(64))
    sessions_planned: Mapped[int]
    status: Mapped[CourseStatus] = mapped_column(_enum(CourseStatus))
    hypertrophic_confirmed: Mapped[bool] = mapped_column(default=False)
    enrolled_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship(back_populates="courses")
    sessions: Mapped[list[TreatmentSession]] = relationship(
        back_populates="course", order_by="TreatmentSession.number"
    )


class TreatmentSession(Base):
    """One microneedling session of a course (created when first booked)."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("course_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    number: Mapped[int]
    status: Mapped[SessionStatus] = mapped_column(_enum(SessionStatus))
    scheduled_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    #: Bumped on every reschedule or cancellation (the calendar SEQUENCE).
    revision: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime]

    course: Mapped[Course] = relationship(back_populates="sessions")


class Event(Base):
    """The history: one row per recorded fact, never updated."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "client_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id"))
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, 24))
    session_number: Mapped[int | None]
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Suppression(Base):
    """An address that must never be emailed, kept only as a hash."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class Message(Base):
    """One planned email: its due time, its fate, and the claim of a worker.

    ``key`` identifies what the email is about within its course (step,
    session, revision); ``message_id`` is fixed at creation so every retry
    carries the same Message-ID.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("course_id", "key"),
        Index(
            "ix_messages_pending_due",
            "due_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    key: Mapped[str] = mapped_column(String(96))
    step: Mapped[str] = mapped_column(String(48))
    session_number: Mapped[int | None]
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    reason: Mapped[str | None] = mapped_column(String(300))
    due_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    invite_revision: Mapped[int | None]
    message_id: Mapped[str] = mapped_column(String(128), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]
    #: Raised just before the email is handed to the transport and put back when the
    #: server's answer is recorded: left raised, a hand-over began whose answer was lost
    #: (a killed worker, a dropped connection), so the client may have it twice.
    possible_duplicate: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None]
    #: The message exactly as handed to the transport (see nurture.db.copies), for staff to view;
    #: removed when the client is erased.
    sent_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    course: Mapped[Course] = relationship()


class StaffUser(Base):
    """A clinic staff member who signs in to the web app."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token for a booking system; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotencyRecord(Base):
    """The answer given to one Idempotency-Key, replayed on a retry."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
