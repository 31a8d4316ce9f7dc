"""The web app through its routes: staff pages, unsubscribe, and the JSON API."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import zlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from sqlalchemy import func, select

from nurture import accounts, enrollment
from nurture.db.models import Client, Event, Message, Suppression, new_public_id
from nurture.errors import ValidationError
from nurture.tracking import Unsubscribe, email_hash
from nurture.transports import MemoryTransport
from nurture.web.staff import router as staff_router
from tests.conftest import snapshot
from tests.web_support import STAFF_EMAIL, Web, csrf_of, make_web

ANA = {
    "email": "ana@example.com",
    "name": "Ana Silva",
    "scar_types": ["atrophic", "pih"],
    "timezone": "Europe/London",
    "sessions": 5,
}


@pytest.fixture
def web(db_url: str) -> Iterator[Web]:
    """The app on a migrated database (SQLite file, then PostgreSQL)."""
    built = make_web(db_url)
    try:
        yield built
    finally:
        built.client.close()
        built.runtime.close()


def enrol_ana(web: Web) -> str:
    """Enrol Ana through the API; return her opaque id."""
    response = web.api("POST", "/api/v1/clients", json=ANA)
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


def count(web: Web, model: type) -> int:
    """Rows in a table."""
    with web.runtime.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


# --- staff pages -------------------------------------------------------------------------


def _staff_routes(web: Web) -> list[tuple[str, str]]:
    routes = []
    for route in staff_router.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/staff"):
            if route.path == "/staff/login":
                continue
            path = route.path.replace("{public_id}", "x").replace("{number}", "1")
            path = path.replace("{message_id}", "1")
            routes.extend((method, path) for method in route.methods)
    return routes


def test_every_staff_route_refuses_anonymous_users(web: Web) -> None:
    """Every staff page and action sends an anonymous visitor to sign in, writing nothing."""
    client_id = enrol_ana(web)
    before = snapshot(web.runtime.settings.database_url)
    routes = _staff_routes(web)
    assert len(routes) >= 12
    for method, template in routes:
        path = template.replace("/x", f"/{client_id}")
        response = web.client.request(
            method, path, data={"csrf": "x", "at": "2026-12-03T10:30"}, follow_redirects=False
        )
        assert response.status_code == 303, (method, path)
        assert response.headers["location"] == "/staff/login"
    assert snapshot(web.runtime.settings.database_url) == before


def test_sign_in_sets_a_protected_session_cookie(web: Web) -> None:
    """A right password signs in with an HttpOnly, SameSite, Secure session cookie."""
    page = web.client.get("/staff/login")
    response = web.client.post(
        "/staff/login",
        data={
            "csrf": csrf_of(page.text),
            "email": STAFF_EMAIL,
            "password": "correct horse battery",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith("nurture_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" in cookie
    assert web.client.get("/staff/clients").status_code == 200


def test_wrong_password_is_refused(web: Web) -> None:
    """A wrong password shows the form again with an error and no session."""
    page = web.client.get("/staff/login")
    response = web.client.post(
        "/staff/login",
        data={
            "csrf": csrf_of(page.text),
            "email": STAFF_EMAIL,
            "password": "wrong password!!",
        },
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert "do not match" in response.text
    assert web.client.get("/staff/clients", follow_redirects=False).status_code == 303


def test_sign_in_without_csrf_token_is_refused(web: Web) -> None:
    """The sign-in form itself needs its CSRF token."""
    web.client.get("/staff/login")
    response = web.client.post(
        "/staff/login",
        data={"email": STAFF_EMAIL, "password": "correct horse battery"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert web.client.get("/staff/clients", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session(web: Web) -> None:
    """After signing out the staff pages are closed again."""
    web.login()
    page = web.client.get("/staff/clients")
    web.client.post("/staff/logout", data={"csrf": csrf_of(page.text)})
    assert web.client.get("/staff/clients", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("token", ["", "forged"])
def test_form_post_without_valid_csrf_writes_nothing(web: Web, token: str) -> None:
    """A signed-in form POST with a missing or wrong CSRF token is refused, nothing written."""
    client_id = enrol_ana(web)
    web.login()
    before = snapshot(web.runtime.settings.database_url)
    for path, data in (
        ("/staff/enrol", {"email": "bo@example.com", "name": "Bo", "scar": "pih", "sessions": "5"}),
        (f"/staff/clients/{client_id}/sessions/1/book", {"at": "2026-12-03T10:30"}),
        (f"/staff/clients/{client_id}/withdraw", {}),
        (f"/staff/clients/{client_id}/erase", {"confirm": "ERASE"}),
    ):
        response = web.client.post(path, data={**data, "csrf": token}, follow_redirects=False)
        assert response.status_code == 403, path
    assert snapshot(web.runtime.settings.database_url) == before


def test_enrol_form_shows_errors_beside_fields_and_saves_nothing(web: Web) -> None:
    """Invalid enrolment input is shown beside each field and nothing is saved."""
    web.login()
    page = web.client.get("/staff/enrol")
    before = snapshot(web.runtime.settings.database_url)
    response = web.client.post(
        "/staff/enrol",
        data={
            "csrf": csrf_of(page.text),
            "email": "not-an-email",
            "name": "Bo\nX",
            "scar": "keloid",
            "timezone": "Mars/Base",
            "sessions": "40",
        },
    )
    assert response.status_code == 422
    for field in ("email", "name", "scar", "timezone", "sessions"):
        assert f'id="{field}-error"' in response.text
    assert 'value="not-an-email"' in response.text
    assert snapshot(web.runtime.settings.database_url) == before


def test_enrol_form_needs_confirmation_for_hypertrophic_only(web: Web) -> None:
    """Only-raised scars need the therapist's confirmation checkbox, which explains why."""
    web.login()
    page = web.client.get("/staff/enrol")
    assert "can make raised (hypertrophic) scars worse" in page.text
    data = {
        "csrf": csrf_of(page.text),
        "email": "hy@example.com",
        "name": "Hy",
        "scar": "hypertrophic",
        "sessions": "3",
    }
    refused = web.client.post("/staff/enrol", data=data)
    assert refused.status_code == 422
    assert 'id="scar-error"' in refused.text
    accepted = web.client.post(
        "/staff/enrol", data={**data, "confirm_hypertrophic": "yes"}, follow_redirects=False
    )
    assert accepted.status_code == 303
    assert count(web, Client) == 1


