"""The JSON API for booking systems, under /api/v1 (bearer tokens).

Validation is the CLI's; a refusal is a 4xx JSON body naming the field and
the reason, and writes nothing.  Retries are safe: the same booking twice
changes nothing, and an ``Idempotency-Key`` replays the first answer to an
enrolment instead of enrolling twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture import accounts, enrollment, reports
from nurture.db.models import ApiToken, Client, IdempotencyRecord
from nurture.domain import SessionStatus
from nurture.errors import ConflictError, NotFoundError, NurtureError, ValidationError
from nurture.runtime import Runtime


class ErrorDetail(BaseModel):
    """What was wrong."""

    field: str | None = Field(description="The field at fault, when one is")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx answer."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "The request body could not be read"),
        (401, "Missing or invalid bearer token"),
        (404, "No such client"),
        (409, "Conflicts with the recorded facts"),
        (422, "Invalid input; `field` names what to fix"),
    )
}


class EnrolIn(BaseModel):
    """A client to enrol after the consultation."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)
    name: str = Field(max_length=1000)
    scar_types: list[Annotated[str, Field(max_length=64)]] = Field(max_length=10)
    timezone: str | None = Field(default=None, max_length=64)
    sessions: int | None = Field(default=None, ge=-(2**31), le=2**31)
    confirm_hypertrophic: bool = False


class BookIn(BaseModel):
    """When a session is booked, in the client's local time (ISO 8601)."""

    model_config = ConfigDict(extra="forbid")
    at: str = Field(max_length=64, examples=["2026-12-03T10:30"])


class CompleteIn(BaseModel):
    """When the client attended (default: the booked time)."""

    model_config = ConfigDict(extra="forbid")
    at: str | None = Field(default=None, max_length=64)


class SessionOut(BaseModel):
    """One session of the course."""

    number: int
    status: str
    at: str | None
    local: str | None


class EmailOut(BaseModel):
    """One email of the course."""

    step: str
    session: int | None
    status: str
    due_at: str
    sent_at: str | None
    reason: str | None
    message_id: str


class ClientOut(BaseModel):
    """A client with course progress and the timeline of emails."""

    id: str
    email: str | None
    name: str | None
    timezone: str
    status: str
    sessions_planned: int
    sessions_booked: int
    sessions_completed: int
    next_session: int | None
    next_session_at: str | None
    sessions: list[SessionOut]
    timeline: list[EmailOut]
    warnings: list[str] = []


router = APIRouter(prefix="/api/v1", tags=["clients"], responses=ERRORS)


