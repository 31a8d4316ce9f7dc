"""Delivery: claim due emails, decide, render, send, record.

The decisions (send now, wait for the window, skip as stale, retry or give
up) are pure functions of the email, the client and ``now``.  ``Dispatcher``
is the thin loop around them.  A batch is claimed with a lease and read
under the claim a few emails at a time; the emails of a read that are due to
go are rendered together (``Composer.draft_many``); then, one email at a
time, it is decided again, its message assembled, and it is flagged as in
flight by a compare-and-set that also checks nothing was recorded about it
or its client since the read (an unsubscribe, a reschedule or a booking that
landed meanwhile sends it back to be read and rendered again); it is handed
to the transport outside any transaction, and its outcome recorded with a
compare-and-set on the claim, in the same transaction as the next email's
flag.  So two workers never both send an email, a worker whose claim was
taken over neither sends nor records, and the only duplicate possible is one
whose hand-over began and whose answer was never recorded: it carries the
same Message-ID and stays flagged ``possible_duplicate``.
"""

from __future__ import annotations

import enum
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from nurture.db import copies, queue
from nurture.db.models import Client, Course, Message, Suppression, TreatmentSession
from nurture.domain import CourseFacts, MessageStatus
from nurture.errors import (
    AmbiguousDeliveryError,
    PermanentDeliveryError,
    SequenceError,
    TemplateError,
    TemporaryDeliveryError,
)
from nurture.reconcile import ClientRecord, CourseRecord, Planner, SessionRecord, facts_of
from nurture.rendering import Composer, Draft, OutgoingEmail, Recipient, Request
from nurture.timing import SendWindow
from nurture.tracking import email_hash
from nurture.transports.base import StagedTransport, Transport, staged

log = logging.getLogger(__name__)

#: What SQLAlchemy raises when the database cannot be reached (down, restarting, locked).
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)

#: How many claimed emails are read at once: few enough that what an email says
#: is a fraction of a second old when it goes out (and begin_send catches any
#: fact recorded since), enough that the read costs little per email.
READ_CHUNK = 50

T = TypeVar("T")


class Action(enum.Enum):
    """What to do with one claimed email."""

    SEND = "send"
    DEFER = "defer"
    SKIP = "skip"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Decision:
    """An action, with when (DEFER) or why (SKIP, CANCEL)."""

    action: Action
    at: datetime | None = None
    reason: str | None = None


def decide(
    *,
    now: datetime,
    expires_at: datetime,
    zone: str,
    window: SendWindow,
    blocked_reason: str | None,
) -> Decision:
    """Decide the fate of a claimed, due email (pure)."""
    if blocked_reason is not None:
        return Decision(Action.CANCEL, reason=blocked_reason)
    if now >= expires_at:
        return Decision(
            Action.SKIP,
            reason=f"stale: it was worth sending only until {expires_at:%Y-%m-%d %H:%M} UTC",
        )
    if window.contains(now, zone):
        return Decision(Action.SEND)
    opening = window.next_open(now, zone)
    if opening >= expires_at:
        return Decision(
            Action.SKIP,
            reason="stale: it would go stale before the send window opens again",
        )
    return Decision(Action.DEFER, at=opening)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff for temporary failures."""

    first: timedelta = timedelta(minutes=5)
    cap: timedelta = timedelta(hours=4)

    def next_attempt(self, attempts: int, now: datetime, expires_at: datetime) -> datetime | None:
        """When to try again after ``attempts`` failed tries, or None to give up (pure)."""
        delay = min(self.first * (2 ** max(attempts - 1, 0)), self.cap)
        at = now + delay
        return at if at < expires_at else None


@dataclass(frozen=True)
class Job:
    """A claimed email, read afresh, with everything needed to decide and render it."""

    id: int
    message_id: str
    step: str
    session_number: int | None
    invite_revision: int | None
    due_at: datetime
    expires_at: datetime
    attempts: int
    possible_duplicate: bool
    #: How many facts the client had when the email was read (see ``queue.begin_send``).
    facts_seen: int
    recipient: Recipient | None
    course: CourseFacts
    blocked_reason: str | None


@dataclass
class TickReport:
    """What one tick did."""

    sent: int = 0
    deferred: int = 0
    skipped: int = 0
    cancelled: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0
    released: int = 0
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Emails that got an outcome this tick."""
        return (
            self.sent + self.deferred + self.skipped + self.cancelled + self.retried + self.failed
        )


