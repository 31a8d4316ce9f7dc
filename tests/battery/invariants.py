"""The promises every scenario ends by checking: the database against the SMTP server.

1. Every email recorded as sent arrived; an email arrived more than once only
   if it is flagged ``possible_duplicate`` (and every copy has its Message-ID).
2. Every arrival maps to an email that is recorded as sent, or flagged.
3. Nothing is lost: every email due by ``settled_by`` is sent, skipped,
   cancelled or failed, and every one not sent says why.
4. No claim is left dangling once every worker has stopped.
5. Nothing arrived for an address in ``blocked`` (unsubscribed or erased
   before the workers started), nor after a client was unsubscribed or erased.
6. Every arrival has exactly one envelope recipient, one To address (the
   same), and was sent inside the send window in the client's own zone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from nurture.db.models import Client, Message
from nurture.domain import MessageStatus
from nurture.rendering import envelope_address
from tests.battery.sink import Arrival, FaultSink


@dataclass(frozen=True)
class Row:
    """What the database says about one email and its client."""

    message_id: str
    key: str
    status: MessageStatus
    reason: str | None
    possible_duplicate: bool
    claim_token: str | None
    due_at: datetime
    sent_at: datetime | None
    email: str | None
    timezone: str
    blocked_at: datetime | None


@dataclass
class Summary:
    """What the check saw, for the test's own assertions and the closing report."""

    rows: dict[str, Row]
    arrivals: Counter[str]
    flagged: int = 0
    duplicated: int = 0
    violations: list[str] = field(default_factory=list)

    def status_count(self, status: MessageStatus) -> int:
        """How many emails have ``status``."""
        return sum(1 for r in self.rows.values() if r.status is status)

    def arrived(self, email: str) -> list[str]:
        """Keys (step, or step/session) of the emails that arrived for ``email``."""
        return sorted(r.key for m, r in self.rows.items() if r.email == email and self.arrivals[m])

    @property
    def sent(self) -> int:
        """Emails recorded as sent."""
        return self.status_count(MessageStatus.SENT)


def load_rows(url: str) -> dict[str, Row]:
    """Every email with its client, keyed by Message-ID."""
    engine = create_engine(url)
    try:
        with Session(engine) as db:
            result = db.execute(
                select(Message, Client).join(Client, Client.id == Message.client_id)
            ).all()
            rows = {}
            for m, c in result:
                blocked = [t for t in (c.unsubscribed_at, c.erased_at) if t is not None]
                rows[m.message_id] = Row(
                    m.message_id,
                    m.key,
                    m.status,
                    m.reason,
                    m.possible_duplicate,
                    m.claim_token,
                    m.due_at,
                    m.sent_at,
                    c.email,
                    c.timezone,
                    min(blocked) if blocked else None,
                )
            return rows
    finally:
        engine.dispose()


def check(
    url: str,
    sink: FaultSink,
    *,
    settled_by: datetime | None = None,
    blocked: Iterable[str] = (),
    window: tuple[time, time] = (time(9), time(18)),
    allow_dangling: bool = False,
) -> Summary:
    """Check every invariant; raise AssertionError listing every violation."""
    rows = load_rows(url)
    with sink.lock:
        arrivals = list(sink.arrivals)
    summary = Summary(rows, Counter(a.message_id for a in arrivals))
    v = summary.violations
    blocked_set = {b.lower() for b in blocked}
    for arrival in arrivals:
        _check_arrival(arrival, rows.get(arrival.message_id), blocked_set, window, v)
    for mid, row in rows.items():
        n = summary.arrivals[mid]
        summary.flagged += row.possible_duplicate
        summary.duplicated += n > 1
        if row.status is MessageStatus.SENT and n == 0:
            v.append(f"{mid}: recorded as sent but never arrived")
        if n > 1 and not row.possible_duplicate:
            v.append(f"{mid}: arrived {n} times but is not flagged possible_duplicate")
        if n and row.status is not MessageStatus.SENT and not row.possible_duplicate:
            v.append(f"{mid}: arrived but is recorded as {row.status.value}, unflagged")
        if row.status in _NEEDS_REASON and not row.reason:
            v.append(f"{mid}: {row.status.value} without a reason")
        if settled_by and row.status is MessageStatus.PENDING and row.due_at <= settled_by:
            v.append(f"{mid}: still pending, due {row.due_at:%Y-%m-%d %H:%M}: lost")
        if row.claim_token is not None and not allow_dangling:
            v.append(f"{mid}: claim left dangling ({row.status.value})")
    assert not v, f"{len(v)} invariant violation(s):\n" + "\n".join(v[:40])
    return summary


_NEEDS_REASON = (MessageStatus.SKIPPED, MessageStatus.CANCELLED, MessageStatus.FAILED)


def _check_arrival(
    arrival: Arrival,
    row: Row | None,
    blocked: set[str],
    window: tuple[time, time],
    v: list[str],
) -> None:
    mid = arrival.message_id
    if row is None:
        v.append(f"{mid}: arrived but no such email in the database")
        return
    msg = arrival.message
    to = msg["To"].addresses if msg["To"] is not None else ()
    if len(arrival.rcpt_tos) != 1 or len(to) != 1:
        v.append(f"{mid}: {len(arrival.rcpt_tos)} envelope recipients, {len(to)} To addresses")
    elif envelope_address(to[0].addr_spec).lower() != arrival.rcpt_tos[0].lower():
        v.append(f"{mid}: To {to[0].addr_spec!r} is not the envelope {arrival.rcpt_tos[0]!r}")
    rcpt = arrival.rcpt_tos[0].lower() if arrival.rcpt_tos else ""
    if rcpt in blocked:
        v.append(f"{mid}: arrived for {rcpt}, blocked before the workers started")
    sent = msg["Date"].datetime
    if row.blocked_at is not None and sent > row.blocked_at:
        v.append(f"{mid}: sent at {sent} after the client was unsubscribed or erased")
    local = sent.astimezone(ZoneInfo(row.timezone)).time()
    if not window[0] <= local < window[1]:
        v.append(f"{mid}: sent at {local} local time in {row.timezone}, outside the window")
