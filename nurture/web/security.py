"""Staff sign-in sessions and CSRF protection.

The session is a signed, timestamped cookie (HttpOnly, SameSite=Lax, Secure
when the public URL is https) naming the staff member and a random nonce.
Every form carries a CSRF token derived from a nonce by HMAC: the session's
nonce once signed in, a separate signed pre-session cookie's nonce on the
sign-in page.  A POST whose token does not match writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_COOKIE = "nurture_session"
PRE_COOKIE = "nurture_pre"
SESSION_MAX_AGE = 12 * 3600


@dataclass(frozen=True)
class StaffSession:
    """Who is signed in."""

    staff_id: int
    email: str
    nonce: str


class Guard:
    """Signs sessions and checks CSRF tokens with the clinic's key."""

    def __init__(self, key: str, secure: bool) -> None:
        self._key = key.encode()
        self._sessions = URLSafeTimedSerializer(key, salt="nurture.staff.session")
        self._pre = URLSafeTimedSerializer(key, salt="nurture.staff.pre")
        self.secure = secure

    def session(self, request: Request) -> StaffSession | None:
        """The signed-in staff member, if the cookie is valid and fresh."""
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._sessions.loads(raw, max_age=SESSION_MAX_AGE)
        except (BadSignature, SignatureExpired):
            return None
        if not isinstance(data, dict):
            return None
        try:
            return StaffSession(int(data["id"]), str(data["email"]), str(data["n"]))
        except (KeyError, TypeError, ValueError):
            return None

    def sign_in(self, response: Response, staff_id: int, email: str) -> None:
        """Set a fresh session cookie (a new nonce, so old CSRF tokens die)."""
        value = self._sessions.dumps({"id": staff_id, "email": email, "n": secrets.token_hex(16)})
        self._set(response, SESSION_COOKIE, value)
        response.delete_cookie(PRE_COOKIE, path="/")

    def sign_out(self, response: Response) -> None:
        """Forget the session."""
        response.delete_cookie(SESSION_COOKIE, path="/")

    def pre_nonce(self, request: Request, response: Response) -> str:
        """The anonymous visitor's nonce, set as a cookie if missing."""
        raw = request.cookies.get(PRE_COOKIE)
        if raw:
            try:
                value = self._pre.loads(raw, max_age=SESSION_MAX_AGE)
                if isinstance(value, str):
                    return value
            except (BadSignature, SignatureExpired):
                pass
        nonce = secrets.token_hex(16)
        self._set(response, PRE_COOKIE, self._pre.dumps(nonce))
        return nonce

    def _pre_from_request(self, request: Request) -> str | None:
        raw = request.cookies.get(PRE_COOKIE)
        if not raw:
            return None
        try:
            value = self._pre.loads(raw, max_age=SESSION_MAX_AGE)
        except (BadSignature, SignatureExpired):
            return None
        return value if isinstance(value, str) else None

    def csrf_token(self, nonce: str) -> str:
        """The form token for a nonce."""
        return hmac.new(self._key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: str | None) -> bool:
        """True when ``submitted`` matches the session's (or pre-session's) token."""
        if not submitted:
            return False
        staff = self.session(request)
        nonce = staff.nonce if staff else self._pre_from_request(request)
        if nonce is None:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), submitted)

    def _set(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=self.secure,
            path="/",
        )
