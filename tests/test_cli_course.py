"""Recording a course through the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from nurture.db.models import Client, Course, Event, TreatmentSession
from tests.conftest import Cli

NOW = "2026-11-25T12:00:00+00:00"


def _events(url: str) -> list[tuple[str, int | None, str]]:
    engine = create_engine(url)
    with Session(engine) as db:
        rows = [
            (e.kind.value, e.session_number, e.actor)
            for e in db.scalars(select(Event).order_by(Event.id))
        ]
    engine.dispose()
    return rows


def test_issue_walkthrough_records_every_fact(cli: Cli) -> None:
    """The foundation walkthrough leaves the right course state and a full history."""
    cli.ok(
        "enroll",
        "ana@example.com",
        "--name",
        "Ana Silva",
        "--scar",
        "atrophic",
        "--scar",
        "pih",
        "--timezone",
        "Europe/London",
        now=NOW,
    )
    cli.ok("book", "ana@example.com", "1", "2026-12-03T10:30", now=NOW)
    moved = cli.ok("book", "ana@example.com", "1", "2026-12-05T14:00", now=NOW)
    assert "moved session 1" in moved.out
    cli.ok("complete", "ana@example.com", "1", now="2026-12-05T16:00:00+00:00")
    cli.ok("book", "ana@example.com", "2", "2027-01-20T11:00", now="2026-12-06T10:00:00+00:00")
    cli.ok("cancel", "ana@example.com", "2", now="2026-12-07T10:00:00+00:00")
    rows = json.loads(cli.ok("clients", "--json").out)
    assert len(rows) == 1
    row = rows[0]
    assert (row["email"], row["name"], row["status"]) == ("ana@example.com", "Ana Silva", "active")
    assert (row["sessions_planned"], row["sessions_completed"], row["sessions_booked"]) == (5, 1, 0)
    assert row["next_session"] is None
    assert [k for k, _, _ in _events(cli.url)] == [
        "enrolled",
        "booked",
        "rescheduled",
        "completed",
        "booked",
        "cancelled",
    ]
    assert {actor for _, _, actor in _events(cli.url)} == {"test"}
    engine = create_engine(cli.url)
    with Session(engine) as db:
        s1, s2 = db.scalars(select(TreatmentSession).order_by(TreatmentSession.number)).all()
        assert s1.scheduled_at is not None
        assert s1.scheduled_at.isoformat() == "2026-12-05T14:00:00+00:00"
        assert (s1.status.value, s1.revision) == ("completed", 1)
        assert (s2.status.value, s2.revision) == ("cancelled", 1)
        course = db.scalars(select(Course)).one()
        assert course.scar_types == "atrophic,pih"
    engine.dispose()


def test_local_time_is_stored_in_utc(cli: Cli) -> None:
    """A booking in New York summer time is stored as the right UTC instant."""
    cli.ok(
        "enroll",
        "bo@example.com",
        "--name",
        "Bo",
        "--scar",
        "pih",
        "--timezone",
        "America/New_York",
        now=NOW,
    )
    cli.ok("book", "bo@example.com", "1", "2027-06-01T09:00", now=NOW)
    rows = json.loads(cli.ok("clients", "--json").out)
    assert rows[0]["next_session_at"] == "2027-06-01T13:00:00+00:00"
    assert rows[0]["next_session_local"] == "2027-06-01 09:00 EDT"


def test_default_zone_and_sessions_come_from_settings(cli: Cli) -> None:
    """Without --timezone and --sessions the clinic's zone and five sessions apply."""
    cli.ok(
        "enroll",
        "cy@example.com",
        "--name",
        "Cy",
        "--scar",
        "atrophic",
        now=NOW,
        env={"NURTURE_TIMEZONE": "Australia/Lord_Howe"},
    )
    row = json.loads(cli.ok("clients", "--json").out)[0]
    assert (row["timezone"], row["sessions_planned"]) == ("Australia/Lord_Howe", 5)


def test_completing_last_session_completes_course(cli: Cli) -> None:
    """Attending the final session marks the course complete."""
    cli.ok("enroll", "di@example.com", "--name", "Di", "--scar", "pih", "--sessions", "2", now=NOW)
    cli.ok("book", "di@example.com", "1", "2026-12-01T10:00", now=NOW)
    cli.ok("book", "di@example.com", "2", "2027-01-15T10:00", now=NOW)
    cli.ok("complete", "di@example.com", "1", now="2026-12-02T10:00:00+00:00")
    done = cli.ok("complete", "di@example.com", "2", now="2027-01-16T10:00:00+00:00")
    assert "course of di@example.com is complete" in done.out
    assert json.loads(cli.ok("clients", "--json").out)[0]["status"] == "completed"
    assert _events(cli.url)[-1][0] == "course_completed"


