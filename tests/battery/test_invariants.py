"""The checker itself: it passes a clean delivery and names each kind of violation.

Every scenario trusts ``invariants.check``; these tests plant one violation
each (an unflagged second copy, a dangling claim, a lost email, an email to
a blocked address) into a clean run and expect the checker to say so.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, update

from nurture.db.models import Message
from nurture.domain import MessageStatus
from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.conftest import Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
def delivered(sqlite_url: str, make_cli: Callable[[str], Cli], sink: FaultSink) -> str:
    """Two clients whose welcomes were delivered cleanly; the database URL."""
    cli = make_cli(sqlite_url)
    for name in ("ana", "bo"):
        cli.ok(
            "enroll", f"{name}@example.com", "--name", name, "--scar", "pih", now=NOW.isoformat()
        )
    cli.ok("tick", now=NOW.isoformat(), env={"NURTURE_TRANSPORT": sink.url})
    return sqlite_url


def _write(url: str, **values: object) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Message).where(Message.step == "welcome").values(**values))
    finally:
        engine.dispose()


def test_a_clean_delivery_passes(delivered: str, sink: FaultSink) -> None:
    """Two welcomes, each arrived once: no violation."""
    summary = check(delivered, sink, settled_by=NOW)
    assert (summary.sent, len(summary.arrivals)) == (2, 2)


def test_an_unflagged_second_copy_is_caught(delivered: str, sink: FaultSink) -> None:
    """An email that arrives twice without the flag is a violation."""
    again = sink.arrivals[0]
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as client:
        client.sendmail(again.mail_from, again.rcpt_tos, again.data)
    with pytest.raises(AssertionError, match="arrived 2 times but is not flagged"):
        check(delivered, sink, settled_by=NOW)


def test_a_dangling_claim_is_caught(delivered: str, sink: FaultSink) -> None:
    """A claim left on a row once the workers stopped is a violation."""
    _write(delivered, claim_token="0" * 32, lease_until=NOW)
    with pytest.raises(AssertionError, match="claim left dangling"):
        check(delivered, sink, settled_by=NOW)


def test_an_email_left_pending_after_it_fell_due_is_caught(delivered: str, sink: FaultSink) -> None:
    """An email still pending after it fell due counts as lost."""
    _write(delivered, status=MessageStatus.PENDING, due_at=NOW - timedelta(hours=1))
    with pytest.raises(AssertionError, match=r"still pending, due .*: lost"):
        check(delivered, sink, settled_by=NOW)


def test_an_email_recorded_as_sent_that_never_arrived_is_caught(
    delivered: str, sink: FaultSink
) -> None:
    """An email the database calls sent, but the server never received, is a violation."""
    sink.arrivals.pop()
    with pytest.raises(AssertionError, match="recorded as sent but never arrived"):
        check(delivered, sink, settled_by=NOW)


def test_an_email_to_a_blocked_address_is_caught(delivered: str, sink: FaultSink) -> None:
    """An arrival for an address unsubscribed before the workers started is a violation."""
    with pytest.raises(AssertionError, match="blocked before the workers started"):
        check(delivered, sink, settled_by=NOW, blocked=["bo@example.com"])
