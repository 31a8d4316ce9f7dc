"""A course simulated with NURTURE_NOW through the CLI, delivered to a real SMTP server."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from nurture.rendering import Composer, Draft, Request
from tests.conftest import Cli, templates_failing_for
from tests.smtp_sink import SMTPSink
from tests.web_support import make_runtime

ANA = "ana@example.com"
ENROL_AT = "2026-11-30T10:00:00+00:00"  # a Monday, 10:00 in London


def enrol(cli: Cli, email: str = ANA, *extra: str, now: str = ENROL_AT) -> None:
    """Enrol a client with atrophic and PIH scars in London."""
    cli.ok(
        "enroll",
        email,
        "--name",
        "Ana Silva",
        "--scar",
        "atrophic",
        "--scar",
        "pih",
        "--timezone",
        "Europe/London",
        *extra,
        now=now,
    )


def tick(cli: Cli, smtp: SMTPSink, now: str) -> str:
    """Run `nurture tick` at ``now`` against the SMTP server."""
    return cli.ok("tick", now=now, env={"NURTURE_TRANSPORT": smtp.url}).out


def timeline(cli: Cli, email: str = ANA) -> list[dict[str, Any]]:
    """The client's timeline as JSON."""
    result: list[dict[str, Any]] = json.loads(cli.ok("timeline", email, "--json").out)
    return result


def steps_received(cli: Cli, smtp: SMTPSink, email: str = ANA) -> list[str]:
    """The steps of the emails the server received for ``email``, in arrival order."""
    by_id = {
        e["message_id"]: f"{e['step']}" + (f"/{e['session']}" if e["session"] else "")
        for e in timeline(cli, email)
    }
    return [by_id[r.message_id] for r in smtp.to(email)]


def status_of(cli: Cli, key: str, email: str = ANA) -> dict[str, Any]:
    """The timeline entry of one step (``step`` or ``step/session``)."""
    for e in timeline(cli, email):
        if f"{e['step']}" + (f"/{e['session']}" if e["session"] else "") == key:
            return e
    raise AssertionError(f"{key} not in timeline")


def test_welcome_goes_at_enrolment_with_every_header(cli: Cli, smtp: SMTPSink) -> None:
    """The welcome arrives once, multipart, with Date, Message-ID, From and unsubscribe headers."""
    enrol(cli)
    tick(cli, smtp, ENROL_AT)
    assert steps_received(cli, smtp) == ["welcome"]
    received = smtp.received[0]
    msg = received.message
    assert msg.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in msg.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert msg["From"].addresses[0].addr_spec == "hello@clinic.example.com"
    assert msg["To"].addresses[0].addr_spec == ANA
    assert received.rcpt_tos == [ANA]
    assert msg["Date"].datetime.isoformat() == ENROL_AT
    entry = status_of(cli, "welcome")
    assert (entry["status"], entry["sent_at"]) == ("sent", ENROL_AT)
    assert msg["Message-ID"] == entry["message_id"]
    unsubscribe = str(msg["List-Unsubscribe"])
    assert re.fullmatch(
        r"<https://clinic\.example\.com/nurture/unsubscribe/[A-Za-z0-9_.-]+>", unsubscribe
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert unsubscribe[1:-1] in text
    assert "1 Example Street" in html
    assert "1 Example Street" in text


def test_no_health_data_or_address_in_headers_and_links(cli: Cli, smtp: SMTPSink) -> None:
    """Scar types and the address stay out of subjects, Message-IDs and unsubscribe URLs."""
    cli.ok(
        "enroll",
        "hyp@example.com",
        "--name",
        "Hy Pertrophic",
        "--scar",
        "hypertrophic",
        "--scar",
        "atrophic",
        "--scar",
        "pih",
        now=ENROL_AT,
    )
    cli.ok("book", "hyp@example.com", "1", "2026-12-01T10:00", now=ENROL_AT)
    tick(cli, smtp, "2026-11-30T11:00:00+00:00")
    assert len(smtp.received) >= 2
    for r in smtp.received:
        msg = r.message
        exposed = " ".join(str(msg[h]) for h in ("Subject", "Message-ID", "List-Unsubscribe"))
        for word in ("atrophic", "hypertrophic", "pih", "hyperpigmentation", "scar", "hyp@"):
            assert word not in exposed.lower()


def test_prep_before_each_session_and_none_after(cli: Cli, smtp: SMTPSink) -> None:
    """Prepare and day-before arrive before the session; nothing about it arrives after it."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-10T10:30", now=ENROL_AT)
    tick(cli, smtp, ENROL_AT)
    assert steps_received(cli, smtp) == ["welcome", "booking_confirmed/1"]
    tick(cli, smtp, "2026-12-06T10:29:00+00:00")
    assert "prepare/1" not in steps_received(cli, smtp)
    tick(cli, smtp, "2026-12-06T10:31:00+00:00")
    assert steps_received(cli, smtp)[-1] == "prepare/1"
    tick(cli, smtp, "2026-12-09T10:31:00+00:00")
    assert steps_received(cli, smtp)[-1] == "day_before/1"
    count = len(smtp.received)
    tick(cli, smtp, "2026-12-10T12:00:00+00:00")
    tick(cli, smtp, "2026-12-11T12:00:00+00:00")
    assert len(smtp.received) == count


def test_late_booking_skips_prep_but_keeps_day_before(cli: Cli, smtp: SMTPSink) -> None:
    """A session booked under a day ahead skips the few-days-before email, with the reason."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-01T09:30", now=ENROL_AT)
    prepare = status_of(cli, "prepare/1")
    assert prepare["status"] == "skipped"
    assert "too late" in prepare["reason"]
    tick(cli, smtp, ENROL_AT)
    assert "day_before/1" in steps_received(cli, smtp)
    assert "prepare/1" not in steps_received(cli, smtp)


