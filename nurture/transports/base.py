"""The transport seam: a tiny protocol every way of sending implements."""

from __future__ import annotations

from typing import Protocol

from nurture.rendering import OutgoingEmail


class Transport(Protocol):
    """Sends finished emails.

    ``send`` returns when the message was accepted, and raises
    ``TemporaryDeliveryError`` (try again later) or ``PermanentDeliveryError``
    (do not) otherwise.  A transport may keep a connection open across calls;
    ``close`` releases it.
    """

    name: str

    def send(self, email: OutgoingEmail) -> None:
        """Hand one email over for delivery."""

    def close(self) -> None:
        """Release any connection."""
