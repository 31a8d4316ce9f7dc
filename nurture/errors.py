"""One exception tree for everything nurture raises on purpose.

``NurtureError`` covers what a user or the outside world did (bad input,
unknown client, a mail server that said no).  ``ConfigurationError`` stands
outside that tree on purpose: a broken setting must never be swallowed by a
handler that retries or skips on ``NurtureError``.
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message names the setting."""


class NurtureError(Exception):
    """Base of every error nurture raises about input, data or delivery."""


class ValidationError(NurtureError, ValueError):
    """Input was refused; ``field`` names what was wrong, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFoundError(NurtureError, LookupError):
    """The client, course or session asked for does not exist."""


class ConflictError(NurtureError):
    """The request contradicts recorded facts (double enrolment, wrong order)."""


class DatabaseNotReadyError(NurtureError):
    """The database has not been migrated to the revision this code needs."""


class SequenceError(NurtureError):
    """The email sequence file is invalid; the message names file and line."""


class TemplateError(NurtureError):
    """An email template is missing or failed to render."""


class DeliveryError(NurtureError):
    """Sending one email failed."""


class TemporaryDeliveryError(DeliveryError):
    """The failure may pass (4xx reply, dropped connection): retry later."""


class AmbiguousDeliveryError(TemporaryDeliveryError):
    """The whole message was handed over but the server's answer was lost: it may have arrived.

    Retried like any temporary failure, and flagged as a possible duplicate.
    """


class PermanentDeliveryError(DeliveryError):
    """The server refused for good (5xx): do not retry."""

    def __init__(self, message: str, *, recipient_rejected: bool = False) -> None:
        super().__init__(message)
        self.recipient_rejected = recipient_rejected


class InvalidTokenError(NurtureError):
    """An unsubscribe or API token is tampered, truncated or unknown."""
