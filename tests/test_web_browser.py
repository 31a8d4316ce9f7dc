"""The web app in a real headless chromium: staff work and a client's unsubscribe."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from nurture import accounts, enrollment
from nurture.db.models import Client
from nurture.transports import MemoryTransport
from nurture.web.app import create_app
from tests.smtp_sink import free_port
from tests.web_support import STAFF_EMAIL, STAFF_PASSWORD, make_runtime

pytestmark = pytest.mark.browser


@dataclass
class Live:
    """A real server on loopback and its runtime."""

    url: str
    runtime: Any


@pytest.fixture
def live(sqlite_url: str) -> Iterator[Live]:
    """The web app served by uvicorn on a free loopback port."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runtime = make_runtime(sqlite_url, base_url=base)
    runtime.ready()
    with runtime.transaction() as db:
        accounts.add_staff(db, STAFF_EMAIL, STAFF_PASSWORD, runtime.now())
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield Live(base, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.close()


def _due_of(page: Any, step: str) -> str:
    row = page.locator("#timeline tr", has_text=step).first
    return str(row.locator("td").nth(3).inner_text())


def test_staff_signs_in_enrols_books_and_sees_emails_move(
    browser: Any, live: Live, artifacts: Path
) -> None:
    """Sign in, enrol, book, reschedule: the timeline's pending emails follow the session."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live.url}/staff/clients")
    assert page.url.endswith("/staff/login")
    page.fill("#email", STAFF_EMAIL)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.click("text=Enrol a client")
    page.fill("#email", "ana@example.com")
    page.fill("#name", "Ana Silva")
    page.check("input[value=atrophic]")
    page.check("input[value=pih]")
    page.fill("#timezone", "Europe/London")
    page.screenshot(path=str(artifacts / "enrol-form.png"), full_page=True)
    page.click("button:has-text('Enrol')")
    assert page.locator("h1").inner_text() == "Ana Silva"
    page.fill("#session-1 input[name=at]", "2026-12-10T10:30")
    page.click("#session-1 button:has-text('Book')")
    assert "Thu 10 Dec 2026 10:30" in page.locator("#session-1").inner_text()
    before = _due_of(page, "prepare")
    assert before.startswith("2026-12-06 10:30")
    page.fill("#session-1 input[name=at]", "2026-12-17T14:00")
    page.click("#session-1 button:has-text('Reschedule')")
    after = _due_of(page, "prepare")
    assert after.startswith("2026-12-13 14:00")
    page.screenshot(path=str(artifacts / "client-timeline.png"), full_page=True)
    page.close()


def test_staff_sees_errors_beside_fields(browser: Any, live: Live, artifacts: Path) -> None:
    """A bad enrolment shows each error next to its field and saves nothing."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(f"{live.url}/staff/login")
    page.fill("#email", STAFF_EMAIL)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live.url}/staff/enrol")
    page.fill("#email", "not an email")
    page.fill("#name", "Bo")
    page.check("input[value=hypertrophic]")
    page.click("button:has-text('Enrol')")
    assert page.locator("#email-error").is_visible()
    assert "raised" in page.locator("#scar-error").inner_text()
    page.screenshot(path=str(artifacts / "enrol-errors-phone.png"), full_page=True)
    with live.runtime.transaction() as db:
        assert db.scalar(select(Client.id)) is None
    page.close()


def test_client_unsubscribes_from_a_real_email(browser: Any, live: Live, artifacts: Path) -> None:
    """The List-Unsubscribe link of a sent email opens a page; confirming unsubscribes."""
    runtime = live.runtime
    request = enrollment.check_enrolment(
        email="ana@example.com",
        name="Ana Silva",
        scars=["atrophic"],
        timezone="Europe/London",
        sessions=5,
        confirm_hypertrophic=False,
        default_timezone="Europe/London",
    )
    with runtime.transaction() as db:
        enrollment.enroll(db, runtime.context(), request)
    transport = MemoryTransport()
    assert runtime.dispatcher(transport).tick().sent == 1
    sent = email.message_from_bytes(transport.sent[0].data, policy=email.policy.default)
    link = str(sent["List-Unsubscribe"]).strip("<>")
    assert link.startswith(live.url)
    page = browser.new_page(viewport={"width": 375, "height": 700})
    page.goto(link)
    assert "ana@example.com" in page.inner_text("body")
    page.screenshot(path=str(artifacts / "unsubscribe-confirm.png"), full_page=True)
    with runtime.transaction() as db:
        assert enrollment.find_client(db, "ana@example.com").unsubscribed_at is None
    page.click("button:has-text('Unsubscribe')")
    assert "You are unsubscribed" in page.inner_text("#done")
    page.screenshot(path=str(artifacts / "unsubscribe-done.png"), full_page=True)
    with runtime.transaction() as db:
        assert enrollment.find_client(db, "ana@example.com").unsubscribed_at is not None
    page.close()
