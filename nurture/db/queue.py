"""The queries delivery needs: claim due emails with a lease, record outcomes.

A claim stamps rows with a random token and a lease deadline taken from the
database's clock (PostgreSQL ``clock_timestamp()``; SQLite is local, so this
machine's clock).  The lease only says when another worker may take a row
over; the token is the fence: every later write is a compare-and-set on it,
so a worker whose claim was taken over (it was paused, or cut off) can
neither send nor record.

``possible_duplicate`` is raised by ``begin_send`` just before an email is
handed to the transport, and put back by the outcome the worker records.  A
flag that stays up therefore means exactly: a hand-over began whose answer
was never recorded (the worker died, or the server's answer was lost), so
the client may have the email twice.
"""

from __future__ import annotations

import enum
import functools
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Interval,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from nurture.db.engine import sqlite_error
from nurture.db.models import Event, Message
from nurture.domain import MessageStatus


class Hold(enum.Enum):
    """Whether a worker may hand a claimed email over (``begin_send``)."""

    #: Still ours, unchanged: flagged as in flight, lease renewed.
    KEPT = "kept"
    #: Still ours, but cancelled or moved since it was read: claim given back.
    CHANGED = "changed"
    #: Another worker holds it now.
    LOST = "lost"


def database_now(db: Connection) -> datetime:
    """The database's clock (PostgreSQL), or this machine's (SQLite is local)."""
    if db.dialect.name == "postgresql":
        value = db.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def claim(
    db: Connection, *, due_by: datetime, token: str, lease: timedelta, limit: int
) -> list[int]:
    """Claim up to ``limit`` pending emails due by ``due_by``; return their ids, oldest first.

    Rows locked by another claimer are skipped (PostgreSQL ``SKIP LOCKED``;
    SQLite serialises writers with ``BEGIN IMMEDIATE``), as are rows under
    another worker's unexpired lease.  A row whose lease expired is taken
    over as it is, except one flagged in flight (its worker handed it over
    and has not recorded the answer): that one waits a second lease, so a
    worker that was only cut off from the database (which cannot renew a
    lease) gets back in time to record what the server said, instead of the
    email going out again.  Taken over, it still carries its flag.
    """
    db_now = database_now(db)
    due = (
        select(Message.id)
        .where(
            Message.status == MessageStatus.PENDING,
            Message.due_at <= due_by,
            or_(
                Message.lease_until.is_(None),
                and_(Message.lease_until < db_now, Message.possible_duplicate.is_(False)),
                Message.lease_until < db_now - lease,
            ),
        )
        .order_by(Message.due_at, Message.id)
        .limit(limit)
    )
    if db.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Message)
        .where(Message.id.in_(due.scalar_subquery()))
        .values(claim_token=token, lease_until=db_now + lease)
        .returning(Message.id, Message.due_at)
        .execution_options(synchronize_session=False)
    )
    return [row.id for row in sorted(db.execute(stmt), key=lambda r: (r.due_at, r.id))]


def begin_send(
    db: Connection,
    message_id: int,
    token: str,
    lease: timedelta,
    *,
    due_at: datetime,
    expires_at: datetime,
    invite_revision: int | None,
    client_id: int,
    facts_seen: int,
) -> Hold:
    """Flag a claimed email as in flight and renew its lease, if it is still ours as read.

    "As read" means still pending with the due time, expiry and invite
    revision the worker rendered from, and no fact recorded about the client
    since (``facts_seen``, from ``facts_recorded``): a reschedule, a booking,
    an unsubscribe that landed meanwhile gives the claim back untouched, and
    the email is read and rendered again.
    """
    params: dict[str, Any] = {
        "m_client": client_id,
        "m_facts": facts_seen,
        "m_id": message_id,
        "m_token": token,
        "m_due": due_at,
        "m_expires": expires_at,
        "m_revision": invite_revision,
    }
    if db.dialect.name == "postgresql":
        statement, params["v_lease"] = _BEGIN_SEND_THERE, lease
    else:
        statement, params["v_lease_until"] = _BEGIN_SEND_HERE, database_now(db) + lease
    if _hot(db, statement, params) == 1:
        return Hold.KEPT
    return Hold.CHANGED if release(db, [message_id], token) else Hold.LOST


def facts_recorded(db: Connection, client_ids: Collection[int]) -> dict[int, int]:
    """How many facts (history events) each client has: what ``begin_send`` compares."""
    if not client_ids:
        return {}
    counts = db.execute(
        select(Event.client_id, func.count())
        .where(Event.client_id.in_(list(client_ids)))
        .group_by(Event.client_id)
    )
    found = {client_id: int(count) for client_id, count in counts}
    return {client_id: found.get(client_id, 0) for client_id in client_ids}


def finish(db: Connection, message_id: int, token: str, **values: Any) -> bool:
    """Write an outcome if the claim is still ours; release the claim. True on success."""
    params = {f"v_{name}": value for name, value in values.items()}
    params.update(m_id=message_id, m_token=token)
    return _hot(db, _finish_statement(tuple(sorted(values))), params) == 1


