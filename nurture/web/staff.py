"""Staff pages: sign in, enrol, see clients, record sessions, export and erase."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from nurture import accounts, enrollment, privacy, reports
from nurture.db.models import Client, Message
from nurture.domain import only_hypertrophic
from nurture.enrollment import HYPERTROPHIC_ONLY
from nurture.errors import NotFoundError, NurtureError, ValidationError
from nurture.runtime import Runtime
from nurture.web.security import Guard, StaffSession
from nurture.web.views import EmailView, email_view

router = APIRouter(prefix="/staff", include_in_schema=False)
Text = Annotated[str, Form()]
OptionalText = Annotated[str, Form()]


#: The email's HTML is shown in a sandboxed frame: no scripts, no remote loads.
EMAIL_FRAME_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


class LoginRequired(Exception):  # noqa: N818  (a signal, not an error)
    """Raised by ``signed_in`` for anonymous visitors."""


def signed_in(request: Request) -> StaffSession:
    """The current staff member; anonymous visitors go to the sign-in page."""
    guard: Guard = request.app.state.guard
    staff = guard.session(request)
    if staff is None:
        raise LoginRequired
    return staff


Staff = Annotated[StaffSession, Depends(signed_in)]


def login_redirect(_request: Request, _exc: Exception) -> Response:
    """Send an anonymous visitor to the sign-in page (nothing was written)."""
    return RedirectResponse("/staff/login", status_code=303)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _render(
    request: Request, name: str, staff: StaffSession | None, status: int = 200, **context: Any
) -> HTMLResponse:
    guard: Guard = request.app.state.guard
    response = HTMLResponse("", status_code=status)
    nonce = staff.nonce if staff else guard.pre_nonce(request, response)
    html = request.app.state.templates.get_template(name).render(
        staff=staff,
        csrf=guard.csrf_token(nonce),
        clinic=_runtime(request).settings.clinic_name,
        **context,
    )
    response.body = response.render(html)
    response.headers["content-length"] = str(len(response.body))
    response.headers["Cache-Control"] = "no-store"
    return response


def _check_csrf(request: Request, token: str) -> None:
    guard: Guard = request.app.state.guard
    if not guard.csrf_ok(request, token):
        raise CsrfFailed


class CsrfFailed(Exception):  # noqa: N818  (a refusal signal, handled by the app)
    """The form's CSRF token is missing or wrong."""


def csrf_failed(request: Request, _exc: Exception) -> Response:
    """Refuse a forged or stale form; nothing was written."""
    html = request.app.state.templates.get_template("error.html").render(
        title="Please try again",
        message="This form has expired or did not come from this site. Go back, reload the "
        "page and submit it again.",
    )
    return HTMLResponse(html, status_code=403)


def _ctx(request: Request, staff: StaffSession) -> enrollment.Context:
    return replace(_runtime(request).context(), actor=f"staff:{staff.email}")


def _client(db: Any, public_id: str) -> Client:
    try:
        return enrollment.find_client_by_id(db, public_id)
    except NotFoundError:
        raise HTTPException(404, "No such client.") from None


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    """The sign-in form."""
    return _render(request, "login.html", None, error=None, email="")


@router.post("/login")
def login(
    request: Request, csrf: OptionalText = "", email: OptionalText = "", password: OptionalText = ""
) -> Response:
    """Check the password and start a session."""
    _check_csrf(request, csrf)
    runtime = _runtime(request)
    with runtime.transaction() as db:
        user = accounts.check_login(db, email, password, runtime.now())
        identity = (user.id, user.email) if user else None
    if identity is None:
        return _render(
            request,
            "login.html",
            None,
            401,
            error="That email and password do not match a staff account.",
            email=email,
        )
    response = RedirectResponse("/staff/clients", status_code=303)
    request.app.state.guard.sign_in(response, *identity)
    return response


@router.post("/logout")
def logout(request: Request, staff: Staff, csrf: OptionalText = "") -> Response:
    """End the session."""
    _check_csrf(request, csrf)
    response = RedirectResponse("/staff/login", status_code=303)
    request.app.state.guard.sign_out(response)
    return response


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home(staff: Staff) -> Response:
    """Staff start at the clients list."""
    return RedirectResponse("/staff/clients", status_code=303)


@router.get("/clients", response_class=HTMLResponse)
def clients(request: Request, staff: Staff, q: str = "") -> Response:
    """Clients with their course progress; ``q`` searches name and email."""
    runtime = _runtime(request)
    with runtime.transaction() as db:
        rows = reports.list_clients(db, runtime.now(), q[:100] or None)
    return _render(request, "clients.html", staff, rows=rows, q=q[:100])