class ApiError(Exception):
    """A refusal with its HTTP status."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def _error(status: int, field: str | None, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"field": field, "message": message}}, status_code=status, headers=headers or None
    )


def install_error_handlers(app: FastAPI) -> None:
    """Turn refusals into the documented JSON shape."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return _error(exc.status, exc.field, exc.message, **headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        return _error(422, ".".join(location) or None, str(first.get("msg", "invalid request")))


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def bearer(request: Request, authorization: Annotated[str | None, Header()] = None) -> ApiToken:
    """The calling booking system's token, or 401."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, None, "send Authorization: Bearer <token>")
    runtime = _runtime(request)
    with runtime.transaction() as db:
        found = accounts.authenticate_token(db, token.strip(), runtime.now())
    if found is None:
        raise ApiError(401, None, "this token is not valid or was revoked")
    return found


Token = Annotated[ApiToken, Depends(bearer)]


def _refusal(exc: NurtureError) -> ApiError:
    if isinstance(exc, ValidationError):
        return ApiError(422, exc.field, exc.reason)
    if isinstance(exc, NotFoundError):
        return ApiError(404, None, str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, None, str(exc))
    return ApiError(422, None, str(exc))


def _ctx(request: Request, token: ApiToken) -> enrollment.Context:
    return replace(_runtime(request).context(), actor=f"api:{token.name}")


def _client(db: Session, public_id: str) -> Client:
    if len(public_id) > 64:
        raise ApiError(404, None, "no such client")
    try:
        return enrollment.find_client_by_id(db, public_id)
    except NotFoundError:
        raise ApiError(404, None, "no such client") from None


def _out(
    db: Session, runtime: Runtime, client: Client, warnings: list[str] | None = None
) -> dict[str, Any]:
    summary = reports.summarise(client, runtime.now())
    course = client.courses[-1] if client.courses else None
    rows = reports.session_rows(course, client.timezone) if course else []
    at_by_number = {
        s.number: (s.completed_at or s.scheduled_at) for s in (course.sessions if course else [])
    }
    return ClientOut(
        id=summary.id,
        email=summary.email,
        name=summary.name,
        timezone=summary.timezone,
        status=summary.status,
        sessions_planned=summary.sessions_planned,
        sessions_booked=summary.sessions_booked,
        sessions_completed=summary.sessions_completed,
        next_session=summary.next_session,
        next_session_at=summary.next_session_at,
        sessions=[
            SessionOut(
                number=r.number,
                status=r.status,
                local=r.local,
                at=at.isoformat() if (at := at_by_number.get(r.number)) else None,
            )
            for r in rows
        ],
        timeline=[
            EmailOut(
                step=e.step,
                session=e.session,
                status=e.status,
                due_at=e.due_at,
                sent_at=e.sent_at,
                reason=e.reason,
                message_id=e.message_id,
            )
            for e in reports.timeline(db, client)
        ],
        warnings=warnings or [],
    ).model_dump()


@router.post("/clients", status_code=201, response_model=ClientOut)
def enrol(
    request: Request,
    body: EnrolIn,
    token: Token,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> JSONResponse:
    """Enrol a client; answers 201 with the client's opaque `id`."""
    runtime = _runtime(request)
    fingerprint = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
    if idempotency_key is not None:
        replay = _replay(runtime, token, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    try:
        checked = enrollment.check_enrolment(
            email=body.email,
            name=body.name,
            scars=body.scar_types,
            timezone=body.timezone,
            sessions=body.sessions,
            confirm_hypertrophic=body.confirm_hypertrophic,
            default_timezone=runtime.settings.timezone,
        )
        with runtime.transaction() as db:
            outcome = enrollment.enroll(db, _ctx(request, token), checked)
            payload = _out(db, runtime, outcome.client, outcome.warnings)
            if idempotency_key is not None:
                db.add(
                    IdempotencyRecord(
                        token_id=token.id,
                        key=idempotency_key,
                        request_hash=fingerprint,
                        status_code=201,
                        response=payload,
                        created_at=runtime.now(),
                    )
                )
    except NurtureError as exc:
        raise _refusal(exc) from None
    except IntegrityError:
        replay = _replay(runtime, token, idempotency_key or "", fingerprint)
        if replay is not None:
            return replay
        raise ApiError(409, "email", "this client was enrolled at the same moment") from None
    return JSONResponse(payload, status_code=201)


def _replay(runtime: Runtime, token: ApiToken, key: str, fingerprint: str) -> JSONResponse | None:
    with runtime.transaction() as db:
        record = db.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.token_id == token.id, IdempotencyRecord.key == key
            )
        )
        if record is None:
            return None
        if record.request_hash != fingerprint:
            raise ApiError(422, "Idempotency-Key", "this key was used for a different request")
        return JSONResponse(record.response, status_code=record.status_code)


@router.get("/clients/{client_id}", response_model=ClientOut)
def get_client(request: Request, client_id: str, token: Token) -> dict[str, Any]:
    """The client with course progress and timeline."""
    runtime = _runtime(request)
    with runtime.transaction() as db:
        return _out(db, runtime, _client(db, client_id))


@router.put("/clients/{client_id}/sessions/{number}", response_model=ClientOut)
def book(
    request: Request, client_id: str, number: int, body: BookIn, token: Token
) -> dict[str, Any]:
    """Book session `number` at `at` (local time), or move it there; repeating changes nothing."""
    return _change(
        request, token, client_id, lambda db, ctx, c: enrollment.book(db, ctx, c, number, body.at)
    )


@router.post("/clients/{client_id}/sessions/{number}/complete", response_model=ClientOut)
def complete(
    request: Request, client_id: str, number: int, token: Token, body: CompleteIn | None = None
) -> dict[str, Any]:
    """Record attendance. Repeating it changes nothing."""
    at = body.at if body else None
    return _change(
        request, token, client_id, lambda db, ctx, c: enrollment.complete(db, ctx, c, number, at)
    )


@router.delete("/clients/{client_id}/sessions/{number}", response_model=ClientOut)
def cancel(request: Request, client_id: str, number: int, token: Token) -> dict[str, Any]:
    """Cancel a booking. Cancelling a cancelled session changes nothing."""

    def action(db: Session, ctx: enrollment.Context, client: Client) -> enrollment.Outcome:
        course = enrollment.active_course(client)
        current = next((s for s in course.sessions if s.number == number), None)
        if current is not None and current.status is SessionStatus.CANCELLED:
            return enrollment.Outcome(client=client, course=course, changed=False)
        return enrollment.cancel(db, ctx, client, number)

    return _change(request, token, client_id, action)


def _change(request: Request, token: ApiToken, client_id: str, action: Any) -> dict[str, Any]:
    runtime = _runtime(request)
    try:
        with runtime.transaction() as db:
            client = _client(db, client_id)
            outcome = action(db, _ctx(request, token), client)
            return _out(db, runtime, client, outcome.warnings)
    except NurtureError as exc:
        raise _refusal(exc) from None
