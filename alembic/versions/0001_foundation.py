"""Foundation: clients, courses, sessions, the event history and suppressions.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status = 'active'")


def _status(name: str, values: tuple[str, ...], length: int = 16) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=length)


def upgrade() -> None:
    """Create the foundation tables."""
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(), nullable=True),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.UniqueConstraint("email", name="uq_clients_email"),
        sa.UniqueConstraint("public_id", name="uq_clients_public_id"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("email_hash", name="uq_suppressions_email_hash"),
    )
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("scar_types", sa.String(length=64), nullable=False),
        sa.Column("sessions_planned", sa.Integer(), nullable=False),
        sa.Column(
            "status", _status("coursestatus", ("active", "completed", "withdrawn")), nullable=False
        ),
        sa.Column("hypertrophic_confirmed", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name="fk_courses_client_id_clients"),
        sa.PrimaryKeyConstraint("id", name="pk_courses"),
    )
    op.create_index("ix_courses_client_id", "courses", ["client_id"])
    op.create_index(
        "uq_courses_one_active",
        "courses",
        ["client_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            _status(
                "eventkind",
                (
                    "enrolled",
                    "booked",
                    "rescheduled",
                    "cancelled",
                    "completed",
                    "course_completed",
                    "withdrawn",
                    "unsubscribed",
                    "erased",
                ),
                24,
            ),
            nullable=False,
        ),
        sa.Column("session_number", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name="fk_events_client_id_clients"),
        sa.ForeignKeyConstraint(["course_id"], ["courses.id"], name="fk_events_course_id_courses"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_client_id_id", "events", ["client_id", "id"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "status", _status("sessionstatus", ("booked", "completed", "cancelled")), nullable=False
        ),
        sa.Column("scheduled_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name="fk_sessions_course_id_courses"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.UniqueConstraint("course_id", "number", name="uq_sessions_course_id_number"),
    )


def downgrade() -> None:
    """Drop the foundation tables."""
    op.drop_table("sessions")
    op.drop_index("ix_events_client_id_id", table_name="events")
    op.drop_table("events")
    op.drop_index("uq_courses_one_active", table_name="courses")
    op.drop_index("ix_courses_client_id", table_name="courses")
    op.drop_table("courses")
    op.drop_table("suppressions")
    op.drop_table("clients")
