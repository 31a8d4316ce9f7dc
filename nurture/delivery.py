"""Delivery: claim due emails, decide, render, send, record.

The decisions (send now, wait for the window, skip as stale, retry or give
up) are pure functions of the email, the client and ``now``.  ``Dispatcher``
is the thin loop around them: each batch is claimed with a lease, each email
is sent outside any transaction, and each outcome is recorded at once with a
compare-and-set on the claim, so nothing is sent twice by two workers and a
worker that lost its claim records nothing.
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

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from nurture.db import queue
from nurture.db.models import Client, Course, Message, Suppression
from nurture.domain import CourseFacts, MessageStatus
from nurture.errors import (
    PermanentDeliveryError,
    SequenceError,
    TemplateError,
    TemporaryDeliveryError,
)
from nurture.reconcile import Planner, course_facts, is_suppressed
from nurture.rendering import Composer, OutgoingEmail, Recipient
from nurture.timing import SendWindow
from nurture.tracking import email_hash
from nurture.transports.base import Transport

log = logging.getLogger(__name__)


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
    """A claimed email with everything needed to decide and render it."""

    id: int
    message_id: str
    step: str
    session_number: int | None
    invite_revision: int | None
    expires_at: datetime
    attempts: int
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


@dataclass
class Dispatcher:
    """One worker's delivery loop."""

    sessions: sessionmaker[Session]
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

    def tick(self, stop: threading.Event | None = None) -> TickReport:
        """Deliver everything due now, batch by batch, then return."""
        report = TickReport()
        try:
            while not (stop is not None and stop.is_set()):
                token = secrets.token_hex(16)
                started = time.monotonic()
                with self.sessions.begin() as db:
                    ids = queue.claim(
                        db,
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
            self.transport.close()
        return report

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
        jobs = self._load(ids)
        failures = 0
        for index, job in enumerate(jobs):
            if (stop is not None and stop.is_set()) or time.monotonic() > deadline:
                self._release([j.id for j in jobs[index:]], token, report)
                return False
            temporary = self._handle(job, token, report)
            failures = failures + 1 if temporary else 0
            if failures >= self.max_consecutive_failures:
                log.warning("transport_unavailable transport=%s", self.transport.name)
                self._release([j.id for j in jobs[index + 1 :]], token, report)
                return False
        return True

    def _release(self, ids: list[int], token: str, report: TickReport) -> None:
        with self.sessions.begin() as db:
            report.released += queue.release(db, ids, token)

    def _load(self, ids: list[int]) -> list[Job]:
        with self.sessions.begin() as db:
            rows = db.scalars(
                select(Message)
                .where(Message.id.in_(ids))
                .options(
                    selectinload(Message.course).selectinload(Course.sessions),
                    selectinload(Message.course).selectinload(Course.client),
                )
                .order_by(Message.due_at, Message.id)
            ).all()
            return [self._job(db, m) for m in rows]

    def _job(self, db: Session, m: Message) -> Job:
        client = m.course.client
        suppressed = client.email is not None and is_suppressed(db, client.email)
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
            expires_at=m.expires_at,
            attempts=m.attempts,
            recipient=recipient,
            course=course_facts(m.course, suppressed),
            blocked_reason=blocked,
        )

    def _handle(self, job: Job, token: str, report: TickReport) -> bool:
        """Decide, send and record one email; True when it failed temporarily."""
        now = self.clock()
        decision = decide(
            now=now,
            expires_at=job.expires_at,
            zone=job.course.timezone,
            window=self.window,
            blocked_reason=job.blocked_reason,
        )
        if decision.action is Action.DEFER:
            self._finish(job, token, report, "deferred", due_at=decision.at, updated_at=now)
        elif decision.action is Action.SKIP and job.attempts:
            reason = f"gave up after {job.attempts} failed attempt(s); {decision.reason}"
            self._finish(
                job,
                token,
                report,
                "failed",
                status=MessageStatus.FAILED,
                reason=reason,
                updated_at=now,
            )
        elif decision.action is Action.SKIP:
            self._finish(
                job,
                token,
                report,
                "skipped",
                status=MessageStatus.SKIPPED,
                reason=decision.reason,
                updated_at=now,
            )
        elif decision.action is Action.CANCEL:
            self._finish(
                job,
                token,
                report,
                "cancelled",
                status=MessageStatus.CANCELLED,
                reason=decision.reason,
                updated_at=now,
            )
        else:
            return self._send(job, token, report, now)
        return False

    def _send(self, job: Job, token: str, report: TickReport, now: datetime) -> bool:
        assert job.recipient is not None
        attempts = job.attempts + 1
        try:
            email = self._render(job, now)
        except (TemplateError, SequenceError) as exc:
            log.error("render_failed message_id=%s error=%s", job.message_id, exc)
            self._finish(
                job,
                token,
                report,
                "failed",
                status=MessageStatus.FAILED,
                reason=f"template error: {exc}"[:300],
                attempts=attempts,
                updated_at=now,
            )
            return False
        try:
            self.transport.send(email)
        except TemporaryDeliveryError as exc:
            retry_at = self.retry.next_attempt(attempts, now, job.expires_at)
            log.warning(
                "send_deferred message_id=%s transport=%s attempts=%d",
                job.message_id,
                self.transport.name,
                attempts,
            )
            if retry_at is None:
                self._finish(
                    job,
                    token,
                    report,
                    "failed",
                    status=MessageStatus.FAILED,
                    reason="temporary failures lasted until it went stale",
                    last_error=str(exc)[:300],
                    attempts=attempts,
                    updated_at=now,
                )
            else:
                self._finish(
                    job,
                    token,
                    report,
                    "retried",
                    due_at=retry_at,
                    last_error=str(exc)[:300],
                    attempts=attempts,
                    updated_at=now,
                )
            return True
        except PermanentDeliveryError as exc:
            log.warning(
                "send_failed message_id=%s transport=%s", job.message_id, self.transport.name
            )
            self._fail_permanently(job, token, report, exc, attempts, now)
            return False
        self._finish(
            job,
            token,
            report,
            "sent",
            status=MessageStatus.SENT,
            sent_at=now,
            attempts=attempts,
            reason=None,
            last_error=None,
            updated_at=now,
        )
        log.info("email_sent message_id=%s transport=%s", job.message_id, self.transport.name)
        return False

    def _render(self, job: Job, now: datetime) -> OutgoingEmail:
        assert job.recipient is not None
        _, email = self.composer.compose(
            job.step,
            job.course,
            job.recipient,
            job.session_number,
            message_id=job.message_id,
            now=now,
        )
        return email

    def _fail_permanently(
        self,
        job: Job,
        token: str,
        report: TickReport,
        exc: PermanentDeliveryError,
        attempts: int,
        now: datetime,
    ) -> None:
        with self.sessions.begin() as db:
            done = queue.finish(
                db,
                job.id,
                token,
                status=MessageStatus.FAILED,
                reason="the mail server refused it permanently",
                last_error=str(exc)[:300],
                attempts=attempts,
                updated_at=now,
            )
            if done and exc.recipient_rejected and job.recipient is not None:
                self._suppress(db, job, now)
        self._count(report, "failed" if done else "lost", job)

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

    def _finish(
        self, job: Job, token: str, report: TickReport, outcome: str, **values: object
    ) -> None:
        with self.sessions.begin() as db:
            done = queue.finish(db, job.id, token, **values)
        self._count(report, outcome if done else "lost", job)

    @staticmethod
    def _count(report: TickReport, outcome: str, job: Job) -> None:
        if outcome == "lost":
            log.warning("claim_lost message_id=%s", job.message_id)
        setattr(report, outcome, getattr(report, outcome) + 1)
        report.outcomes.append((job.message_id, outcome))


def _blocked_reason(client: Client, suppressed: bool) -> str | None:
    if client.erased_at is not None or client.email is None:
        return "the client was erased"
    if client.unsubscribed_at is not None:
        return "the client unsubscribed"
    if suppressed:
        return "the address is on the do-not-email list"
    return None
