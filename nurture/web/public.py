"""The public unsubscribe page behind every email's link.

GET only shows a page (link scanners must not unsubscribe anyone); a POST
confirms.  The RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``,
no cookies, no CSRF token) unsubscribes at once and answers 200.  Any bad
token gets the same page and writes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from nurture import enrollment
from nurture.errors import InvalidTokenError, NotFoundError
from nurture.runtime import Runtime

router = APIRouter(include_in_schema=False)
NOINDEX = {"X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store"}
MAX_TOKEN = 300


def _page(request: Request, name: str, status: int = 200, **context: object) -> HTMLResponse:
    html = request.app.state.templates.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=NOINDEX)


def _invalid(request: Request) -> HTMLResponse:
    return _page(request, "unsubscribe_invalid.html", 400)


def _client_id(runtime: Runtime, token: str) -> str:
    if len(token) > MAX_TOKEN:
        raise InvalidTokenError("too long")
    return runtime.unsubscribe.read(token)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def show(request: Request, token: str) -> Response:
    """Say which address will stop receiving emails, and ask to confirm."""
    runtime: Runtime = request.app.state.runtime
    try:
        public_id = _client_id(runtime, token)
        with runtime.transaction() as db:
            client = enrollment.find_client_by_id(db, public_id)
            email, done = client.email, client.unsubscribed_at is not None
    except (InvalidTokenError, NotFoundError):
        return _invalid(request)
    return _page(
        request,
        "unsubscribe.html",
        email=email,
        done=done,
        clinic=runtime.settings.clinic_name,
        action=request.url.path,
    )


@router.post("/unsubscribe/{token}")
async def confirm(request: Request, token: str) -> Response:
    """Unsubscribe: from the confirm button or a mail client's one-click POST."""
    runtime: Runtime = request.app.state.runtime
    body = (await request.body())[:2000]
    one_click = b"List-Unsubscribe=One-Click" in body
    try:
        public_id = _client_id(runtime, token)
        with runtime.transaction() as db:
            client = enrollment.find_client_by_id(db, public_id)
            ctx = runtime.context()
            enrollment.unsubscribe(
                db, _as(ctx, "client:one-click" if one_click else "client:link"), client
            )
            email = client.email
    except (InvalidTokenError, NotFoundError):
        if one_click:
            return PlainTextResponse("This unsubscribe link is not valid.", 400, headers=NOINDEX)
        return _invalid(request)
    if one_click:
        return PlainTextResponse("Unsubscribed.", 200, headers=NOINDEX)
    return _page(
        request,
        "unsubscribe.html",
        email=email,
        done=True,
        clinic=runtime.settings.clinic_name,
        action=request.url.path,
    )


def _as(ctx: enrollment.Context, actor: str) -> enrollment.Context:
    from dataclasses import replace  # noqa: PLC0415

    return replace(ctx, actor=actor)