EMPTY_FORM = {
    "email": "",
    "name": "",
    "scars": [],
    "timezone": "",
    "sessions": "5",
    "confirm_hypertrophic": False,
}


@router.get("/enrol", response_class=HTMLResponse)
def enrol_page(request: Request, staff: Staff) -> Response:
    """The enrolment form, used right after the consultation."""
    return _render(
        request,
        "enrol.html",
        staff,
        form=EMPTY_FORM,
        errors={},
        caution=HYPERTROPHIC_ONLY,
        default_zone=_runtime(request).settings.timezone,
    )


@router.post("/enrol")
async def enrol(request: Request, staff: Staff) -> Response:
    """Validate like the CLI; show errors beside the fields; save only when valid."""
    form = await request.form()
    _check_csrf(request, str(form.get("csrf", "")))
    values = {
        "email": str(form.get("email", "")),
        "name": str(form.get("name", "")),
        "scars": [str(s) for s in form.getlist("scar")],
        "timezone": str(form.get("timezone", "")),
        "sessions": str(form.get("sessions", "5")),
        "confirm_hypertrophic": form.get("confirm_hypertrophic") == "yes",
    }
    runtime = _runtime(request)
    errors = _enrol_errors(values, runtime.settings.timezone)
    if not errors:
        try:
            public_id = await _save_enrolment(request, staff, values)
        except NurtureError as exc:
            errors["email"] = str(exc)
        else:
            return RedirectResponse(f"/staff/clients/{public_id}", status_code=303)
    return _render(
        request,
        "enrol.html",
        staff,
        422,
        form=values,
        errors=errors,
        caution=HYPERTROPHIC_ONLY,
        default_zone=runtime.settings.timezone,
    )


def _enrol_errors(values: dict[str, Any], default_zone: str) -> dict[str, str]:
    """Every field's error at once (the CLI stops at the first)."""
    from nurture import validation  # noqa: PLC0415

    checks: dict[str, Callable[[], object]] = {
        "email": lambda: validation.clean_email(values["email"]),
        "name": lambda: validation.clean_name(values["name"]),
        "scar": lambda: validation.clean_scars(values["scars"]),
        "timezone": lambda: validation.clean_zone(values["timezone"]) if values["timezone"] else "",
        "sessions": lambda: validation.clean_sessions(values["sessions"]),
    }
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            check()
        except ValidationError as exc:
            errors[field] = exc.reason
    unconfirmed = "scar" not in errors and not values["confirm_hypertrophic"]
    if unconfirmed and only_hypertrophic(validation.clean_scars(values["scars"])):
        errors["scar"] = HYPERTROPHIC_ONLY
    if not errors:
        try:
            enrollment.check_enrolment(
                email=values["email"],
                name=values["name"],
                scars=values["scars"],
                timezone=values["timezone"] or None,
                sessions=values["sessions"],
                confirm_hypertrophic=values["confirm_hypertrophic"],
                default_timezone=default_zone,
            )
        except ValidationError as exc:
            errors[exc.field] = exc.reason
    return errors


async def _save_enrolment(request: Request, staff: StaffSession, values: dict[str, Any]) -> str:
    from starlette.concurrency import run_in_threadpool  # noqa: PLC0415

    runtime = _runtime(request)

    def save() -> str:
        request_ = enrollment.check_enrolment(
            email=values["email"],
            name=values["name"],
            scars=values["scars"],
            timezone=values["timezone"] or None,
            sessions=values["sessions"],
            confirm_hypertrophic=values["confirm_hypertrophic"],
            default_timezone=runtime.settings.timezone,
        )
        with runtime.transaction() as db:
            return enrollment.enroll(db, _ctx(request, staff), request_).client.public_id

    result: str = await run_in_threadpool(save)
    return result


@router.get("/clients/{public_id}", response_class=HTMLResponse)
def client_page(request: Request, staff: Staff, public_id: str, error: str = "") -> Response:
    """One client: sessions with their actions, and the timeline of emails."""
    runtime = _runtime(request)
    with runtime.transaction() as db:
        client = _client(db, public_id)
        summary = reports.summarise(client, runtime.now())
        course = client.courses[-1] if client.courses else None
        sessions = reports.session_rows(course, client.timezone) if course else []
        entries = reports.timeline(db, client)
    return _render(
        request,
        "client.html",
        staff,
        client=summary,
        sessions=sessions,
        entries=entries,
        error=error[:300],
        course_active=summary.status == "active",
    )


