"""Build the FastAPI application around one ``Runtime``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.templating import Jinja2Templates

from nurture import __version__
from nurture.runtime import Runtime
from nurture.web import api, public, staff
from nurture.web.security import Guard

log = logging.getLogger(__name__)
PAGES = Path(__file__).parent / "templates"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; frame-src 'self'; base-uri 'none'"
    ),
}


def _allowed_methods(path: str) -> list[str]:
    """Every method some route accepts at ``path`` (for a 405's Allow header)."""
    methods: set[str] = set()
    for router in (api.router, staff.router, public.router):
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path_regex.match(path):
                methods |= route.methods or set()
    return sorted(methods)


def create_app(runtime: Runtime) -> FastAPI:
    """The web app: staff pages under /staff, the API under /api/v1, /unsubscribe."""
    runtime.ready()
    app = FastAPI(
        title="nurture",
        version=__version__,
        description=(
            "JSON API for booking systems: enrol clients and record their sessions. "
            "Authenticate with `Authorization: Bearer <token>` "
            "(create one with `nurture api-token create NAME`)."
        ),
        docs_url="/api/docs",
        redoc_url=None,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PAGES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app.state.runtime = runtime
    app.state.templates = Jinja2Templates(env=env)
    app.state.guard = Guard(
        runtime.settings.signing_key(), secure=runtime.settings.base_url.startswith("https://")
    )
    app.include_router(public.router)
    app.include_router(staff.router)
    app.include_router(api.router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if not request.url.path.startswith("/api/docs"):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request.url.path))
        if request.url.path.startswith("/api/"):
            message = exc.detail if isinstance(exc.detail, str) else "request refused"
            return JSONResponse(
                {"error": {"field": None, "message": message}},
                status_code=exc.status_code,
                headers=headers,
            )
        page = app.state.templates.get_template("error.html").render(
            title="Not found" if exc.status_code == 404 else "Something is not right",
            message=exc.detail if isinstance(exc.detail, str) else "",
        )
        return HTMLResponse(page, status_code=exc.status_code, headers=headers)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    api.install_error_handlers(app)
    app.add_exception_handler(staff.LoginRequired, staff.login_redirect)
    app.add_exception_handler(staff.CsrfFailed, staff.csrf_failed)
    return app
