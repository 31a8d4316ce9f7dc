"""Costs that must not grow with the table: the idle tick, and enrolling courses.

``grow_history`` bulk-inserts synthetic history (clients, courses and ten
emails each: mostly sent, some skipped or cancelled, some pending weeks
ahead) so the ``messages`` table reaches a given size; nothing is due at
``NOW``.  ``idle_tick_ms`` times the real ``Dispatcher.tick`` in-process on
such a table.  ``import_rate`` and ``enrol_rate`` enrol courses through the
CLI's CSV import and through one ``enrollment.enroll`` per transaction (the
API's and ``nurture enroll``'s path).
"""

from __future__ import annotations

import random
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

from bench.deliver import BrokenRunError, run_processes
from bench.scenario import FIRST, LAST, NOW, SCARS, ZONES
from bench.workspace import Workspace
from nurture import enrollment
from nurture.db.models import Client, Course, Message
from nurture.domain import CourseStatus, MessageStatus
from nurture.runtime import Runtime

PER_CLIENT = 10
BATCH = 50_000
#: The fate of history emails, and how common each is.
FATES = {
    MessageStatus.SENT: 75,
    MessageStatus.SKIPPED: 5,
    MessageStatus.CANCELLED: 8,
    MessageStatus.PENDING: 12,
}
STEPS = (
    "welcome",
    "what_to_expect",
    "booking_confirmed",
    "prepare",
    "day_before",
    "aftercare",
    "book_next",
    "halfway",
    "course_complete",
    "booking_confirmed",
)


def message_rows(engine: Engine) -> int:
    """How many rows the ``messages`` table has."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Message.__table__)) or 0)


def grow_history(engine: Engine, rows: int, seed: int = 11) -> None:
    """Add clients with ten emails each until ``messages`` has about ``rows`` rows."""
    rng = random.Random(seed + rows)  # noqa: S311  (reproducible data, not secrets)
    with engine.connect() as conn:
        first = int(conn.scalar(select(func.max(Client.id))) or 0) + 1
    clients = max(rows - message_rows(engine), 0) // PER_CLIENT
    with engine.begin() as conn:
        for start in range(first, first + clients, BATCH // PER_CLIENT):
            ids = range(start, min(start + BATCH // PER_CLIENT, first + clients))
            conn.execute(insert(Client), [_client(i, rng) for i in ids])
            conn.execute(insert(Course), [_course(i, rng) for i in ids])
            conn.execute(insert(Message), [m for i in ids for m in _messages(i, rng)])


def _client(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": i,
        "public_id": secrets.token_urlsafe(16),
        "email": f"history{i:07d}@example.com",
        "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        "timezone": rng.choice(ZONES),
        "created_at": NOW - timedelta(days=rng.uniform(30, 400)),
    }


def _course(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": i,
        "client_id": i,
        "scar_types": ",".join(rng.choices(list(SCARS), weights=list(SCARS.values()))[0]),
        "sessions_planned": 5,
        "status": CourseStatus.ACTIVE,
        "hypertrophic_confirmed": False,
        "enrolled_at": NOW - timedelta(days=rng.uniform(30, 400)),
    }


def _messages(i: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    fates = rng.choices(list(FATES), weights=list(FATES.values()), k=PER_CLIENT)
    for n, (step, fate) in enumerate(zip(STEPS, fates, strict=True)):
        pending = fate is MessageStatus.PENDING
        due = NOW + timedelta(days=rng.uniform(1, 120) * (1 if pending else -3))
        yield {
            "course_id": i,
            "client_id": i,
            "key": f"{step}/{n}",
            "step": step,
            "session_number": None,
            "status": fate,
            "reason": None if fate in (MessageStatus.SENT, MessageStatus.PENDING) else "history",
            "due_at": due,
            "expires_at": due + timedelta(days=3),
            "invite_revision": None,
            "message_id": f"<{uuid.uuid4().hex}@clinic.example.com>",
            "attempts": 1 if fate is MessageStatus.SENT else 0,
            "claim_token": None,
            "lease_until": None,
            "possible_duplicate": False,
            "last_error": None,
            "sent_at": due if fate is MessageStatus.SENT else None,
            "sent_body": None,
            "created_at": due - timedelta(days=7),
            "updated_at": due,
        }


def idle_tick_ms(runtime: Runtime, calls: int) -> float:
    """Median milliseconds of ``calls`` in-process ticks that find nothing due."""
    dispatcher = runtime.dispatcher()
    for _ in range(5):  # warm caches and compile statements first
        dispatcher.tick()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        report = dispatcher.tick()
        times.append((time.perf_counter() - started) * 1000)
        if report.handled or report.lost or report.released:
            raise BrokenRunError(f"an idle tick found work: {report}")
    return statistics.median(times)


def cold_tick_ms(workspace: Workspace, url: str, transport: str) -> float:
    """Milliseconds of one whole ``nurture tick`` process that finds nothing due."""
    env = workspace.env(url, transport, NOW.isoformat())
    finished = run_processes([[sys.executable, "-m", "nurture", "tick"]], env, workspace.root)
    if not finished.outputs[0].startswith("sent 0,"):
        raise BrokenRunError(f"an idle tick process found work: {finished.outputs[0][:300]}")
    return finished.seconds * 1000


def enrolment_csv(path: Path, count: int, seed: int = 5) -> Path:
    """A CSV of ``count`` new clients in the format of ``nurture import``."""
    rng = random.Random(seed)  # noqa: S311  (reproducible data, not secrets)
    lines = ["email,name,scar,timezone,sessions"]
    for i in range(count):
        scars = ";".join(rng.choices(list(SCARS), weights=list(SCARS.values()))[0])
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}".replace("'", "")
        lines.append(f"new{i:06d}@example.com,{name},{scars},{rng.choice(ZONES)},5")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_seconds(workspace: Workspace, url: str, csv: Path, count: int) -> float:
    """Wall seconds of ``nurture import`` enrolling every row of ``csv``."""
    env = workspace.env(url, "memory:", NOW.isoformat())
    command = [sys.executable, "-m", "nurture", "import", str(csv), "--confirm-hypertrophic"]
    finished = run_processes([command], env, workspace.root)
    if f"imported {count} client(s)" not in finished.outputs[0]:
        raise BrokenRunError(f"nurture import did not import {count}: {finished.outputs[0][-300:]}")
    return finished.seconds


def enrol_seconds(runtime: Runtime, csv: Path) -> float:
    """Seconds to enrol every row of ``csv``, one ``enrollment.enroll`` transaction each."""
    rows = [line.split(",") for line in csv.read_text(encoding="utf-8").splitlines()[1:]]
    started = time.perf_counter()
    for email, name, scars, zone, sessions in rows:
        request = enrollment.check_enrolment(
            email=email,
            name=name,
            scars=scars.split(";"),
            timezone=zone,
            sessions=sessions,
            confirm_hypertrophic=True,
            default_timezone=runtime.settings.timezone,
        )
        with runtime.transaction() as db:
            enrollment.enroll(db, runtime.context(), request)
    return time.perf_counter() - started