def test_reminders_move_with_a_reschedule(cli: Cli, smtp: SMTPSink) -> None:
    """Moving a session moves its pending reminders; the old times send nothing."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-10T10:30", now=ENROL_AT)
    tick(cli, smtp, ENROL_AT)
    cli.ok("book", ANA, "1", "2026-12-17T14:00", now="2026-12-01T09:30:00+00:00")
    entry = status_of(cli, "prepare/1")
    assert (entry["status"], entry["due_at"]) == ("pending", "2026-12-13T14:00:00+00:00")
    tick(cli, smtp, "2026-12-01T10:00:00+00:00")
    assert steps_received(cli, smtp)[-1] == "session_moved/1"
    tick(cli, smtp, "2026-12-06T11:00:00+00:00")
    tick(cli, smtp, "2026-12-09T11:00:00+00:00")
    session_one = [s for s in steps_received(cli, smtp) if s.endswith("/1")]
    assert session_one == ["booking_confirmed/1", "session_moved/1"]
    tick(cli, smtp, "2026-12-13T14:00:00+00:00")
    tick(cli, smtp, "2026-12-16T14:00:00+00:00")
    assert steps_received(cli, smtp)[-2:] == ["prepare/1", "day_before/1"]


def test_cancellation_cancels_pending_reminders_with_reason(cli: Cli, smtp: SMTPSink) -> None:
    """A cancelled session's reminders are cancelled, saying why, and never sent."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-10T10:30", now=ENROL_AT)
    tick(cli, smtp, ENROL_AT)
    cli.ok("cancel", ANA, "1", now="2026-12-02T12:00:00+00:00")
    entry = status_of(cli, "prepare/1")
    assert (entry["status"], entry["reason"]) == ("cancelled", "session 1 was cancelled")
    tick(cli, smtp, "2026-12-02T12:00:00+00:00")
    assert steps_received(cli, smtp)[-1] == "session_cancelled/1"
    tick(cli, smtp, "2026-12-06T11:00:00+00:00")
    tick(cli, smtp, "2026-12-09T11:00:00+00:00")
    assert "prepare/1" not in steps_received(cli, smtp)
    assert "day_before/1" not in steps_received(cli, smtp)