def _act(request: Request, staff: StaffSession, public_id: str, csrf: str, action: Any) -> Response:
    """Run one fact change for a client, then show the client page (with any error)."""
    _check_csrf(request, csrf)
    runtime = _runtime(request)
    try:
        with runtime.transaction() as db:
            action(db, _ctx(request, staff), _client(db, public_id))
    except NurtureError as exc:
        from urllib.parse import quote  # noqa: PLC0415

        return RedirectResponse(f"/staff/clients/{public_id}?error={quote(str(exc)[:300])}", 303)
    return RedirectResponse(f"/staff/clients/{public_id}", status_code=303)


@router.post("/clients/{public_id}/sessions/{number}/book")
def book(
    request: Request,
    staff: Staff,
    public_id: str,
    number: int,
    csrf: OptionalText = "",
    at: OptionalText = "",
) -> Response:
    """Book or move a session."""
    return _act(
        request, staff, public_id, csrf, lambda db, ctx, c: enrollment.book(db, ctx, c, number, at)
    )


@router.post("/clients/{public_id}/sessions/{number}/cancel")
def cancel(
    request: Request, staff: Staff, public_id: str, number: int, csrf: OptionalText = ""
) -> Response:
    """Cancel a booking."""
    return _act(
        request, staff, public_id, csrf, lambda db, ctx, c: enrollment.cancel(db, ctx, c, number)
    )


@router.post("/clients/{public_id}/sessions/{number}/complete")
def complete(
    request: Request,
    staff: Staff,
    public_id: str,
    number: int,
    csrf: OptionalText = "",
    at: OptionalText = "",
) -> Response:
    """Record attendance."""
    return _act(
        request,
        staff,
        public_id,
        csrf,
        lambda db, ctx, c: enrollment.complete(db, ctx, c, number, at or None),
    )


@router.post("/clients/{public_id}/withdraw")
def withdraw(request: Request, staff: Staff, public_id: str, csrf: OptionalText = "") -> Response:
    """End the course early."""
    return _act(request, staff, public_id, csrf, enrollment.withdraw)


@router.post("/clients/{public_id}/unsubscribe")
def unsubscribe(
    request: Request, staff: Staff, public_id: str, csrf: OptionalText = ""
) -> Response:
    """Stop all email to the client (they asked at the desk)."""
    return _act(request, staff, public_id, csrf, enrollment.unsubscribe)


@router.post("/clients/{public_id}/erase")
def erase(
    request: Request,
    staff: Staff,
    public_id: str,
    csrf: OptionalText = "",
    confirm: OptionalText = "",
) -> Response:
    """Erase the client's personal data (the form asks to type ERASE)."""
    _check_csrf(request, csrf)
    if confirm.strip() != "ERASE":
        from urllib.parse import quote  # noqa: PLC0415

        return RedirectResponse(
            f"/staff/clients/{public_id}?error={quote('type ERASE to confirm the erasure')}", 303
        )
    return _act(request, staff, public_id, csrf, privacy.erase_client)


@router.get("/clients/{public_id}/export")
def export(request: Request, staff: Staff, public_id: str) -> Response:
    """Everything held about the client, as a JSON download."""
    runtime = _runtime(request)
    with runtime.transaction() as db:
        data = privacy.export_client(db, _client(db, public_id))
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="client-{public_id}.json"',
            "Cache-Control": "no-store",
        },
    )


def _email(request: Request, public_id: str, message_id: int) -> EmailView:
    runtime = _runtime(request)
    with runtime.transaction() as db:
        client = _client(db, public_id)
        message = db.scalar(
            select(Message).where(Message.id == message_id, Message.client_id == client.id)
        )
        if message is None:
            raise HTTPException(404, "No such email.")
        return email_view(db, runtime, client, message)


@router.get("/clients/{public_id}/emails/{message_id}", response_class=HTMLResponse)
def email_page(request: Request, staff: Staff, public_id: str, message_id: int) -> Response:
    """One email as the client saw it (or will see it, for a pending one)."""
    view = _email(request, public_id, message_id)
    return _render(
        request, "email.html", staff, client_id=public_id, view=view, message_id=message_id
    )


@router.get("/clients/{public_id}/emails/{message_id}/body")
def email_body(request: Request, staff: Staff, public_id: str, message_id: int) -> Response:
    """The HTML part alone, sandboxed, for the email page's frame."""
    view = _email(request, public_id, message_id)
    return HTMLResponse(
        view.html,
        headers={
            "Content-Security-Policy": EMAIL_FRAME_POLICY,
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "no-store",
        },
    )