def test_close_booking_is_accepted_with_warning(cli: Cli) -> None:
    """A session closer than six weeks to the previous one is booked, with a warning."""
    cli.ok("enroll", "ed@example.com", "--name", "Ed", "--scar", "atrophic", now=NOW)
    cli.ok("book", "ed@example.com", "1", "2026-12-01T10:00", now=NOW)
    result = cli.ok("book", "ed@example.com", "2", "2026-12-29T10:00", now=NOW)
    assert "warning: session 2 is 4 weeks from session 1" in result.err
    assert json.loads(cli.ok("clients", "--json").out)[0]["sessions_booked"] == 2


def test_withdraw_and_reenrol(cli: Cli) -> None:
    """A withdrawn client can be enrolled again into a new course."""
    cli.ok("enroll", "fa@example.com", "--name", "Fa", "--scar", "pih", now=NOW)
    cli.ok("withdraw", "fa@example.com", now=NOW)
    assert json.loads(cli.ok("clients", "--json").out)[0]["status"] == "withdrawn"
    cli.ok("enroll", "fa@example.com", "--name", "Fa Renamed", "--scar", "atrophic", now=NOW)
    row = json.loads(cli.ok("clients", "--json").out)[0]
    assert (row["status"], row["name"]) == ("active", "Fa Renamed")


def test_unsubscribe_is_idempotent_and_recorded(cli: Cli) -> None:
    """Unsubscribing twice records one fact and reports the second as a no-op."""
    cli.ok("enroll", "gu@example.com", "--name", "Gu", "--scar", "pih", now=NOW)
    assert "unsubscribed gu@example.com" in cli.ok("unsubscribe", "GU@example.com", now=NOW).out
    assert "already unsubscribed" in cli.ok("unsubscribe", "gu@example.com", now=NOW).out
    assert [k for k, _, _ in _events(cli.url)].count("unsubscribed") == 1
    assert json.loads(cli.ok("clients", "--json").out)[0]["status"] == "unsubscribed"


def test_history_lists_facts_in_order(cli: Cli) -> None:
    """`nurture history --json` shows who recorded what and when."""
    cli.ok("enroll", "ha@example.com", "--name", "Ha", "--scar", "pih", now=NOW)
    cli.ok("book", "ha@example.com", "1", "2026-12-01T10:00", now="2026-11-26T08:00:00+00:00")
    items = json.loads(cli.ok("history", "ha@example.com", "--json").out)
    assert [(i["kind"], i["session"], i["occurred_at"]) for i in items] == [
        ("enrolled", None, "2026-11-25T12:00:00+00:00"),
        ("booked", 1, "2026-11-26T08:00:00+00:00"),
    ]
    assert items[1]["detail"] == {"at": "2026-12-01T10:00:00+00:00"}


def test_clients_table_and_search(cli: Cli) -> None:
    """The plain clients list shows progress, and --search filters it."""
    cli.ok("enroll", "ia@example.com", "--name", "Ia Stone", "--scar", "pih", now=NOW)
    cli.ok("enroll", "jo@example.com", "--name", "Jo Marsh", "--scar", "atrophic", now=NOW)
    cli.ok("book", "jo@example.com", "1", "2026-12-01T10:00", now=NOW)
    table = cli.ok("clients").lines
    assert table[0].split()[:3] == ["EMAIL", "NAME", "STATUS"]
    jo = next(line for line in table if line.startswith("jo@example.com"))
    assert "#1 2026-12-01 10:00 GMT" in jo
    assert "0/5" in jo
    found = json.loads(cli.ok("clients", "--json", "--search", "marsh").out)
    assert [r["email"] for r in found] == ["jo@example.com"]


def test_reenrol_keeps_one_client_row(cli: Cli) -> None:
    """A returning client keeps their identity (same opaque id)."""
    cli.ok("enroll", "ka@example.com", "--name", "Ka", "--scar", "pih", now=NOW)
    first = json.loads(cli.ok("clients", "--json").out)[0]["id"]
    cli.ok("withdraw", "ka@example.com", now=NOW)
    cli.ok("enroll", "ka@example.com", "--name", "Ka", "--scar", "pih", now=NOW)
    engine = create_engine(cli.url)
    with Session(engine) as db:
        assert [c.public_id for c in db.scalars(select(Client))] == [first]
        assert len(db.scalars(select(Course)).all()) == 2
    engine.dispose()
