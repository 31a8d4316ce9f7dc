"""The command line: the staff's and the scheduler's front door.

Every option has a ``NURTURE_*`` environment fallback, shown by ``--help``.
A user mistake prints one line starting with ``error:`` and exits non-zero;
nothing is written.
"""

from __future__ import annotations

import getpass
import json
import logging
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
@click.option(
    "--log-level",
    envvar="NURTURE_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="How much to log to stderr (events with fields, never health data).",
)
@click.version_option(package_name="nurture")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, actor: str | None, log_level: str) -> None:
    """Walk skin-clinic clients through a course of microneedling by email.

    Settings come from NURTURE_* environment variables, then a nurture.toml
    in the working folder (or NURTURE_CONFIG). NURTURE_NOW (ISO 8601 with
    offset) replaces the clock for every command, to simulate a course.
    """
    settings = load_settings(overrides={"database_url": database_url} if database_url else None)
    _configure_logging(log_level)
    ctx.obj = Runtime(settings, actor=actor or f"cli:{_login()}")
    ctx.call_on_close(ctx.obj.close)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


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


@cli.command()
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Deliver every email that is due now, then exit (for cron and scripts)."""
    runtime = _runtime(ctx).ready()
    report = runtime.dispatcher().tick()
    click.echo(
        f"sent {report.sent}, deferred {report.deferred} to the send window, "
        f"skipped {report.skipped}, cancelled {report.cancelled}, "
        f"retrying {report.retried}, failed {report.failed}"
        + (f", lost {report.lost} claims" if report.lost else "")
    )


@cli.command()
@click.option(
    "--interval",
    type=click.IntRange(1, 3600),
    envvar="NURTURE_TICK_SECONDS",
    show_envvar=True,
    help="Seconds between ticks  [default: 60]",
)
@click.pass_context
def run(ctx: click.Context, interval: int | None) -> None:
    """Run the scheduler: tick at an interval until SIGTERM or Ctrl-C.

    Any number of workers may share one PostgreSQL database; each email is
    claimed by one worker at a time.
    """
    from nurture.scheduler import run_forever  # noqa: PLC0415  (APScheduler only here)

    runtime = _runtime(ctx).ready()
    runtime.sequence  # noqa: B018  (validate the sequence and templates before starting)
    run_forever(runtime.dispatcher(), interval or runtime.settings.tick_seconds)


@cli.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def timeline(ctx: click.Context, email: str, as_json: bool) -> None:
    """Show every email of a client's course: due, sent, skipped, cancelled and why."""
    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        client = enrollment.find_client(db, email)
        entries = reports.timeline(db, client)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2, ensure_ascii=False))
        return
    if not entries:
        click.echo(f"no emails planned for {client.email}")
        return
    for e in entries:
        session = f"#{e.session}" if e.session else ""
        when = f"sent {e.sent_at[:16]}Z" if e.sent_at else f"due {e.due_local}"
        reason = f"  ({e.reason})" if e.reason else ""
        click.echo(f"{e.status:<9} {e.step:<22} {session:<4} {when}{reason}")


@cli.command()
@click.argument("step")
@click.option("--email", help="Render for this enrolled client, as it would be sent.")
@click.option("--session", "session_number", type=int, help="The session it is about.")
@click.option(
    "--scar",
    "scars",
    multiple=True,
    metavar="TYPE",
    help="Render for a sample client with these scar types (repeatable).",
)
@click.option(
    "--sessions",
    "planned",
    type=click.IntRange(1, 20),
    default=5,
    show_default=True,
    help="Planned sessions of the sample client.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the HTML part to this file.",
)
@click.option(
    "--eml",
    "eml_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the whole message to this file.",
)
@click.pass_context
def preview(
    ctx: click.Context,
    step: str,
    email: str | None,
    session_number: int | None,
    scars: tuple[str, ...],
    planned: int,
    html_file: Path | None,
    eml_file: Path | None,
) -> None:
    """Render one step of the sequence, for a client or a sample client."""
    from nurture import previewing  # noqa: PLC0415

    runtime = _runtime(ctx)
    result = previewing.preview(
        runtime,
        step,
        email=email,
        session_number=session_number,
        scars=scars,
        planned=planned,
    )
    click.echo(result.headers)
    click.echo("")
    click.echo(result.text)
    if html_file is not None:
        html_file.write_text(result.html, encoding="utf-8")
        click.echo(f"(HTML part written to {html_file})", err=True)
    if eml_file is not None:
        eml_file.write_bytes(result.data)
        click.echo(f"(message written to {eml_file})", err=True)


