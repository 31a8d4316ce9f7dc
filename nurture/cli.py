"""The command line: the staff's and the scheduler's front door.

Every option has a ``NURTURE_*`` environment fallback, shown by ``--help``.
A user mistake prints one line starting with ``error:`` and exits non-zero;
nothing is written.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from nurture import enrollment, importing, reports
from nurture.config import load_settings
from nurture.db import engine as db_engine
from nurture.errors import ConfigurationError, NurtureError
from nurture.runtime import Runtime

EXIT_USER_ERROR = 1
EXIT_CONFIG = 2


def _runtime(ctx: click.Context) -> Runtime:
    runtime = ctx.obj
    assert isinstance(runtime, Runtime)
    return runtime


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar="NURTURE_DATABASE_URL",
    show_envvar=True,
    help="SQLAlchemy URL of the database  [default: sqlite:///nurture.db]",
)
@click.option(
    "--actor",
    envvar="NURTURE_ACTOR",
    show_envvar=True,
    help="Who is recording facts, kept in the history  [default: cli:<login name>]",
)
@click.version_option(package_name="nurture")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, actor: str | None) -> None:
    """Walk skin-clinic clients through a course of microneedling by email.

    Settings come from NURTURE_* environment variables, then a nurture.toml
    in the working folder (or NURTURE_CONFIG). NURTURE_NOW (ISO 8601 with
    offset) replaces the clock for every command, to simulate a course.
    """
    settings = load_settings(overrides={"database_url": database_url} if database_url else None)
    ctx.obj = Runtime(settings, actor=actor or f"cli:{_login()}")
    ctx.call_on_close(ctx.obj.close)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return "unknown"


@cli.group()
def db() -> None:
    """Manage the database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the database to the newest schema."""
    runtime = _runtime(ctx)
    path = runtime.settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    before, after = db_engine.upgrade(runtime.settings.database_url)
    if before == after:
        click.echo(f"database already at migration {after}")
    else:
        click.echo(f"database migrated from {before or 'empty'} to {after}")


@cli.command()
@click.argument("email")
@click.option("--name", required=True, help="The client's full name.")
@click.option(
    "--scar",
    "scars",
    multiple=True,
    required=True,
    metavar="TYPE",
    help="Scar type: atrophic, hypertrophic or pih (repeat for a mix).",
)
@click.option("--timezone", help="IANA time zone of the client  [default: the clinic's zone]")
@click.option("--sessions", default="5", show_default=True, help="Planned sessions (1-20).")
@click.option(
    "--confirm-hypertrophic",
    is_flag=True,
    help="The therapist confirms microneedling for a client whose only scars are raised.",
)
@click.pass_context
def enroll(
    ctx: click.Context,
    email: str,
    name: str,
    scars: tuple[str, ...],
    timezone: str | None,
    sessions: str,
    confirm_hypertrophic: bool,
) -> None:
    """Enrol a client after the consultation and start their course."""
    runtime = _runtime(ctx)
    request = enrollment.check_enrolment(
        email=email,
        name=name,
        scars=scars,
        timezone=timezone,
        sessions=sessions,
        confirm_hypertrophic=confirm_hypertrophic,
        default_timezone=runtime.settings.timezone,
    )
    with runtime.transaction() as session:
        outcome = enrollment.enroll(session, runtime.context(), request)
        public_id = outcome.client.public_id
    _warn(outcome.warnings)
    click.echo(
        f"enrolled {request.email} (id {public_id}): {request.sessions} sessions, "
        f"time zone {request.timezone}"
    )


@cli.command()
@click.argument("email")
@click.argument("session", metavar="SESSION")
@click.argument("when", metavar="WHEN")
@click.pass_context
def book(ctx: click.Context, email: str, session: str, when: str) -> None:
    """Book (or move) session SESSION at WHEN, local time, e.g. 2026-12-03T10:30."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        rescheduled = any(
            s.number == _int(session) and s.status.value == "booked"
            for c in client.courses
            for s in c.sessions
        )
        outcome = enrollment.book(db, runtime.context(), client, session, when)
    _warn(outcome.warnings)
    if not outcome.changed:
        click.echo(f"session {session} of {client.email} is already booked then; nothing changed")
    else:
        verb = "moved" if rescheduled else "booked"
        click.echo(f"{verb} session {session} of {client.email} to {when} ({client.timezone})")


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