def release(db: Connection, ids: Sequence[int], token: str) -> int:
    """Give back claims that were not worked on (a clean shutdown, a changed email)."""
    if not ids:
        return 0
    stmt = update(Message).where(Message.id.in_(list(ids)), Message.claim_token == token)
    return _rows(db, stmt.values(claim_token=None, lease_until=None))


def clear_stale_claims(db: Connection) -> int:
    """Drop expired claims on emails that left ``pending`` meanwhile (their worker died).

    Re-planning may cancel or skip an email while a worker holds it; if that
    worker then dies, no one would ever claim the row again to clear it.
    """
    stmt = update(Message).where(
        Message.claim_token.is_not(None),
        Message.status != MessageStatus.PENDING,
        Message.lease_until < database_now(db),
    )
    return _rows(db, stmt.values(claim_token=None, lease_until=None))


def dangling_claims(db: Session | Connection) -> int:
    """How many rows still carry a claim (zero once every worker has stopped cleanly)."""
    count = db.scalar(select(func.count()).where(Message.claim_token.is_not(None)))
    return int(count or 0)


def _rows(db: Connection, stmt: Update, params: dict[str, Any] | None = None) -> int:
    # Plain Core on the worker's connection: these are single-row
    # compare-and-sets that need no ORM bookkeeping (a third of their cost).
    result = db.execute(stmt, params)
    assert isinstance(result, CursorResult)
    return result.rowcount


def _hot(db: Connection, stmt: Update, params: dict[str, Any]) -> int:
    """Run one of the per-email statements built below; the rows it matched.

    On SQLite (local, no network to hide it) SQLAlchemy's execution costs
    more than the statement: there it runs on the driver, compiled once,
    with SQLAlchemy's own type conversions and error classes, inside the
    transaction the caller opened with SQLAlchemy.  PostgreSQL keeps the
    full path, with its disconnect handling.
    """
    if db.dialect.name != "sqlite":
        return _rows(db, stmt, params)
    prepared = _prepared(stmt, db.dialect)
    values = prepared.values(params)
    driver = cast(sqlite3.Connection, db.connection.dbapi_connection)
    try:
        return driver.execute(prepared.sql, values).rowcount
    except sqlite3.Error as exc:
        raise sqlite_error(prepared.sql, values, exc) from exc


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled for one dialect, with what turns parameters into driver values."""

    sql: str
    #: Per positional parameter: its name, its fixed driver value (``_GIVEN``
    #: when the caller gives it), and SQLAlchemy's conversion for its type.
    slots: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]

    def values(self, params: dict[str, Any]) -> list[Any]:
        """The driver's parameters, in order (``KeyError`` for one not given)."""
        out = []
        for name, fixed, convert in self.slots:
            value = params[name] if fixed is _GIVEN else fixed
            out.append(value if convert is None else convert(value))
        return out


_GIVEN = object()


@functools.lru_cache(maxsize=64)
def _prepared(stmt: Update, dialect: Dialect) -> _Prepared:
    compiled = stmt.compile(dialect=dialect)
    assert compiled.positiontup is not None, "SQLite's driver takes positional parameters"
    slots = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.required:
            slots.append((name, _GIVEN, convert))
        else:  # a literal of the statement: converted once
            value = bind.effective_value
            slots.append((name, value if convert is None else convert(value), None))
    return _Prepared(compiled.string, tuple(slots))


def _value(name: str) -> BindParameter[Any]:
    return bindparam(f"v_{name}", type_=Message.__table__.c[name].type)


_OURS = (Message.id == bindparam("m_id"), Message.claim_token == bindparam("m_token"))

# The per-email statements are built once, with bound parameters: building an
# UPDATE costs more than running it on SQLite.
_BEGIN_SEND = update(Message).where(
    *_OURS,
    Message.status == MessageStatus.PENDING,
    Message.due_at == bindparam("m_due"),
    Message.expires_at == bindparam("m_expires"),
    Message.invite_revision.is_not_distinct_from(bindparam("m_revision")),
    select(func.count()).where(Event.client_id == bindparam("m_client")).scalar_subquery()
    == bindparam("m_facts"),
)
#: SQLite: the new lease's end comes from this machine's clock.
_BEGIN_SEND_HERE = _BEGIN_SEND.values(possible_duplicate=True, lease_until=_value("lease_until"))
#: PostgreSQL: from the database's clock, in the statement itself (naive UTC, as
#: stored), which spares a round trip per email for ``database_now``.
_BEGIN_SEND_THERE = _BEGIN_SEND.values(
    possible_duplicate=True,
    lease_until=func.timezone("UTC", func.clock_timestamp())
    + bindparam("v_lease", type_=Interval()),
)


@functools.lru_cache(maxsize=32)
def _finish_statement(names: tuple[str, ...]) -> Update:
    """The outcome write for one set of column names (a handful exist)."""
    values: dict[str, Any] = {"claim_token": None, "lease_until": None}
    values.update({name: _value(name) for name in names})
    return update(Message).where(*_OURS).values(values)
