"""Messages: every planned email of a course, its fate and its worker's claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")
STATUS = sa.Enum(
    "pending",
    "sent",
    "skipped",
    "cancelled",
    "failed",
    name="messagestatus",
    native_enum=False,
    length=16,
)


def upgrade() -> None:
    """Create the messages table and its indexes."""
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("step", sa.String(length=48), nullable=False),
        sa.Column("session_number", sa.Integer(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("invite_revision", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("possible_duplicate", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_messages_client_id_clients"
        ),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name="fk_messages_course_id_courses"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint("course_id", "key", name="uq_messages_course_id_key"),
        sa.UniqueConstraint("message_id", name="uq_messages_message_id"),
    )
    op.create_index("ix_messages_client_id", "messages", ["client_id"])
    op.create_index(
        "ix_messages_pending_due",
        "messages",
        ["due_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    """Drop the messages table."""
    op.drop_index("ix_messages_pending_due", table_name="messages")
    op.drop_index("ix_messages_client_id", table_name="messages")
    op.drop_table("messages")
