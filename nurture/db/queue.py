"""The queries delivery needs: claim due emails with a lease, record outcomes.

A claim stamps rows with a random token and a lease deadline taken from the
database's clock.  Every later write is a compare-and-set on that token, so
a worker whose lease ran out (and was taken over) can record nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, or_, select, text, update
from sqlalchemy.orm import Session

from nurture.db.models import Message
from nurture.domain import MessageStatus


def database_now(db: Session) -> datetime:
    """The database's clock (PostgreSQL), or this machine's (SQLite is local)."""
    if db.get_bind().dialect.name == "postgresql":
        value = db.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def claim(db: Session, *, due_by: datetime, token: str, lease: timedelta, limit: int) -> list[int]:
    """Claim up to ``limit`` pending emails due by ``due_by``; return their ids.

    Rows locked by another claimer are skipped (PostgreSQL ``SKIP LOCKED``;
    SQLite serialises writers with ``BEGIN IMMEDIATE``).  A row whose earlier
    claim expired without an outcome is flagged as a possible duplicate: that
    worker may have handed it to the server before it died.
    """
    db_now = database_now(db)
    due = (
        select(Message.id)
        .where(
            Message.status == MessageStatus.PENDING,
            Message.due_at <= due_by,
            or_(Message.lease_until.is_(None), Message.lease_until < db_now),
        )
        .order_by(Message.due_at, Message.id)
        .limit(limit)
    )
    if db.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(
            claim_token=token,
            lease_until=db_now + lease,
            possible_duplicate=or_(Message.possible_duplicate, Message.claim_token.is_not(None)),
        )
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(db.execute(stmt).scalars())


def finish(db: Session, message_id: int, token: str, **values: Any) -> bool:
    """Write an outcome if the claim is still ours; release the claim. True on success."""
    stmt = (
        update(Message)
        .where(Message.id == message_id, Message.claim_token == token)
        .values(claim_token=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    result = db.execute(stmt)
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def release(db: Session, ids: Sequence[int], token: str) -> int:
    """Give back claims that were not worked on (a clean shutdown)."""
    if not ids:
        return 0
    stmt = (
        update(Message)
        .where(Message.id.in_(list(ids)), Message.claim_token == token)
        .values(claim_token=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    result = db.execute(stmt)
    assert isinstance(result, CursorResult)
    return result.rowcount


def dangling_claims(db: Session) -> int:
    """How many rows still carry a claim (zero once every worker has stopped cleanly)."""
    count = db.scalar(select(func.count()).where(Message.claim_token.is_not(None)))
    return int(count or 0)
