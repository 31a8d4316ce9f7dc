"""Real worker processes: concurrent ticks, the scheduler loop, and the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nurture.db import queue
from nurture.db.models import Client, Course, Message
from nurture.domain import MessageStatus
from tests.conftest import TEST_SECRET, Cli
from tests.smtp_sink import SMTPSink

NOW = "2026-11-30T10:00:00+00:00"


def _env(cli: Cli, smtp: SMTPSink, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        NURTURE_DATABASE_URL=cli.url,
        NURTURE_TRANSPORT=smtp.url,
        NURTURE_SECRET_KEY=TEST_SECRET,
        NURTURE_NOW=NOW,
        **extra,
    )
    return env


def _enrol_many(cli: Cli, count: int) -> None:
    rows = "".join(f"c{n}@example.com,Client {n},atrophic,Europe/London,5\n" for n in range(count))
    path = cli.workdir / "many.csv"
    path.write_text("email,name,scar,timezone,sessions\n" + rows, encoding="utf-8")
    cli.ok("import", str(path), now=NOW)


def _statuses(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with Session(engine) as db:
        rows = db.execute(
            select(Message.status, func.count())
            .where(Message.step == "welcome")
            .group_by(Message.status)
        ).all()
        dangling = queue.dangling_claims(db)
    engine.dispose()
    return {status.value: count for status, count in rows} | {"dangling": dangling}


def test_concurrent_ticks_send_every_email_exactly_once(cli: Cli, smtp: SMTPSink) -> None:
    """Three `nurture tick` processes at once share the work; no email arrives twice."""
    _enrol_many(cli, 60)
    env = _env(cli, smtp, NURTURE_BATCH_SIZE="4")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nurture", "tick"],
            env=env,
            cwd=cli.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    ids = smtp.ids()
    assert len(ids) == 60
    assert len(set(ids)) == 60
    assert _statuses(cli.url) == {"sent": 60, "dangling": 0}
    sent_counts = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
    assert sum(sent_counts) == 60


def test_run_delivers_and_stops_cleanly_on_sigterm(cli: Cli, smtp: SMTPSink) -> None:
    """`nurture run` ticks on its own, and SIGTERM ends it with exit code 0."""
    _enrol_many(cli, 3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "--log-level", "info", "run", "--interval", "1"],
        env=_env(cli, smtp),
        cwd=cli.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(smtp.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(smtp.received) == 3
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "worker_started" in err
    assert "worker_stopped" in err
    assert "Traceback" not in err
    assert _statuses(cli.url) == {"sent": 3, "dangling": 0}


def test_demo_runs_a_whole_course_through_the_real_pipeline(cli: Cli, tmp_path: Path) -> None:
    """`nurture demo` leaves one .eml per sent email and respects the course rules."""
    outbox = tmp_path / "outbox"
    result = cli.ok("demo", now=NOW, env={"NURTURE_TRANSPORT": f"outbox:{outbox}"})
    sent = int(result.lines[-1].split("demo done: ")[1].split()[0])
    assert sent > 40
    assert len(list(outbox.glob("*.eml"))) == sent
    engine = create_engine(cli.url)
    with Session(engine) as db:
        rows = db.execute(
            select(
                Client.email, Message.step, Message.status, Message.sent_at, Client.unsubscribed_at
            ).join(Client, Client.id == Message.client_id)
        ).all()
    engine.dispose()
    cara = {
        step
        for email, step, status, _, _ in rows
        if email.startswith("cara@") and status is MessageStatus.SENT
    }
    assert "welcome" in cara
    assert not {"book_first", "book_next", "book_next_last_call"} & cara
    for email, _, status, sent_at, unsubscribed_at in rows:
        if status is MessageStatus.SENT and unsubscribed_at is not None:
            assert sent_at is not None
            assert sent_at < unsubscribed_at, email
    again = cli("demo", now=NOW, env={"NURTURE_TRANSPORT": f"outbox:{outbox}"})
    assert again.code == 1
    assert "already run" in again.err


def test_an_email_in_flight_waits_a_second_lease_before_takeover(cli: Cli) -> None:
    """Expired claims are taken over at once, except one handed over: it waits one more lease."""
    _enrol_many(cli, 2)
    engine = create_engine(cli.url)
    lease = timedelta(seconds=5)
    now = datetime.fromisoformat(NOW)
    try:
        with engine.begin() as conn:
            ids = queue.claim(conn, due_by=now, token="a" * 32, lease=lease, limit=10)
            welcome = set(conn.scalars(select(Message.id).where(Message.step == "welcome")))
            in_flight, idle = sorted(welcome & set(ids))
            conn.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(lease_until=queue.database_now(conn) - lease / 2)
            )
            conn.execute(
                update(Message).where(Message.id == in_flight).values(possible_duplicate=True)
            )
        with engine.begin() as conn:
            taken = queue.claim(conn, due_by=now, token="b" * 32, lease=lease, limit=10)
        assert idle in taken
        assert in_flight not in taken  # its worker may still be recording the answer
        with engine.begin() as conn:
            conn.execute(
                update(Message)
                .where(Message.id == in_flight)
                .values(lease_until=queue.database_now(conn) - lease * 1.5)
            )
            assert queue.claim(conn, due_by=now, token="c" * 32, lease=lease, limit=10) == [
                in_flight
            ]
    finally:
        engine.dispose()


def test_the_in_flight_flag_renews_the_lease_from_the_databases_clock(cli: Cli) -> None:
    """begin_send sets the lease's end to the database's now + lease, in UTC, whatever the zone.

    On PostgreSQL the end is computed in the statement (clock_timestamp());
    the session runs in a zone fourteen hours from UTC to catch a local time
    stored as if it were UTC.
    """
    _enrol_many(cli, 1)
    engine = create_engine(cli.url)
    lease = timedelta(minutes=7)
    token = "a" * 32
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET TIME ZONE 'Pacific/Kiritimati'"))
            (first, *_) = queue.claim(
                conn, due_by=datetime.fromisoformat(NOW), token=token, lease=lease, limit=10
            )
            m = conn.execute(
                select(Message, Course.client_id)
                .join(Course, Course.id == Message.course_id)
                .where(Message.id == first)
            ).one()
            before = queue.database_now(conn)
            hold = queue.begin_send(
                conn,
                first,
                token,
                lease,
                due_at=m.due_at,
                expires_at=m.expires_at,
                invite_revision=m.invite_revision,
                client_id=m.client_id,
                facts_seen=queue.facts_recorded(conn, [m.client_id])[m.client_id],
            )
            after = queue.database_now(conn)
            stored = conn.scalar(select(Message.lease_until).where(Message.id == first))
        assert hold is queue.Hold.KEPT
        assert stored is not None
        assert before + lease <= stored <= after + lease
    finally:
        engine.dispose()


def test_outcome_writes_are_compare_and_sets_that_store_what_they_are_given(cli: Cli) -> None:
    """begin_send/finish (on SQLite run on the driver) match only our unchanged claim.

    What they store reads back through SQLAlchemy as it was given, and a
    database error comes out as SQLAlchemy's exception, which is what the
    worker's retry-on-outage logic catches.
    """
    _enrol_many(cli, 2)
    engine = create_engine(cli.url)
    lease = timedelta(minutes=5)
    now = datetime.fromisoformat(NOW)
    token = "a" * 32
    mine = select(Message, Course.client_id).join(Course, Course.id == Message.course_id)
    try:
        with engine.begin() as conn:
            (first, second, *_) = queue.claim(conn, due_by=now, token=token, lease=lease, limit=10)
            rows = {m.id: m for m in conn.execute(mine.where(Message.id.in_([first, second])))}
            facts = queue.facts_recorded(conn, {m.client_id for m in rows.values()})

            def hold(message_id: int, **changes: object) -> queue.Hold:
                m = rows[message_id]
                seen: dict[str, Any] = {
                    "due_at": m.due_at,
                    "expires_at": m.expires_at,
                    "invite_revision": m.invite_revision,
                    "client_id": m.client_id,
                    "facts_seen": facts[m.client_id],
                }
                seen.update(changes)
                return queue.begin_send(conn, message_id, token, lease, **seen)

            assert hold(first, due_at=rows[first].due_at + timedelta(seconds=1)) is (
                queue.Hold.CHANGED
            )
            assert hold(second, facts_seen=facts[rows[second].client_id] + 1) is (
                queue.Hold.CHANGED
            )
            # both given back, so free to claim again
            again = queue.claim(conn, due_by=now, token=token, lease=lease, limit=10)
            assert {first, second} <= set(again)
        with engine.begin() as conn:
            assert hold(first) is queue.Hold.KEPT
            sent_at = now + timedelta(microseconds=123)
            assert not queue.finish(conn, first, "b" * 32, status=MessageStatus.SENT)
            assert queue.finish(
                conn,
                first,
                token,
                status=MessageStatus.SENT,
                sent_at=sent_at,
                sent_body=b"\x00\xffbytes",
                reason=None,
            )
            stored = conn.execute(select(Message).where(Message.id == first)).one()
            assert (stored.status, stored.sent_at, stored.sent_body) == (
                MessageStatus.SENT,
                sent_at,
                b"\x00\xffbytes",
            )
            assert (stored.claim_token, stored.lease_until, stored.possible_duplicate) == (
                None,
                None,
                True,
            )
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE events RENAME TO events_gone"))
            with pytest.raises(DBAPIError, match="events"):
                hold(second)
            conn.rollback()
    finally:
        engine.dispose()