@cli.command()
@click.argument("email")
@click.argument("session", metavar="SESSION")
@click.option("--at", "at", metavar="WHEN", help="When they attended  [default: the booked time]")
@click.pass_context
def complete(ctx: click.Context, email: str, session: str, at: str | None) -> None:
    """Record that the client attended session SESSION."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        outcome = enrollment.complete(db, runtime.context(), client, session, at)
        finished = outcome.course is not None and outcome.course.status.value == "completed"
    if not outcome.changed:
        click.echo(f"session {session} of {client.email} was already recorded as attended")
        return
    click.echo(f"recorded session {session} of {client.email} as attended")
    if finished:
        click.echo(f"the course of {client.email} is complete")


@cli.command()
@click.argument("email")
@click.argument("session", metavar="SESSION")
@click.pass_context
def cancel(ctx: click.Context, email: str, session: str) -> None:
    """Cancel the booking of session SESSION."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        enrollment.cancel(db, runtime.context(), client, session)
    click.echo(f"cancelled session {session} of {client.email}")


@cli.command()
@click.argument("email")
@click.pass_context
def withdraw(ctx: click.Context, email: str) -> None:
    """End the client's course early; their pending emails are cancelled."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        enrollment.withdraw(db, runtime.context(), client)
    click.echo(f"withdrew the course of {client.email}")


@cli.command()
@click.argument("email")
@click.pass_context
def unsubscribe(ctx: click.Context, email: str) -> None:
    """Stop every email to EMAIL (the client asked, by phone or at the desk)."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        outcome = enrollment.unsubscribe(db, runtime.context(), client)
    if outcome.changed:
        click.echo(f"unsubscribed {client.email}; no further email will be sent")
    else:
        click.echo(f"{client.email} was already unsubscribed")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--search", help="Only clients whose name or email contains this text.")
@click.pass_context
def clients(ctx: click.Context, as_json: bool, search: str | None) -> None:
    """List clients with their course progress."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        rows = reports.list_clients(db, runtime.settings.now(), search)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no clients yet; enrol one with `nurture enroll`")
        return
    table = [("EMAIL", "NAME", "STATUS", "BOOKED", "DONE", "NEXT SESSION")]
    for r in rows:
        progress = f"{r.sessions_completed}/{r.sessions_planned}"
        nxt = f"#{r.next_session} {r.next_session_local}" if r.next_session else "-"
        table.append(
            (r.email or "(erased)", r.name or "", r.status, str(r.sessions_booked), progress, nxt)
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@cli.command("history")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of lines.")
@click.pass_context
def history(ctx: click.Context, email: str, as_json: bool) -> None:
    """Show every recorded fact of a client: who did what, and when."""
    from sqlalchemy import select  # noqa: PLC0415

    from nurture.db.models import Event  # noqa: PLC0415

    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        events = list(
            db.scalars(select(Event).where(Event.client_id == client.id).order_by(Event.id))
        )
    items: list[dict[str, Any]] = [
        {
            "occurred_at": e.occurred_at.isoformat(),
            "kind": e.kind.value,
            "session": e.session_number,
            "actor": e.actor,
            "detail": e.detail,
        }
        for e in events
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    for item in items:
        session = f" session {item['session']}" if item["session"] else ""
        detail = " ".join(f"{k}={v}" for k, v in item["detail"].items())
        click.echo(
            f"{item['occurred_at']}  {item['kind']}{session}  by {item['actor']}  {detail}".rstrip()
        )


@cli.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--skip-invalid", is_flag=True, help="Import the good rows and report the bad ones.")
@click.option(
    "--confirm-hypertrophic",
    is_flag=True,
    help="The therapist confirmed every hypertrophic-only client in the file.",
)
@click.pass_context
def import_(ctx: click.Context, file: Path, skip_invalid: bool, confirm_hypertrophic: bool) -> None:
    """Enrol many clients from a CSV (columns: email,name,scar,timezone,sessions).

    Scar types in one cell are separated by ';'. By default the whole file is
    refused if any row is bad, and every bad row is listed by line number.
    """
    runtime = _runtime(ctx)
    report = importing.read_rows(file, runtime.settings.timezone, confirm_hypertrophic)
    with runtime.transaction() as db:
        importing.check_against_database(db, report)
        for err in report.errors:
            click.echo(f"{file}:{err.line}: {err.message}", err=True)
        if report.errors and not skip_invalid:
            raise NurtureError(
                f"{len(report.errors)} bad row(s); nothing imported. Fix them, or pass "
                "--skip-invalid to import the other rows"
            )
        importing.record(db, runtime.context(), report)
    _warn(report.warnings)
    skipped = f", skipped {len(report.errors)} bad row(s)" if report.errors else ""
    click.echo(f"imported {report.imported} client(s){skipped}")


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn known errors into one-line messages."""
    try:
        result = cli.main(args=argv, prog_name="nurture", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigurationError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except NurtureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except OperationalError as exc:
        click.echo(f"error: the database cannot be reached or used ({exc.orig})", err=True)
        sys.exit(EXIT_USER_ERROR)
    sys.exit(result if isinstance(result, int) else 0)