def test_nothing_after_unsubscribe(cli: Cli, smtp: SMTPSink) -> None:
    """After an unsubscribe every pending email is cancelled and nothing more arrives."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-10T10:30", now=ENROL_AT)
    tick(cli, smtp, ENROL_AT)
    cli.ok("unsubscribe", ANA, now="2026-12-01T09:00:00+00:00")
    statuses = {f"{e['step']}/{e['session']}": e for e in timeline(cli)}
    assert [k for k, e in statuses.items() if e["status"] == "pending"] == []
    for key in ("what_to_expect/None", "prepare/1", "day_before/1"):
        assert (statuses[key]["status"], statuses[key]["reason"]) == (
            "cancelled",
            "the client unsubscribed",
        )
    before = len(smtp.received)
    for day in ("2026-12-02", "2026-12-06", "2026-12-09", "2026-12-12"):
        tick(cli, smtp, f"{day}T12:00:00+00:00")
    assert len(smtp.received) == before


def test_ticking_twice_sends_nothing_twice(cli: Cli, smtp: SMTPSink) -> None:
    """A second tick at the same moment finds nothing left to send."""
    for n in range(5):
        enrol(cli, f"c{n}@example.com")
    tick(cli, smtp, ENROL_AT)
    tick(cli, smtp, ENROL_AT)
    tick(cli, smtp, "2026-11-30T10:05:00+00:00")
    ids = smtp.ids()
    assert len(ids) == 5
    assert len(set(ids)) == 5


def test_a_template_failing_for_one_client_fails_only_that_email(
    cli: Cli, smtp: SMTPSink, tmp_path: Path
) -> None:
    """A clinic's template that breaks for one client: that email fails, the batch goes on."""
    folder = templates_failing_for("Broken", tmp_path)
    env = {"NURTURE_TEMPLATES": str(folder), "NURTURE_TRANSPORT": smtp.url}
    people = [
        ("Ana Silva", ANA),
        ("Broken Record", "broken@example.com"),
        ("Cleo Diaz", "cleo@example.com"),
    ]
    for name, address in people:
        cli.ok(
            "enroll",
            address,
            "--name",
            name,
            "--scar",
            "pih",
            "--timezone",
            "Europe/London",
            now=ENROL_AT,
        )
    result = cli.ok("tick", now=ENROL_AT, env=env)
    assert "Traceback" not in result.err + result.out
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [ANA, "cleo@example.com"]
    entry = status_of(cli, "welcome", "broken@example.com")
    assert (entry["status"], entry["reason"]) == (
        "failed",
        "template error: partials/signoff.html:1: ZeroDivisionError",
    )
    cli.ok("tick", now="2026-11-30T10:05:00+00:00", env=env)
    assert len(smtp.received) == 2  # a failed email is not tried again


class TurningClock:
    """The worker's clock, moved from one instant to another once its batch is drafted."""

    def __init__(self, composer: Composer, before: str, after: str) -> None:
        self.composer = composer
        self.now = datetime.fromisoformat(before)
        self.after = datetime.fromisoformat(after)
        self.drafted: list[str] = []

    def __call__(self) -> datetime:
        return self.now

    def draft_many(self, requests: list[Request]) -> list[Any]:
        """The real composer's drafts; then time moves on."""
        drafts = self.composer.draft_many(requests)
        self.drafted += [d.request.message_id for d in drafts if isinstance(d, Draft)]
        self.now = self.after
        return drafts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.composer, name)


@pytest.mark.parametrize(
    ("before", "after", "drafted", "sent"),
    [
        ("2026-11-30T17:59:59+00:00", "2026-11-30T18:00:01+00:00", 2, 0),  # the window closes
        # the system clock stepped back into the window: drafted nothing, sends from scratch
        ("2026-11-30T18:00:01+00:00", "2026-11-30T17:59:59+00:00", 0, 2),
    ],
)
def test_what_goes_out_is_decided_when_it_goes_not_when_it_was_drafted(
    cli: Cli, smtp: SMTPSink, before: str, after: str, drafted: int, sent: int
) -> None:
    """Emails are drafted as a batch; each is still decided (window, staleness) at hand-over."""
    for address in (ANA, "cleo@example.com"):
        enrol(cli, address, now="2026-11-30T17:59:59+00:00")
    runtime = make_runtime(cli.url, NURTURE_TRANSPORT=smtp.url)
    worker = runtime.dispatcher()
    clock = TurningClock(worker.composer, before, after)
    report = dataclasses.replace(worker, composer=clock, clock=clock).tick()
    runtime.close()
    assert (len(clock.drafted), report.sent, len(smtp.received)) == (drafted, sent, sent)
    assert report.deferred == 2 - sent
    for address in (ANA, "cleo@example.com"):
        entry = status_of(cli, "welcome", address)
        assert entry["status"] == ("sent" if sent else "pending")
        if sent:
            assert entry["sent_at"] == after  # dated when it went, not when it was drafted
        else:
            assert entry["due_at"] == "2026-12-01T09:00:00+00:00"  # the window's next opening


def test_stale_emails_are_skipped_after_an_outage(cli: Cli, smtp: SMTPSink) -> None:
    """After four days without a tick the welcome is skipped as stale; what is still useful goes."""
    enrol(cli, now="2026-11-30T19:00:00+00:00")  # after hours: welcome waits for the morning
    tick(cli, smtp, "2026-12-04T10:00:00+00:00")
    welcome = status_of(cli, "welcome")
    assert welcome["status"] == "skipped"
    assert welcome["reason"].startswith("stale")
    assert steps_received(cli, smtp) == ["what_to_expect"]


