"""The transport seam: a tiny protocol every way of sending implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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


@runtime_checkable
class StagedTransport(Transport, Protocol):
    """A transport whose ``send`` comes in stages the delivery loop can interleave.

    ``announce`` may send what commits to nothing (an SMTP envelope);
    ``withdraw`` takes it back.  ``hand_over`` gives the message over and
    raises as ``send`` would for anything refused before that; ``settle``
    reads the answer to the last hand-over and raises as ``send`` would.
    Nothing may be delivered before ``hand_over``.
    """

    def announce(self, email: OutgoingEmail) -> None:
        """Get ready to hand ``email`` over (best effort; never raises)."""

    def withdraw(self) -> None:
        """Forget an announced email; nothing of it is delivered."""

    def hand_over(self, email: OutgoingEmail) -> None:
        """Hand the email over; its answer is read by ``settle``."""

    def settle(self) -> None:
        """Wait for the answer to the last hand-over (if any)."""


class Unstaged:
    """Any transport as a staged one: the whole ``send`` happens at ``hand_over``."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.name = transport.name

    def send(self, email: OutgoingEmail) -> None:
        """Hand one email over for delivery."""
        self.transport.send(email)

    def announce(self, email: OutgoingEmail) -> None:
        """Nothing to do ahead."""

    def withdraw(self) -> None:
        """Nothing was announced."""

    def hand_over(self, email: OutgoingEmail) -> None:
        """The whole send."""
        self.transport.send(email)

    def settle(self) -> None:
        """The answer came with ``hand_over``."""

    def close(self) -> None:
        """Close the transport underneath."""
        self.transport.close()


def staged(transport: Transport) -> StagedTransport:
    """``transport`` itself when it works in stages, else wrapped to look so."""
    if isinstance(transport, StagedTransport):
        return transport
    return Unstaged(transport)
