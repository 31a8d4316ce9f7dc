"""Unsubscribe tokens and the do-not-email list.

A token is the client's opaque public id signed with the clinic's key: it
carries no address and no health data, and a tampered, truncated or foreign
token is refused.  Suppressed addresses are kept only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from nurture.errors import InvalidTokenError

_SALT = "nurture.unsubscribe.v1"


def email_hash(email: str) -> str:
    """The suppression key of an address: a SHA-256 of its normalised form."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class Unsubscribe:
    """Makes and reads the tokens in unsubscribe links."""

    def __init__(self, key: str, base_url: str) -> None:
        self._signer = URLSafeSerializer(key, salt=_SALT)
        signer = self._signer.make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep: bytes = signer.sep
        self._base_url = base_url.rstrip("/")

    def token(self, public_id: str) -> str:
        """The signed token for one client, in itsdangerous's URL-safe format.

        Written here rather than by ``URLSafeSerializer.dumps``, which first
        tries zlib on the payload (two thirds of its cost, once per email) and
        never gains on a random public id; the key, digest and separator are
        itsdangerous's own, and ``read`` (itsdangerous) accepts the result.
        """
        payload = base64_encode(json.dumps(public_id, separators=(",", ":")))
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + base64_encode(mac.digest())).decode("ascii")

    def url(self, public_id: str) -> str:
        """The absolute https link a client clicks (or a mail client POSTs to)."""
        return f"{self._base_url}/unsubscribe/{quote(self.token(public_id), safe='')}"

    def read(self, token: str) -> str:
        """The public id inside a valid token; ``InvalidTokenError`` otherwise."""
        try:
            value = self._signer.loads(token)
        except (BadSignature, UnicodeError, ValueError):
            raise InvalidTokenError("this unsubscribe link is not valid") from None
        if not isinstance(value, str):
            raise InvalidTokenError("this unsubscribe link is not valid")
        return value