@dataclass(frozen=True)
class _InFlight:
    """An email handed over whose answer has not been read yet."""

    job: Job
    token: str
    email: OutgoingEmail
    attempts: int
    at: datetime


@dataclass(frozen=True)
class _Outcome:
    """An outcome waiting to be written with the worker's next transaction."""

    message_id: str
    id: int
    token: str
    outcome: str
    values: dict[str, object]


@dataclass
class Dispatcher:
    """One worker's delivery loop.

    Outcomes are written with the next transaction the worker opens anyway
    (the next email's in-flight flag, the next read, the end of the batch),
    so a sent email costs one short transaction, not two.  The order that
    matters is kept: an email's outcome is recorded before the next one is
    handed over, and every email is flagged before its own hand-over.

    A tick holds one database connection throughout (checking one out of the
    pool per email cost more than the writes); when the database drops it,
    the next transaction reconnects.

    Waiting on the mail server is overlapped with the worker's own work,
    never with the order above: the next message is assembled while the
    server answers for the last one, and an email's envelope travels while
    it is being flagged (the message itself follows the flag).
    """

    engine: Engine
    transport: Transport
    composer: Composer
    planner: Planner
    window: SendWindow
    clock: Callable[[], datetime]
    lease: timedelta = timedelta(minutes=5)
    send_timeout: float = 30.0
    batch_size: int = 200
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_consecutive_failures: int = 3
    _next_sweep: float = field(default=0.0, init=False, repr=False)
    _outcomes: list[_Outcome] = field(default_factory=list, init=False, repr=False)
    _held: Connection | None = field(default=None, init=False, repr=False)
    _stages: StagedTransport = field(init=False, repr=False)
    _in_flight: _InFlight | None = field(default=None, init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._stages = staged(self.transport)

    def tick(self, stop: threading.Event | None = None) -> TickReport:
        """Deliver everything due now, batch by batch, then return."""
        report = TickReport()
        try:
            with self.engine.connect() as conn:
                self._held = conn
                self._sweep(conn)
                while not (stop is not None and stop.is_set()):
                    token = secrets.token_hex(16)
                    started = time.monotonic()
                    with conn.begin():
                        ids = queue.claim(
                            conn,
                            due_by=self.clock(),
                            token=token,
                            lease=self.lease,
                            limit=self.batch_size,
                        )
                    if not ids:
                        break
                    if not self._work(ids, token, started, report, stop):
                        break
        finally:
            self._held = None
            self._stages.close()
        return report

    @property
    def _conn(self) -> Connection:
        assert self._held is not None, "only inside a tick"
        return self._held

    def _sweep(self, conn: Connection) -> None:
        """Clear dead workers' claims on emails that left pending (once per lease at most)."""
        if time.monotonic() < self._next_sweep:
            return
        with conn.begin():
            queue.clear_stale_claims(conn)
        self._next_sweep = time.monotonic() + self.lease.total_seconds()

    def _work(
        self,
        ids: list[int],
        token: str,
        started: float,
        report: TickReport,
        stop: threading.Event | None,
    ) -> bool:
        """Handle one claimed batch; False when the tick should end early."""
        deadline = started + self.lease.total_seconds() - self.send_timeout - 1
        self._failures = 0
        try:
            for start in range(0, len(ids), READ_CHUNK):
                jobs = self._load(ids[start : start + READ_CHUNK], token, report)
                drafts = self._draft(jobs)
                later = ids[start + READ_CHUNK :]
                for index, job in enumerate(jobs):
                    if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                        self._take_answer(report)
                        self._release([j.id for j in jobs[index:]] + later, token, report)
                        return False
                    handled = self._handle(job, token, report, drafts.get(job.id))
                    if self._giving_up():
                        self._take_answer(report)
                        rest = jobs[index + 1 :] if handled else jobs[index:]
                        self._release([j.id for j in rest] + later, token, report)
                        return False
            self._take_answer(report)
            return not self._giving_up()
        finally:
            self._take_answer(report)
            self._flush(report)

    def _giving_up(self) -> bool:
        """True, and said in the log, once the transport failed too often in a row."""
        if self._failures < self.max_consecutive_failures:
            return False
        log.warning("transport_unavailable transport=%s", self.transport.name)
        return True

    def _release(self, ids: list[int], token: str, report: TickReport) -> None:
        report.released += self._commit(report, lambda db: queue.release(db, ids, token))

    def _draft(self, jobs: list[Job]) -> dict[int, Draft | TemplateError | SequenceError]:
        """Render, together, the emails of a read that are to be sent now (see ``_handle``).

        Rendering them as one batch keeps Jinja's and css_inline's code hot;
        what goes out is still decided email by email, and one decided
        otherwise by then, or without a draft, is dealt with as before.
        """
        now = self.clock()
        sendable, requests = [], []
        for job in jobs:
            if job.recipient is not None and self._decide(job, now).action is Action.SEND:
                sendable.append(job)
                requests.append(_request(job))
        drafts = self.composer.draft_many(requests)
        return {job.id: draft for job, draft in zip(sendable, drafts, strict=True)}

    def _decide(self, job: Job, now: datetime) -> Decision:
        return decide(
            now=now,
            expires_at=job.expires_at,
            zone=job.course.timezone,
            window=self.window,
            blocked_reason=job.blocked_reason,
        )

    def _handle(
        self,
        job: Job,
        token: str,
        report: TickReport,
        draft: Draft | TemplateError | SequenceError | None = None,
    ) -> bool:
        """Decide, send and record one email; False when it was left untouched.

        That happens when the answer to the email before shows the server
        failing for the last time allowed in a row: this one is not tried.
        """
        now = self.clock()
        decision = self._decide(job, now)
        if decision.action is Action.SEND:
            return self._send(job, token, report, now, draft)
        outcome, values = _settle(decision, job)
        self._finish(job, token, outcome, updated_at=now, **values)
        return True

    def _load(self, ids: list[int], token: str, report: TickReport) -> list[Job]:
        """The claimed emails as they are now, those still ours and still due, in order.

        Read a few at a time; just before the hand-over a compare-and-set
        checks that nothing about the email or its client was recorded since
        (``queue.begin_send``), so what goes out is what the facts say then.
        """
        now = self.clock()
        conn = self._conn
        with conn.begin():
            rows = {m.id: m for m in conn.execute(_CLAIMED, {"ids": ids})}
            course_ids = list({m.course_id for m in rows.values()})
            courses = {c.id: c for c in conn.execute(_COURSES, {"ids": course_ids})}
            client_ids = list({c.client_id for c in courses.values()})
            clients = {c.id: c for c in conn.execute(_CLIENTS, {"ids": client_ids})}
            sessions: dict[int, list[SessionRecord]] = {course_id: [] for course_id in courses}
            for s in conn.execute(_SESSIONS, {"ids": course_ids}):
                sessions[s.course_id].append(s)
            hashes = {c.id: email_hash(c.email) for c in clients.values() if c.email is not None}
            suppressed = set(conn.scalars(_SUPPRESSED, {"hashes": list(set(hashes.values()))}))
            facts = queue.facts_recorded(conn, client_ids)
            jobs, lost, moved = [], [], []
            for message_id in ids:
                m = rows.get(message_id)
                if m is None or m.claim_token != token:
                    lost.append(m.message_id if m is not None else str(message_id))
                elif m.status is not MessageStatus.PENDING or m.due_at > now:
                    moved.append(m)  # cancelled or moved since it was claimed
                else:
                    course = courses[m.course_id]
                    client = clients[course.client_id]
                    blocked = hashes.get(client.id) in suppressed
                    jobs.append(
                        _job(m, course, client, sessions[course.id], blocked, facts[client.id])
                    )
            queue.release(conn, [m.id for m in moved], token)
        for label in lost:
            self._count(report, "lost", label)
        for m in moved:
            self._count(report, "released", m.message_id)
        return jobs

    def _send(
        self,
        job: Job,
        token: str,
        report: TickReport,
        now: datetime,
        draft: Draft | TemplateError | SequenceError | None,
    ) -> bool:
        """Render, flag and hand over one email; its answer is read before the next hand-over."""
        attempts = job.attempts + 1
        try:
            email = self._render(job, now, draft)
        except (TemplateError, SequenceError) as exc:
            log.error("render_failed message_id=%s error=%s", job.message_id, exc)
            self._finish(
                job,
                token,
                "failed",
                status=MessageStatus.FAILED,
                reason=f"template error: {exc}"[:300],
                attempts=attempts,
                updated_at=now,
            )
            return True
        self._take_answer(report)  # the last email's answer, recorded with this one's flag
        if self._failures >= self.max_consecutive_failures:
            return False
        self._stages.announce(email)
        if not self._begin_send(job, token, report):
            self._stages.withdraw()
            return True
        try:
            self._stages.hand_over(email)
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            self._failed(_InFlight(job, token, email, attempts, now), exc, report)
            return True
        self._in_flight = _InFlight(job, token, email, attempts, now)
        return True

    def _take_answer(self, report: TickReport) -> None:
        """Read the server's answer to the email in flight, if any, and record it."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return
        try:
            self._stages.settle()
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            self._failed(flight, exc, report)
            return
        self._failures = 0
        job = flight.job
        self._finish(
            job,
            flight.token,
            "sent",
            status=MessageStatus.SENT,
            sent_at=flight.at,
            sent_body=copies.pack(flight.email.data),  # what staff see, as the client saw it
            attempts=flight.attempts,
            reason=None,
            last_error=None,
            updated_at=flight.at,
            possible_duplicate=job.possible_duplicate,
        )
        log.info("email_sent message_id=%s transport=%s", job.message_id, self.transport.name)

    def _failed(
        self,
        flight: _InFlight,
        exc: TemporaryDeliveryError | PermanentDeliveryError,
        report: TickReport,
    ) -> None:
        """Record a refused or failed hand-over: retry later, or give up on it."""
        job, token, attempts, now = flight.job, flight.token, flight.attempts, flight.at
        if isinstance(exc, TemporaryDeliveryError):
            self._failures += 1
            self._retry_later(job, token, exc, attempts, now)
            return
        self._failures = 0
        log.warning("send_failed message_id=%s transport=%s", job.message_id, self.transport.name)
        self._fail_permanently(job, token, report, exc, attempts, now)

    def _begin_send(self, job: Job, token: str, report: TickReport) -> bool:
        """Flag the email as in flight and renew the lease; False when it is not ours to send."""
        hold = self._commit(
            report,
            lambda db: queue.begin_send(
                db,
                job.id,
                token,
                self.lease,
                due_at=job.due_at,
                expires_at=job.expires_at,
                invite_revision=job.invite_revision,
                client_id=job.course.client_id,
                facts_seen=job.facts_seen,
            ),
            job.message_id,
        )
        if hold is queue.Hold.KEPT:
            return True
        self._count(report, "released" if hold is queue.Hold.CHANGED else "lost", job.message_id)
        return False

    def _render(
        self, job: Job, now: datetime, draft: Draft | TemplateError | SequenceError | None
    ) -> OutgoingEmail:
        if draft is None:  # not due to go when the read was rendered, due now
            draft = self.composer.draft(_request(job))
        elif not isinstance(draft, Draft):
            raise draft
        return self.composer.finish(draft, now)[1]

    def _retry_later(
        self,
        job: Job,
        token: str,
        exc: TemporaryDeliveryError,
        attempts: int,
        now: datetime,
    ) -> None:
        ambiguous = isinstance(exc, AmbiguousDeliveryError)
        log.warning(
            "send_deferred message_id=%s transport=%s attempts=%d maybe_delivered=%s",
            job.message_id,
            self.transport.name,
            attempts,
            ambiguous,
        )
        values: dict[str, object] = {
            "last_error": str(exc)[:300],
            "attempts": attempts,
            "updated_at": now,
            "possible_duplicate": job.possible_duplicate or ambiguous,
        }
        retry_at = self.retry.next_attempt(attempts, now, job.expires_at)
        if retry_at is None:
            reason = "temporary failures lasted until it went stale"
            values.update(status=MessageStatus.FAILED, reason=reason)
            self._finish(job, token, "failed", **values)
        else:
            self._finish(job, token, "retried", due_at=retry_at, **values)

    def _fail_permanently(
        self,
        job: Job,
        token: str,
        report: TickReport,
        exc: PermanentDeliveryError,
        attempts: int,
        now: datetime,
    ) -> None:
        def write(conn: Connection) -> bool:
            done = queue.finish(
                conn,
                job.id,
                token,
                status=MessageStatus.FAILED,
                reason="the mail server refused it permanently",
                last_error=str(exc)[:300],
                attempts=attempts,
                updated_at=now,
                possible_duplicate=job.possible_duplicate,
            )
            if done and exc.recipient_rejected and job.recipient is not None:
                with Session(bind=conn) as db:  # joins this transaction
                    self._suppress(db, job, now)
                    db.flush()
            return done

        done = self._commit(report, write, job.message_id)
        self._count(report, "failed" if done else "lost", job.message_id)

    def _suppress(self, db: Session, job: Job, now: datetime) -> None:
        assert job.recipient is not None
        digest = email_hash(job.recipient.email)
        if db.scalar(select(Suppression.id).where(Suppression.email_hash == digest)) is None:
            db.add(Suppression(email_hash=digest, reason="rejected", created_at=now))
            db.flush()
        client = db.get(Client, job.course.client_id)
        assert client is not None
        for course in client.courses:
            self.planner.replan(db, course, now)

    def _finish(self, job: Job, token: str, outcome: str, **values: object) -> None:
        """Record an outcome with the worker's next transaction."""
        self._outcomes.append(_Outcome(job.message_id, job.id, token, outcome, values))

    def _flush(self, report: TickReport) -> None:
        """Write the outcomes still waiting (end of a batch, or an error on the way out)."""
        if self._outcomes:
            self._commit(report, lambda db: None)

    def _commit(self, report: TickReport, then: Callable[[Connection], T], label: str = "") -> T:
        """One transaction: the waiting outcomes, then ``then``; its result.

        While the database is unreachable it keeps trying for a while: only
        this worker knows what the server answered, and giving up would turn
        a sent email into a resend once the lease ran out.  Trying again is
        safe, as every write is a compare-and-set on the claim.  Patience:
        the lease, at least a minute.
        """
        outcomes, self._outcomes = self._outcomes, []
        label = label or (outcomes[0].message_id if outcomes else "-")
        deadline = time.monotonic() + max(self.lease.total_seconds(), 60.0)
        delay = 0.5
        while True:
            try:
                with self._conn.begin():
                    done = [queue.finish(self._conn, o.id, o.token, **o.values) for o in outcomes]
                    result = then(self._conn)
                break
            except DATABASE_UNREACHABLE as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning(
                    "database_unavailable while=recording message_id=%s retry_in=%.1fs error=%s",
                    label,
                    delay,
                    first_line(exc),
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        for o, ok in zip(outcomes, done, strict=True):
            self._count(report, o.outcome if ok else "lost", o.message_id)
        return result

    @staticmethod
    def _count(report: TickReport, outcome: str, message_id: str) -> None:
        if outcome == "lost":
            log.warning("claim_lost message_id=%s", message_id)
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.outcomes.append((message_id, outcome))


class _ClientRow(ClientRecord, Protocol):
    @property
    def public_id(self) -> str: ...
    @property
    def name(self) -> str | None: ...


def _job(
    m: Any,  # a row of _CLAIMED
    course: CourseRecord,
    client: _ClientRow,
    sessions: list[SessionRecord],
    suppressed: bool,
    facts_seen: int,
) -> Job:
    """What a worker needs of one claimed email, read under its claim."""
    blocked = _blocked_reason(client, suppressed)
    recipient = None
    if blocked is None and client.email is not None and client.name is not None:
        recipient = Recipient(client.public_id, client.name, client.email, client.timezone)
    return Job(
        id=m.id,
        message_id=m.message_id,
        step=m.step,
        session_number=m.session_number,
        invite_revision=m.invite_revision,
        due_at=m.due_at,
        expires_at=m.expires_at,
        attempts=m.attempts,
        possible_duplicate=m.possible_duplicate,
        facts_seen=facts_seen,
        recipient=recipient,
        course=facts_of(course, client, sessions, suppressed),
        blocked_reason=blocked,
    )


#: What ``_load`` reads, as plain Core (ORM loading cost more than the rest of the
#: read): each column keeps its model name, so rows read like the model objects.
_CLAIMED = select(
    Message.id,
    Message.message_id,
    Message.step,
    Message.session_number,
    Message.invite_revision,
    Message.due_at,
    Message.expires_at,
    Message.attempts,
    Message.possible_duplicate,
    Message.status,
    Message.claim_token,
    Message.course_id,
).where(Message.id.in_(bindparam("ids", expanding=True)))
_COURSES = select(
    Course.id,
    Course.client_id,
    Course.scar_types,
    Course.sessions_planned,
    Course.status,
    Course.enrolled_at,
    Course.ended_at,
).where(Course.id.in_(bindparam("ids", expanding=True)))
_CLIENTS = select(
    Client.id,
    Client.public_id,
    Client.email,
    Client.name,
    Client.timezone,
    Client.unsubscribed_at,
    Client.erased_at,
).where(Client.id.in_(bindparam("ids", expanding=True)))
_SESSIONS = (
    select(
        TreatmentSession.course_id,
        TreatmentSession.number,
        TreatmentSession.status,
        TreatmentSession.scheduled_at,
        TreatmentSession.completed_at,
        TreatmentSession.revision,
        TreatmentSession.updated_at,
    )
    .where(TreatmentSession.course_id.in_(bindparam("ids", expanding=True)))
    .order_by(TreatmentSession.course_id, TreatmentSession.number)
)
_SUPPRESSED = select(Suppression.email_hash).where(
    Suppression.email_hash.in_(bindparam("hashes", expanding=True))
)


def _request(job: Job) -> Request:
    """What the composer needs to render a job's email (only for one with a recipient)."""
    assert job.recipient is not None
    return Request(job.step, job.course, job.recipient, job.session_number, job.message_id)


def _settle(decision: Decision, job: Job) -> tuple[str, dict[str, object]]:
    """The outcome and the values to record for a decision other than SEND."""
    if decision.action is Action.DEFER:
        return "deferred", {"due_at": decision.at}
    if decision.action is Action.SKIP and job.attempts:
        reason = f"gave up after {job.attempts} failed attempt(s); {decision.reason}"
        return "failed", {"status": MessageStatus.FAILED, "reason": reason}
    if decision.action is Action.SKIP:
        return "skipped", {"status": MessageStatus.SKIPPED, "reason": decision.reason}
    return "cancelled", {"status": MessageStatus.CANCELLED, "reason": decision.reason}


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (database errors run over several)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _blocked_reason(client: ClientRecord, suppressed: bool) -> str | None:
    if client.erased_at is not None or client.email is None:
        return "the client was erased"
    if client.unsubscribed_at is not None:
        return "the client unsubscribed"
    if suppressed:
        return "the address is on the do-not-email list"
    return None
