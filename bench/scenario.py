"""N clients, each with exactly one email due at ``NOW``, recorded through nurture's own code.

Every client gets a *story*: the facts staff would have recorded over the
past weeks (enrolment, bookings, attendance, a reschedule or a cancellation),
each recorded with ``nurture.enrollment`` in a ``Context`` stamped with the
time it happened, so the planner builds the rows exactly as in production.
Before each fact, the emails already due by then are marked as sent (they
went out back then); at the end everything due before the last two hours is
history too.  What remains due at ``NOW`` is one email per client, the step
the story was written for, due a few minutes to an hour before ``NOW``.

The clients live in time zones whose send window (09:00-18:00) is open at
``NOW`` and have a realistic mix of scar types, course lengths and progress.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture import enrollment
from nurture.db.models import Client, Message
from nurture.domain import MessageStatus
from nurture.runtime import Runtime

#: A Monday, 16:00 UTC: the window is open from Mexico City to Lagos.
NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
#: Emails due before NOW minus this are history (marked sent); the due ones fall inside it.
INTERVAL = timedelta(hours=2)
ZONES = (
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Berlin",
    "Africa/Lagos",
    "America/New_York",
    "America/Toronto",
    "America/Chicago",
    "America/Mexico_City",
    "America/Sao_Paulo",
)
#: Scar-type mixes and how often clinics see them.
SCARS: dict[tuple[str, ...], int] = {
    ("atrophic",): 40,
    ("atrophic", "pih"): 20,
    ("pih",): 12,
    ("atrophic", "hypertrophic"): 12,
    ("atrophic", "pih", "hypertrophic"): 8,
    ("hypertrophic",): 8,
}
#: The email due at NOW, and how often each comes up in a day of a clinic chain.
STEPS: dict[str, int] = {
    "welcome": 10,
    "what_to_expect": 8,
    "book_first": 5,
    "booking_confirmed": 15,
    "prepare": 12,
    "day_before": 15,
    "aftercare": 12,
    "halfway": 4,
    "book_next": 6,
    "book_next_last_call": 3,
    "course_complete": 4,
    "session_moved": 4,
    "session_cancelled": 2,
}
#: Steps sent only to clients with atrophic scars or dark marks.
NEEDS_ATROPHIC_OR_PIH = {"book_first", "book_next", "book_next_last_call"}
FIRST = ("Ana", "Zoë", "José", "Siobhán", "Wei", "Oluwaseun", "Marta", "Chloé", "Liam", "Priya")
LAST = ("Silva", "Okafor", "Müller", "O'Brien", "Nguyen", "García", "Kowalski", "Dubois", "Smith")
DOMAINS = ("example.com", "example.org", "mail.example.net")
DAY, WEEK, HOUR = timedelta(days=1), timedelta(weeks=1), timedelta(hours=1)
GAP = timedelta(days=60)  # from the last attended session of the history to the story's own facts


class SetupError(RuntimeError):
    """The prepared database is not what the measure needs."""


@dataclass(frozen=True)
class Fact:
    """One fact change of a story, recorded at ``at``."""

    at: datetime
    kind: Literal["enrol", "book", "complete", "cancel"]
    session: int = 0
    when: datetime | None = None


@dataclass(frozen=True)
class Story:
    """One client's course so far, written so that ``step`` is due at NOW."""

    step: str
    email: str
    name: str
    zone: str
    scars: tuple[str, ...]
    sessions: int
    facts: tuple[Fact, ...]


def stories(n: int, seed: int = 7) -> list[Story]:
    """``n`` stories with the weighted mix of steps, scar types, zones and progress."""
    rng = random.Random(seed)  # noqa: S311  (reproducible data, not secrets)
    steps = rng.choices(list(STEPS), weights=list(STEPS.values()), k=n)
    return [_story(i, step, rng) for i, step in enumerate(steps)]


def _story(index: int, step: str, rng: random.Random) -> Story:
    scars = rng.choices(list(SCARS), weights=list(SCARS.values()))[0]
    while step in NEEDS_ATROPHIC_OR_PIH and scars == ("hypertrophic",):
        scars = rng.choices(list(SCARS), weights=list(SCARS.values()))[0]
    planned, done = _progress(step, rng)
    due = NOW - timedelta(minutes=rng.uniform(5, 55))
    facts = _facts(step, due, done)
    return Story(
        step=step,
        email=f"client{index:06d}@{DOMAINS[index % len(DOMAINS)]}",
        name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        zone=rng.choice(ZONES),
        scars=scars,
        sessions=planned,
        facts=facts,
    )


def _progress(step: str, rng: random.Random) -> tuple[int, int]:
    """(sessions planned, sessions attended before the story's own facts)."""
    planned = rng.choice((3, 4, 5, 5, 5, 6))
    if step in ("welcome", "what_to_expect", "book_first"):
        return planned, 0
    if step == "halfway":
        return planned, (planned + 1) // 2 - 1
    if step == "course_complete":
        return planned, planned - 1
    done = rng.choices((0, 1, 2), weights=(5, 3, 2))[0]
    latest = planned - 2 if step in ("book_next", "book_next_last_call") else planned - 1
    return planned, min(done, latest)


