"""`nurture demo`: a whole course for a few sample clients on a simulated clock.

It records facts through the same functions the CLI uses and runs the real
tick at every simulated hour, so the outbox ends up holding exactly what a
clinic's clients would have received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from nurture import enrollment
from nurture.db.models import Client, Message
from nurture.errors import ConflictError
from nurture.runtime import Runtime
from nurture.timing import zone_named

DEMO_DOMAIN = "demo.example.com"


@dataclass(frozen=True)
class Fact:
    """One thing staff record, at a simulated moment."""

    day: float
    email: str
    action: str
    args: tuple[str, ...] = ()


def _at(start: datetime, days: float) -> datetime:
    return start + timedelta(days=days)


def _local(start: datetime, days: int, hour: int, minute: int, zone: str) -> str:
    day = (start + timedelta(days=days)).astimezone(zone_named(zone)).date()
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


SAMPLES = (
    ("ana", "Ana Silva", ("atrophic", "pih"), "Europe/London", 3),
    ("ben", "Ben Okafor", ("pih",), "America/New_York", 3),
    ("cara", "Cara Jones", ("hypertrophic",), "Australia/Sydney", 2),
    ("dev", "Dev Patel", ("atrophic", "hypertrophic"), "Europe/London", 3),
)


def script(start: datetime) -> list[Fact]:
    """The sample clinic's bookings, reschedules, attendance and a cancellation."""
    facts: list[Fact] = []
    for key, _name, _scars, zone, sessions in SAMPLES:
        email = f"{key}@{DEMO_DOMAIN}"
        facts.append(Fact(0, email, "enroll"))
        first, book_first = (16, 9) if key == "ben" else (10, 3)  # Ben books after a nudge
        for n in range(1, sessions + 1):
            day = first + (n - 1) * 45
            if key == "dev" and n == 2:
                # Dev books, cancels, then rebooks his second session two days later.
                facts.append(
                    Fact(day - 30, email, "book", (str(n), _local(start, day, 11, 0, zone)))
                )
                facts.append(Fact(day - 15, email, "cancel", (str(n),)))
                day += 2
                facts.append(
                    Fact(day - 14, email, "book", (str(n), _local(start, day, 12, 30, zone)))
                )
            else:
                booked = book_first if n == 1 else day - 30
                facts.append(
                    Fact(booked, email, "book", (str(n), _local(start, day, 10 + n, 30, zone)))
                )
            if key == "ana" and n == 1:
                day += 2  # Ana moves her first session two days later
                facts.append(Fact(5, email, "book", ("1", _local(start, day, 14, 0, zone))))
            facts.append(Fact(day + 0.7, email, "complete", (str(n),)))
    facts.append(Fact(62, f"ben@{DEMO_DOMAIN}", "unsubscribe"))
    return sorted(facts, key=lambda f: f.day)


def run_demo(runtime: Runtime, echo: Callable[[str], None], days: int = 150) -> int:
    """Simulate ``days`` days from now; return how many emails went out."""
    start = runtime.now().replace(minute=0, second=0, microsecond=0)
    with runtime.transaction() as db:
        if db.scalar(select(Client.id).where(Client.email.like(f"%@{DEMO_DOMAIN}"))):
            raise ConflictError(
                "the demo has already run on this database; run it in an empty folder "
                "or point --database-url at a new file"
            )
    pending = script(start)
    dispatcher = runtime.dispatcher()
    sent = 0
    for hour in range(days * 24 + 1):
        now = start + timedelta(hours=hour)
        runtime.now_override = now
        while pending and _at(start, pending[0].day) <= now:
            _apply(runtime, pending.pop(0), echo)
        report = dispatcher.tick()
        if report.sent:
            sent += report.sent
            _print_sent(runtime, report.outcomes, echo)
    runtime.now_override = None
    return sent


def _apply(runtime: Runtime, fact: Fact, echo: Callable[[str], None]) -> None:
    ctx = runtime.context()
    stamp = f"{ctx.now:%Y-%m-%d %H:%M} UTC"
    with runtime.transaction() as db:
        if fact.action == "enroll":
            _key, name, scars, zone, sessions = next(
                s for s in SAMPLES if fact.email.startswith(s[0] + "@")
            )
            request = enrollment.check_enrolment(
                email=fact.email,
                name=name,
                scars=scars,
                timezone=zone,
                sessions=sessions,
                confirm_hypertrophic=True,
                default_timezone=runtime.settings.timezone,
            )
            enrollment.enroll(db, ctx, request)
        else:
            client = enrollment.find_client(db, fact.email)
            action = getattr(enrollment, fact.action)
            action(db, ctx, client, *fact.args)
    echo(f"{stamp}  staff: {fact.action} {fact.email} {' '.join(fact.args)}".rstrip())


def _print_sent(
    runtime: Runtime, outcomes: list[tuple[str, str]], echo: Callable[[str], None]
) -> None:
    ids = [mid for mid, outcome in outcomes if outcome == "sent"]
    with runtime.transaction() as db:
        rows = db.execute(
            select(
                Message.sent_at, Client.email, Client.timezone, Message.step, Message.session_number
            )
            .join(Client, Client.id == Message.client_id)
            .where(Message.message_id.in_(ids))
            .order_by(Message.sent_at, Message.id)
        ).all()
    for sent_at, email, zone, step, session in rows:
        assert sent_at is not None
        local = sent_at.astimezone(zone_named(zone)).strftime("%H:%M %Z")
        about = f" (session {session})" if session else ""
        echo(f"{sent_at:%Y-%m-%d %H:%M} UTC  sent:  {step}{about} to {email} at {local} local")
