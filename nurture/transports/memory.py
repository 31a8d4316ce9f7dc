"""A transport that keeps emails in a list: for tests and previews."""

from __future__ import annotations

from nurture.rendering import OutgoingEmail


class MemoryTransport:
    """Records every email it is given, in order."""

    name = "memory"

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.closed = False

    def send(self, email: OutgoingEmail) -> None:
        """Append the email to ``sent``."""
        self.sent.append(email)

    def close(self) -> None:
        """Mark closed (the list stays readable)."""
        self.closed = True
