"""Helpers for web tests: an app on a real database, signed-in clients, tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from nurture import accounts
from nurture.config import load_settings
from nurture.runtime import Runtime
from nurture.web.app import create_app
from tests.conftest import TEST_SECRET

NOW = "2026-11-30T10:00:00+00:00"
STAFF_EMAIL = "reception@clinic.example.com"
STAFF_PASSWORD = "correct horse battery"


def make_runtime(
    url: str, base_url: str = "https://clinic.example.com/nurture", **env: str
) -> Runtime:
    """A runtime on ``url`` with a fixed clock."""
    settings = load_settings(
        environ={
            "NURTURE_DATABASE_URL": url,
            "NURTURE_NOW": NOW,
            "NURTURE_SECRET_KEY": TEST_SECRET,
            "NURTURE_BASE_URL": base_url,
            **env,
        }
    )
    return Runtime(settings, actor="test")


@dataclass
class Web:
    """A test client on the app plus what tests need to drive it."""

    runtime: Runtime
    client: TestClient
    token: str

    def login(self, client: TestClient | None = None) -> TestClient:
        """Sign in through the form; return the (cookie-carrying) client."""
        c = client or self.client
        page = c.get("/staff/login")
        c.post(
            "/staff/login",
            data={"csrf": csrf_of(page.text), "email": STAFF_EMAIL, "password": STAFF_PASSWORD},
            follow_redirects=False,
        )
        return c

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the JSON API with the bearer token."""
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in page"
    return match.group(1)


def make_web(url: str, **env: str) -> Web:
    """Build the app on a migrated database with one staff account and one API token."""
    runtime = make_runtime(url, **env)
    runtime.ready()
    with runtime.transaction() as db:
        accounts.add_staff(db, STAFF_EMAIL, STAFF_PASSWORD, runtime.now())
        token = accounts.create_token(db, "booking-system", runtime.now())
    app = create_app(runtime)
    return Web(runtime, TestClient(app, base_url="https://testserver"), token)