@cli.command()
@click.option(
    "--days",
    type=click.IntRange(1, 400),
    default=150,
    show_default=True,
    help="How many simulated days to run.",
)
@click.pass_context
def demo(ctx: click.Context, days: int) -> None:
    """Simulate a whole course for sample clients and send through the real pipeline.

    Migrates the database if needed, enrols four sample clients (every scar
    type), records bookings, a reschedule, a cancellation, attendance and an
    unsubscribe on a simulated clock, runs the real tick every simulated hour
    and leaves the emails in the configured transport (by default ./outbox).
    """
    from nurture.demo import run_demo  # noqa: PLC0415

    runtime = _runtime(ctx)
    db_engine.upgrade(runtime.settings.database_url)
    runtime.actor = "demo"
    sent = run_demo(runtime, click.echo, days)
    click.echo(f"demo done: {sent} emails sent through {runtime.settings.transport}")


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="NURTURE_HOST",
    show_envvar=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    envvar="NURTURE_PORT",
    show_envvar=True,
    help="Port to listen on.",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Run the web app: staff pages (/staff), the JSON API (/api/v1), unsubscribe pages.

    Put it behind an HTTPS proxy whose public address is NURTURE_BASE_URL.
    """
    import uvicorn  # noqa: PLC0415  (only the web app needs it)

    from nurture.web.app import create_app  # noqa: PLC0415

    runtime = _runtime(ctx).ready()
    app = create_app(runtime)
    click.echo(
        f"nurture web app on http://{host}:{port}/staff (public URL {runtime.settings.base_url})"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)


@cli.group()
def staff() -> None:
    """Manage staff accounts for the web app."""


@staff.command("add")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def staff_add(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Create a staff account (or set a new password); asks for the password."""
    from nurture import accounts  # noqa: PLC0415

    runtime = _runtime(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with runtime.transaction() as db:
        user = accounts.add_staff(db, email, password, runtime.now())
        address = user.email
    click.echo(f"staff account {address} is ready; sign in at {runtime.settings.base_url}/staff")


@cli.group("api-token")
def api_token() -> None:
    """Manage bearer tokens for booking systems using the JSON API."""


@api_token.command("create")
@click.argument("name")
@click.pass_context
def api_token_create(ctx: click.Context, name: str) -> None:
    """Create a token called NAME and print it once (only its hash is stored)."""
    from nurture import accounts  # noqa: PLC0415

    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        token = accounts.create_token(db, name, runtime.now())
    click.echo(token)
    click.echo(f"(token {name!r} created; it is shown only now, store it safely)", err=True)


@api_token.command("revoke")
@click.argument("name")
@click.pass_context
def api_token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the token called NAME; requests with it are refused from now on."""
    from nurture import accounts  # noqa: PLC0415

    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        accounts.revoke_token(db, name, runtime.now())
    click.echo(f"revoked API token {name!r}")


@cli.command()
@click.argument("email")
@click.pass_context
def export(ctx: click.Context, email: str) -> None:
    """Print everything held about a client as JSON (a data-access request)."""
    from nurture import privacy  # noqa: PLC0415

    runtime = _runtime(ctx)
    with runtime.transaction() as db:
        data = privacy.export_client(db, enrollment.find_client(db, email))
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@cli.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def erase(ctx: click.Context, email: str, yes: bool) -> None:
    """Erase a client's personal data; the address is kept only as a hash, never emailed."""
    from nurture import privacy  # noqa: PLC0415

    runtime = _runtime(ctx)
    if not yes:
        click.confirm(f"Erase {email} for good?", abort=True)
    with runtime.transaction() as db:
        privacy.erase_client(db, runtime.context(), enrollment.find_client(db, email))
    click.echo("erased; pending emails cancelled and the address is on the do-not-email list")


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
