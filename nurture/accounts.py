"""Staff accounts (argon2-hashed passwords) and API tokens (stored as hashes)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import validation
from nurture.db.models import ApiToken, StaffUser
from nurture.errors import ConflictError, NotFoundError, ValidationError

_hasher = PasswordHasher()
MIN_PASSWORD = 12
TOKEN_PREFIX = "nrt_"  # noqa: S105  (a public prefix that makes tokens recognisable)
#: Verified against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("not-a-real-password-" + secrets.token_hex(8))


def add_staff(db: Session, email: str, password: str, now: datetime) -> StaffUser:
    """Create a staff account, or set a new password for an existing one."""
    address = validation.clean_email(email)
    if len(password) < MIN_PASSWORD:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD} characters long")
    user = db.scalar(select(StaffUser).where(StaffUser.email == address))
    if user is None:
        user = StaffUser(email=address, password_hash="", created_at=now)
        db.add(user)
    user.password_hash = _hasher.hash(password)
    user.disabled_at = None
    db.flush()
    return user


def check_login(db: Session, email: str, password: str, now: datetime) -> StaffUser | None:
    """The staff member if the password is right, else None (same time either way)."""
    try:
        address = validation.clean_email(email)
    except ValidationError:
        address = ""
    user = db.scalar(select(StaffUser).where(StaffUser.email == address)) if address else None
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = now
    return user


def token_hash(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Session, name: str, now: datetime) -> str:
    """Make a token called ``name``; return it (the only time it is shown)."""
    label = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", label):
        raise ValidationError("name", "use 1-64 letters, digits, '.', '_' or '-'")
    if db.scalar(select(ApiToken.id).where(ApiToken.name == label)) is not None:
        raise ConflictError(f"a token called {label!r} exists; revoke it or pick another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(name=label, token_hash=token_hash(token), created_at=now))
    db.flush()
    return token


def revoke_token(db: Session, name: str, now: datetime) -> None:
    """Revoke the token called ``name``."""
    found = db.scalar(select(ApiToken).where(ApiToken.name == name.strip()))
    if found is None:
        raise NotFoundError(f"no API token called {name!r}")
    if found.revoked_at is None:
        found.revoked_at = now


def authenticate_token(db: Session, token: str, now: datetime) -> ApiToken | None:
    """The live token matching ``token``, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    found = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if found is None or found.revoked_at is not None:
        return None
    found.last_used_at = now
    return found