def _facts(step: str, due: datetime, done: int) -> tuple[Fact, ...]:
    """The facts that make ``step`` due at ``due``, after ``done`` attended sessions."""
    n = done + 1  # the session the story is about
    own: list[Fact]
    match step:
        case "welcome" | "what_to_expect" | "book_first":
            offset = {"welcome": 0 * DAY, "what_to_expect": 2 * DAY, "book_first": 5 * DAY}
            return (Fact(due - offset[step], "enrol"),)
        case "booking_confirmed":
            own = [Fact(due, "book", n, due + 14 * DAY)]
        case "prepare":
            own = [Fact(due - 10 * DAY, "book", n, due + 4 * DAY)]
        case "day_before":
            own = [Fact(due - 10 * DAY, "book", n, due + DAY)]
        case "session_moved":
            own = [
                Fact(due - 10 * DAY, "book", n, due + 10 * DAY),
                Fact(due, "book", n, due + 12 * DAY),
            ]
        case "session_cancelled":
            own = [Fact(due - 10 * DAY, "book", n, due + 10 * DAY), Fact(due, "cancel", n)]
        case "aftercare":
            own = _attend(n, due - 2 * HOUR)
        case "halfway":
            own = _attend(n, due - WEEK)
        case "course_complete":
            own = _attend(n, due - DAY)
        case "book_next":
            own = _attend(n, due - 6 * WEEK)
        case "book_next_last_call":
            own = _attend(n, due - 7 * WEEK - 3 * DAY)
        case _:
            raise SetupError(f"no story for step {step!r}")
    return (*_history(done, own[0].at - GAP, own[0].at), *own)


def _attend(number: int, at: datetime) -> list[Fact]:
    """Book session ``number`` three weeks ahead, then attend it at ``at``."""
    return [Fact(at - 3 * WEEK, "book", number, at), Fact(at + HOUR, "complete", number)]


def _history(done: int, last: datetime, first_own: datetime) -> Iterator[Fact]:
    """Enrolment and ``done`` attended sessions, the last at ``last``, six weeks apart."""
    if done == 0:
        yield Fact(first_own - 3 * DAY, "enrol")
        return
    sessions = [last - (done - i) * (6 * WEEK + DAY) for i in range(1, done + 1)]
    yield Fact(sessions[0] - 20 * DAY, "enrol")
    for number, at in enumerate(sessions, start=1):
        yield Fact(at - 14 * DAY, "book", number, at)
        yield Fact(at + HOUR, "complete", number)


def record(runtime: Runtime, all_stories: Sequence[Story], chunk: int = 200) -> None:
    """Record every story through ``nurture.enrollment``, ``chunk`` clients per transaction."""
    for start in range(0, len(all_stories), chunk):
        with runtime.transaction() as db:
            for story in all_stories[start : start + chunk]:
                try:
                    _record(db, runtime, story)
                except Exception as exc:
                    raise SetupError(f"recording {story.step} for {story.email}: {exc}") from exc


def _record(db: Session, runtime: Runtime, story: Story) -> None:
    client: Client | None = None
    for fact in story.facts:
        ctx = enrollment.Context(
            now=fact.at,
            actor="bench",
            planner=runtime.planner,
            default_timezone=runtime.settings.timezone,
            min_spacing=runtime.settings.min_spacing,
        )
        if fact.kind == "enrol":
            request = enrollment.check_enrolment(
                email=story.email,
                name=story.name,
                scars=story.scars,
                timezone=story.zone,
                sessions=story.sessions,
                confirm_hypertrophic=story.scars == ("hypertrophic",),
                default_timezone=runtime.settings.timezone,
            )
            client = enrollment.enroll(db, ctx, request).client
            continue
        assert client is not None
        _mark_sent(db, client.id, fact.at)
        if fact.kind == "book":
            assert fact.when is not None
            local = fact.when.astimezone(ZoneInfo(story.zone)).isoformat(timespec="minutes")
            enrollment.book(db, ctx, client, fact.session, local)
        elif fact.kind == "complete":
            enrollment.complete(db, ctx, client, fact.session)
        else:
            enrollment.cancel(db, ctx, client, fact.session)


def _mark_sent(db: Session, client_id: int | None, by: datetime) -> None:
    """Emails due by ``by`` went out back then (all clients' when ``client_id`` is None)."""
    stmt = update(Message).where(Message.status == MessageStatus.PENDING, Message.due_at <= by)
    if client_id is not None:
        stmt = stmt.where(Message.client_id == client_id)
    # "fetch" keeps the session's copies of these rows in step, so re-planning sees them sent.
    db.execute(
        stmt.values(status=MessageStatus.SENT, sent_at=Message.due_at, attempts=1, updated_at=by),
        execution_options={"synchronize_session": "fetch" if client_id else False},
    )


@dataclass(frozen=True)
class DueSet:
    """The emails a tick at NOW must send: their Message-IDs, and the mix of steps."""

    message_ids: frozenset[str]
    steps: Counter[str]
    invites: int


def settle(runtime: Runtime, all_stories: Sequence[Story]) -> DueSet:
    """Mark older emails as history, then check that exactly the stories' emails are due."""
    with runtime.transaction() as db:
        _mark_sent(db, None, NOW - INTERVAL)
    with runtime.transaction() as db:
        rows = db.execute(
            select(Client.email, Message.step, Message.message_id, Message.invite_revision)
            .join(Client, Client.id == Message.client_id)
            .where(Message.status == MessageStatus.PENDING, Message.due_at <= NOW)
        ).all()
    wanted = {s.email: s.step for s in all_stories}
    found = Counter(email for email, *_ in rows)
    wrong = [
        f"{email}: {step} due (story: {wanted.get(email)}, {found[email]} due)"
        for email, step, _, _ in rows
        if wanted.get(email) != step or found[email] != 1
    ]
    missing = sorted(set(wanted) - set(found))
    if wrong or missing:
        raise SetupError(
            f"{len(wrong)} unexpected and {len(missing)} missing due emails, e.g. "
            + "; ".join((wrong + [f"{m}: nothing due" for m in missing])[:5])
        )
    return DueSet(
        message_ids=frozenset(mid for _, _, mid, _ in rows),
        steps=Counter(step for _, step, _, _ in rows),
        invites=sum(1 for *_, revision in rows if revision is not None),
    )