def test_outside_the_window_waits_for_the_morning(cli: Cli, smtp: SMTPSink) -> None:
    """A due email found at 22:00 local waits until 09:00 local the next day."""
    cli.ok(
        "enroll",
        "ny@example.com",
        "--name",
        "Nia York",
        "--scar",
        "pih",
        "--timezone",
        "America/New_York",
        now="2026-12-01T14:00:00+00:00",
    )  # 09:00 in New York
    cli.ok("book", "ny@example.com", "1", "2026-12-20T10:00", now="2026-12-01T14:00:00+00:00")
    # No tick until 22:00 New York time: both emails wait for the window.
    tick(cli, smtp, "2026-12-02T03:00:00+00:00")
    assert smtp.received == []
    assert status_of(cli, "welcome", "ny@example.com")["due_at"] == "2026-12-02T14:00:00+00:00"
    tick(cli, smtp, "2026-12-02T13:59:00+00:00")
    assert smtp.received == []
    tick(cli, smtp, "2026-12-02T14:00:00+00:00")
    assert sorted(steps_received(cli, smtp, "ny@example.com")) == ["booking_confirmed/1", "welcome"]


def test_temporary_failures_retry_with_backoff_then_deliver_once(cli: Cli, smtp: SMTPSink) -> None:
    """451 replies are retried later with growing delays and the email arrives exactly once."""
    enrol(cli)
    smtp.behaviour.temporary_failures = 2
    tick(cli, smtp, ENROL_AT)
    first = status_of(cli, "welcome")
    assert (first["status"], first["attempts"]) == ("pending", 1)
    assert first["due_at"] == "2026-11-30T10:05:00+00:00"
    tick(cli, smtp, "2026-11-30T10:05:00+00:00")
    second = status_of(cli, "welcome")
    assert (second["status"], second["attempts"]) == ("pending", 2)
    assert second["due_at"] == "2026-11-30T10:15:00+00:00"
    tick(cli, smtp, "2026-11-30T10:15:00+00:00")
    assert steps_received(cli, smtp) == ["welcome"]
    assert status_of(cli, "welcome")["attempts"] == 3
    assert smtp.refused == 2


def test_dropped_connection_is_retried(cli: Cli, smtp: SMTPSink) -> None:
    """A connection dropped mid-message is a temporary failure, retried later."""
    enrol(cli)
    smtp.behaviour.drop_connections = 1
    tick(cli, smtp, ENROL_AT)
    assert status_of(cli, "welcome")["status"] == "pending"
    tick(cli, smtp, "2026-11-30T10:05:00+00:00")
    assert steps_received(cli, smtp) == ["welcome"]


def test_permanent_rejection_fails_and_suppresses_only_that_address(
    cli: Cli, smtp: SMTPSink
) -> None:
    """A 550 for one address fails its email, suppresses it, and the others are delivered."""
    for name in ("good1", "bad", "good2"):
        enrol(cli, f"{name}@example.com")
    smtp.behaviour.reject["bad@example.com"] = "550 5.1.1 No such user"
    out = tick(cli, smtp, ENROL_AT)
    assert "sent 2" in out
    assert "failed 1" in out
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "good1@example.com",
        "good2@example.com",
    ]
    bad = {e["step"]: e for e in timeline(cli, "bad@example.com")}
    assert bad["welcome"]["status"] == "failed"
    assert bad["what_to_expect"]["status"] == "cancelled"
    assert bad["what_to_expect"]["reason"] == "the address is on the do-not-email list"
    tick(cli, smtp, "2026-12-02T10:00:00+00:00")
    assert "bad@example.com" not in {r.rcpt_tos[0] for r in smtp.received}


def test_temporary_failures_until_stale_become_failed(cli: Cli, smtp: SMTPSink) -> None:
    """When retries would outlive the email's usefulness it is recorded as failed, with why."""
    enrol(cli)
    smtp.behaviour.temporary_failures = 1000
    for hour in range(0, 80, 4):
        tick(cli, smtp, f"2026-12-{1 + (10 + hour) // 24:02d}T{(10 + hour) % 24:02d}:00:00+00:00")
    welcome = status_of(cli, "welcome")
    assert welcome["status"] == "failed"
    assert "stale" in welcome["reason"]


@pytest.mark.parametrize("step", ["welcome", "prepare", "aftercare", "course_complete"])
def test_preview_renders_for_an_enrolled_client(cli: Cli, step: str) -> None:
    """`nurture preview STEP --email` renders the step with the client's own details."""
    enrol(cli)
    cli.ok("book", ANA, "1", "2026-12-10T10:30", now=ENROL_AT)
    result = cli.ok(
        "preview", step, "--email", ANA, "--session", "1", now="2026-12-02T10:00:00+00:00"
    )
    assert "Subject: " in result.out
    assert "Ana" in result.out