def test_staff_enrol_book_and_see_timeline(web: Web) -> None:
    """Enrolling and booking through the pages records facts and plans emails."""
    web.login()
    page = web.client.get("/staff/enrol")
    response = web.client.post(
        "/staff/enrol",
        data={
            "csrf": csrf_of(page.text),
            "email": "bo@example.com",
            "name": "Bo Okafor",
            "scar": ["atrophic", "pih"],
            "timezone": "America/New_York",
            "sessions": "5",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    client_page = web.client.get(response.headers["location"])
    assert "Bo Okafor" in client_page.text
    booked = web.client.post(
        f"{response.headers['location']}/sessions/1/book",
        data={"csrf": csrf_of(client_page.text), "at": "2026-12-10T10:30"},
    )
    assert "prepare" in booked.text
    assert "Thu 10 Dec 2026 10:30 EST" in booked.text
    with web.runtime.transaction() as db:
        actors = {e.actor for e in db.scalars(select(Event))}
    assert actors == {f"staff:{STAFF_EMAIL}"}


def test_staff_action_errors_are_shown_on_the_page(web: Web) -> None:
    """A refused action (out of order) shows its message and changes nothing."""
    client_id = enrol_ana(web)
    web.login()
    page = web.client.get(f"/staff/clients/{client_id}")
    before = snapshot(web.runtime.settings.database_url)
    response = web.client.post(
        f"/staff/clients/{client_id}/sessions/2/book",
        data={"csrf": csrf_of(page.text), "at": "2026-12-10T10:30"},
    )
    assert "book session 1 first" in response.text
    assert snapshot(web.runtime.settings.database_url) == before


def test_client_list_searches(web: Web) -> None:
    """The clients list shows progress and filters by search text."""
    enrol_ana(web)
    web.api("POST", "/api/v1/clients", json={**ANA, "email": "jo@example.com", "name": "Jo Marsh"})
    web.login()
    found = web.client.get("/staff/clients", params={"q": "marsh"})
    assert "Jo Marsh" in found.text
    assert "Ana Silva" not in found.text
    assert "0 of 5" in found.text


def test_export_and_erase(web: Web) -> None:
    """Export returns the client's data; erase removes it, cancels emails, keeps a hash only."""
    client_id = enrol_ana(web)
    web.login()
    exported = web.client.get(f"/staff/clients/{client_id}/export")
    data = json.loads(exported.text)
    assert data["client"]["email"] == "ana@example.com"
    assert data["courses"][0]["scar_types"] == ["atrophic", "pih"]
    assert {e["step"] for e in data["emails"]} >= {"welcome"}
    page = web.client.get(f"/staff/clients/{client_id}")
    web.client.post(
        f"/staff/clients/{client_id}/erase", data={"csrf": csrf_of(page.text), "confirm": "ERASE"}
    )
    dump = json.dumps(snapshot(web.runtime.settings.database_url), default=str)
    assert "ana@example.com" not in dump
    assert "Ana Silva" not in dump
    assert "atrophic" not in dump
    with web.runtime.transaction() as db:
        assert (
            db.scalar(
                select(Suppression).where(Suppression.email_hash == email_hash("ana@example.com"))
            )
            is not None
        )
    again = web.api("POST", "/api/v1/clients", json=ANA)
    assert again.status_code == 201
    assert any("do-not-email" in w for w in again.json()["warnings"])
    assert again.json()["timeline"] == []


def test_pending_email_can_be_viewed(web: Web) -> None:
    """Staff can open a pending email and see how it will look."""
    client_id = enrol_ana(web)
    web.login()
    page = web.client.get(f"/staff/clients/{client_id}")
    link = re.search(r'href="/staff/clients/([^"]+/emails/\d+)"', page.text)
    assert link is not None
    link = link.group(1)
    view = web.client.get(f"/staff/clients/{link}")
    assert view.status_code == 200
    assert "Not sent" in view.text
    body = web.client.get(f"/staff/clients/{link}/body")
    assert "sandbox" in body.headers["content-security-policy"]
    assert "Ana" in body.text


# --- unsubscribe --------------------------------------------------------------------------


def _unsubscribe_path(web: Web, client_id: str) -> str:
    return urlsplit(web.runtime.unsubscribe.url(client_id)).path.removeprefix("/nurture")


def test_unsubscribe_get_shows_address_and_changes_nothing(web: Web) -> None:
    """The link opens a noindex page naming the address; a GET writes nothing."""
    client_id = enrol_ana(web)
    before = snapshot(web.runtime.settings.database_url)
    page = TestClient(web.client.app).get(_unsubscribe_path(web, client_id))
    assert page.status_code == 200
    assert "ana@example.com" in page.text
    assert 'name="robots" content="noindex' in page.text
    assert page.headers["x-robots-tag"].startswith("noindex")
    assert snapshot(web.runtime.settings.database_url) == before


def test_unsubscribe_confirm_is_idempotent(web: Web) -> None:
    """Confirming unsubscribes and cancels pending emails; confirming again is harmless."""
    client_id = enrol_ana(web)
    path = _unsubscribe_path(web, client_id)
    browser = TestClient(web.client.app)
    first = browser.post(path, data={"confirm": "yes"})
    second = browser.post(path, data={"confirm": "yes"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert "You are unsubscribed" in second.text
    got = web.api("GET", f"/api/v1/clients/{client_id}").json()
    assert got["status"] == "unsubscribed"
    assert "pending" not in {e["status"] for e in got["timeline"]}
    with web.runtime.transaction() as db:
        kinds = [e.kind.value for e in db.scalars(select(Event))]
    assert kinds.count("unsubscribed") == 1


def test_one_click_post_works_without_cookies(web: Web) -> None:
    """RFC 8058 one-click: no cookies, no CSRF, 200 and no redirect."""
    client_id = enrol_ana(web)
    bare = TestClient(web.client.app)
    response = bare.post(
        _unsubscribe_path(web, client_id),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert not bare.cookies
    assert web.api("GET", f"/api/v1/clients/{client_id}").json()["status"] == "unsubscribed"


@pytest.mark.parametrize("mangle", ["tamper", "truncate", "garbage", "foreign", "huge"])
def test_bad_unsubscribe_tokens_get_the_same_page_and_write_nothing(web: Web, mangle: str) -> None:
    """Tampered, truncated, garbage or foreign tokens all get one plain error page."""
    client_id = enrol_ana(web)
    good = _unsubscribe_path(web, client_id).rsplit("/", 1)[1]
    bad = {
        "tamper": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "truncate": good[: len(good) // 2],
        "garbage": "%00%ff..--",
        "foreign": Unsubscribe("another-clinic-key-" + "x" * 40, "https://x").token(client_id),
        "huge": "a" * 5000,
    }[mangle]
    before = snapshot(web.runtime.settings.database_url)
    for method in ("GET", "POST"):
        response = TestClient(web.client.app).request(
            method, f"/unsubscribe/{bad}", data={"confirm": "yes"}
        )
        assert response.status_code == 400
        assert "This link is not valid" in response.text
        assert "Traceback" not in response.text
    assert snapshot(web.runtime.settings.database_url) == before


def test_token_carries_no_address_or_health_data(web: Web) -> None:
    """The unsubscribe token reveals neither the address nor the scar types."""
    client_id = enrol_ana(web)
    token = web.runtime.unsubscribe.token(client_id)
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    for secret in ("ana", "example.com", "atrophic", "pih"):
        assert secret not in decoded.lower()
        assert secret not in token.lower()


_KEY = "clinic-signing-key-" + "k" * 32


def test_tokens_are_those_itsdangerous_writes_for_every_public_id() -> None:
    """nurture writes the token itself (no zlib attempt); for the ids it issues, byte for byte."""
    ours = Unsubscribe(_KEY, "https://clinic.example")
    theirs = URLSafeSerializer(_KEY, salt="nurture.unsubscribe.v1")
    for _ in range(500):
        public_id = new_public_id()
        assert ours.token(public_id) == theirs.dumps(public_id)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_token_reads_back_and_itsdangerous_accepts_it(public_id: str) -> None:
    """Whatever the id (repetitive ones itsdangerous would compress too), the token reads back."""
    ours = Unsubscribe(_KEY, "https://clinic.example")
    token = ours.token(public_id)
    assert ours.read(token) == public_id
    assert URLSafeSerializer(_KEY, salt="nurture.unsubscribe.v1").loads(token) == public_id
    assert ours.read(URLSafeSerializer(_KEY, salt="nurture.unsubscribe.v1").dumps(public_id)) == (
        public_id
    )


# --- JSON API ---------------------------------------------------------------------------------


def test_api_refuses_missing_and_wrong_tokens(web: Web) -> None:
    """Without a valid bearer token the API answers 401 JSON and writes nothing."""
    before = snapshot(web.runtime.settings.database_url)
    for headers in ({}, {"Authorization": "Bearer nrt_wrong"}, {"Authorization": "Basic eA=="}):
        response = web.client.post("/api/v1/clients", json=ANA, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["message"]
        assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(web.runtime.settings.database_url) == before


def test_api_enrol_answers_201_with_opaque_id(web: Web) -> None:
    """POST /clients enrols and returns an opaque id, progress and planned emails."""
    response = web.api("POST", "/api/v1/clients", json=ANA)
    assert response.status_code == 201
    body = response.json()
    assert body["id"] not in ("1", 1)
    assert len(body["id"]) >= 16
    assert (body["status"], body["sessions_planned"]) == ("active", 5)
    assert "welcome" in {e["step"] for e in body["timeline"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "bad@@x"}, "email"),
        ({"scar_types": ["keloid"]}, "scar"),
        ({"scar_types": ["hypertrophic"]}, "scar"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"sessions": 0}, "sessions"),
        ({"name": "A\r\nBcc: x@evil.com"}, "name"),
        ({"sessions": "five"}, "sessions"),
        ({"extra": 1}, "extra"),
    ],
)
def test_api_validation_errors_name_the_field(
    web: Web, change: dict[str, object], field: str
) -> None:
    """Bad enrolment input is a 422 naming the field, with nothing written."""
    before = snapshot(web.runtime.settings.database_url)
    response = web.api("POST", "/api/v1/clients", json={**ANA, **change})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert snapshot(web.runtime.settings.database_url) == before


def test_api_booking_twice_changes_nothing(web: Web) -> None:
    """The same booking event sent twice records one fact."""
    client_id = enrol_ana(web)
    first = web.api(
        "PUT", f"/api/v1/clients/{client_id}/sessions/1", json={"at": "2026-12-10T10:30"}
    )
    second = web.api(
        "PUT", f"/api/v1/clients/{client_id}/sessions/1", json={"at": "2026-12-10T10:30"}
    )
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["sessions"][0]["status"] == "booked"
    assert count(web, Event) == 2


def test_api_session_lifecycle(web: Web) -> None:
    """Book, reschedule, cancel (twice) and complete through the API."""
    client_id = enrol_ana(web)
    base = f"/api/v1/clients/{client_id}/sessions"
    web.api("PUT", f"{base}/1", json={"at": "2026-12-10T10:30"})
    moved = web.api("PUT", f"{base}/1", json={"at": "2026-12-12T10:30"}).json()
    assert moved["sessions"][0]["at"] == "2026-12-12T10:30:00+00:00"
    assert web.api("DELETE", f"{base}/1").json()["sessions"][0]["status"] == "cancelled"
    assert web.api("DELETE", f"{base}/1").status_code == 200
    web.api("PUT", f"{base}/1", json={"at": "2026-11-20T10:30"})
    done = web.api("POST", f"{base}/1/complete").json()
    assert done["sessions_completed"] == 1
    assert web.api("POST", f"{base}/1/complete").status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [
        ("PUT", "/sessions/9", {"at": "2026-12-10T10:30"}, 422),
        ("PUT", "/sessions/1", {"at": "2026-02-30T10:30"}, 422),
        ("PUT", "/sessions/2", {"at": "2026-12-10T10:30"}, 409),
        ("POST", "/sessions/1/complete", None, 409),
        ("DELETE", "/sessions/1", None, 409),
    ],
)
def test_api_session_errors_are_4xx_json(
    web: Web, method: str, suffix: str, body: dict[str, str] | None, status: int
) -> None:
    """Impossible session changes are refused with JSON, nothing written."""
    client_id = enrol_ana(web)
    before = snapshot(web.runtime.settings.database_url)
    response = web.api(method, f"/api/v1/clients/{client_id}{suffix}", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert snapshot(web.runtime.settings.database_url) == before


def test_api_unknown_client_is_404(web: Web) -> None:
    """An unknown id is a 404 JSON answer."""
    response = web.api("GET", "/api/v1/clients/nope")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no such client"


def test_idempotency_key_replays_the_first_answer(web: Web) -> None:
    """A retried enrolment with the same Idempotency-Key enrols once and answers the same."""
    headers = {"Idempotency-Key": "booking-123"}
    first = web.api("POST", "/api/v1/clients", json=ANA, headers=headers)
    second = web.api("POST", "/api/v1/clients", json=ANA, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert count(web, Client) == 1
    other = web.api("POST", "/api/v1/clients", json={**ANA, "name": "Other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["field"] == "Idempotency-Key"


def test_revoked_token_is_refused(web: Web) -> None:
    """After `api-token revoke` the token no longer works."""
    with web.runtime.transaction() as db:
        accounts.revoke_token(db, "booking-system", web.runtime.now())
    assert web.api("GET", "/api/v1/clients/x").status_code == 401


def test_openapi_schema_is_served(web: Web) -> None:
    """The OpenAPI schema documents the API routes and their errors."""
    schema = web.client.get("/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/clients/{client_id}/sessions/{number}",
        "/api/v1/clients/{client_id}/sessions/{number}/complete",
    }
    assert "422" in schema["paths"]["/api/v1/clients"]["post"]["responses"]
    assert not any(p.startswith("/staff") or p.startswith("/unsubscribe") for p in schema["paths"])


def test_enrolment_via_api_and_cli_share_validation(web: Web) -> None:
    """The API refuses exactly what enrollment.check_enrolment refuses."""
    with pytest.raises(ValidationError, match="scar"):
        enrollment.check_enrolment(
            email="a@example.com",
            name="A",
            scars=["keloid"],
            timezone=None,
            sessions=5,
            confirm_hypertrophic=False,
            default_timezone="UTC",
        )
    assert (
        web.api("POST", "/api/v1/clients", json={**ANA, "scar_types": ["keloid"]}).status_code
        == 422
    )


def test_sent_email_is_shown_exactly_as_sent(web: Web) -> None:
    """After delivery the staff page shows the stored copy, not a fresh render."""
    client_id = enrol_ana(web)
    transport = MemoryTransport()
    assert web.runtime.dispatcher(transport).tick().sent == 1
    web.login()
    page = web.client.get(f"/staff/clients/{client_id}")
    link = re.search(r'href="/staff/clients/([^"]+/emails/\d+)"', page.text)
    assert link is not None
    view = web.client.get(f"/staff/clients/{link.group(1)}")
    assert "Exactly as sent." in view.text
    body = web.client.get(f"/staff/clients/{link.group(1)}/body")
    sent = email.message_from_bytes(transport.sent[0].data, policy=email.policy.default)
    html = sent.get_body(("html",))
    assert html is not None
    assert body.text == html.get_content()
    with web.runtime.transaction() as db:
        message = db.scalars(select(Message).where(Message.sent_body.is_not(None))).one()
        assert message.sent_body is not None
        assert message.sent_body.startswith(b"\x28\xb5\x2f\xfd")  # a Zstandard frame
        assert len(message.sent_body) < len(transport.sent[0].data) / 2
        message.sent_body = zlib.compress(transport.sent[0].data)  # as versions before kept it
    assert web.client.get(f"/staff/clients/{link.group(1)}/body").text == body.text
