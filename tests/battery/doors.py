"""The front doors hostile input comes through, behind one small interface.

``CliDoor`` drives `nurture enroll` and `nurture book` in-process (argv can
carry anything, NUL included); arguments follow ``--`` so that a value such
as ``-h`` is data, as it would be for any careful caller.  ``ApiDoor`` sends
the same two requests to the JSON API of the real app, with a bearer token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from tests.conftest import Cli, Result


@dataclass(frozen=True)
class Answer:
    """What a front door said: accepted, or the error a person reads."""

    accepted: bool
    error: str = ""
    #: How the door refused: "input" (its own check) or "usage" (malformed request).
    kind: str = ""


class FrontDoor(Protocol):
    """Enrolment and booking, as a person or a booking system calls them."""

    name: str

    def enroll(
        self, email: str, name: str, scars: list[str], timezone: str | None, sessions: str
    ) -> Answer:
        """Enrol a client."""

    def book(self, email: str, session: str, when: str) -> Answer:
        """Book (or move) a session at a local date-time."""


@dataclass
class CliDoor:
    """The command line, run in-process against the test database."""

    cli: Cli
    now: str
    env: dict[str, str] = field(default_factory=dict)
    name: str = "cli"

    def enroll(
        self, email: str, name: str, scars: list[str], timezone: str | None, sessions: str
    ) -> Answer:
        """`nurture enroll --name NAME --sessions N --scar S... [--timezone Z] -- EMAIL`."""
        args = ["enroll", "--name", name, "--sessions", sessions]
        for scar in scars:
            args += ["--scar", scar]
        if timezone is not None:
            args += ["--timezone", timezone]
        return _answer(self.cli(*args, "--", email, now=self.now, env=self.env))

    def book(self, email: str, session: str, when: str) -> Answer:
        """`nurture book -- EMAIL SESSION WHEN`."""
        return _answer(self.cli("book", "--", email, session, when, now=self.now, env=self.env))


def _answer(result: Result) -> Answer:
    if result.code == 0:
        return Answer(True)
    kind = "input" if result.code == 1 else "usage"
    return Answer(False, result.err, kind)


@dataclass
class ApiDoor:
    """The JSON API (`POST /api/v1/clients`, `PUT .../sessions/{n}`) on the test database."""

    cli: Cli
    env: dict[str, str] = field(default_factory=dict)
    name: str = "api"
    _ids: dict[str, str] = field(default_factory=dict)
    _web: Any = None

    def __post_init__(self) -> None:
        self._client()  # the staff account and token exist before any snapshot is taken

    def _client(self) -> Any:
        if self._web is None:
            from tests.web_support import make_web  # noqa: PLC0415  (web deps only here)

            self._web = make_web(self.cli.url, **self.env)
        return self._web

    def close(self) -> None:
        """Release the app's database connections."""
        if self._web is not None:
            self._web.client.close()
            self._web.runtime.close()

    def enroll(
        self, email: str, name: str, scars: list[str], timezone: str | None, sessions: str
    ) -> Answer:
        """`POST /api/v1/clients` with the fields as a booking system would send them."""
        body: dict[str, Any] = {"email": email, "name": name, "scar_types": scars}
        if timezone is not None:
            body["timezone"] = timezone
        if sessions.strip():
            body["sessions"] = sessions
        answer, data = _api(self._client().api("POST", "/api/v1/clients", json=body))
        if answer.accepted:
            self._ids[email] = data["id"]
        return answer

    def book(self, email: str, session: str, when: str) -> Answer:
        """`PUT /api/v1/clients/{id}/sessions/{n}` with `{"at": when}`."""
        client_id = self._ids.get(email, "unknown")
        path = f"/api/v1/clients/{quote(client_id, safe='')}/sessions/{quote(session, safe='')}"
        answer, _ = _api(self._client().api("PUT", path, json={"at": when}))
        return answer


def _api(response: Any) -> tuple[Answer, Any]:
    assert response.status_code < 500, response.text
    data = response.json()
    if response.status_code < 300:
        return Answer(True), data
    error = data["error"]
    field = f"{error['field']}: " if error.get("field") else ""
    return Answer(False, f"error: {field}{error['message']}", "input"), data
