"""The embedded default transport: one ``.eml`` file per email in a folder."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from nurture.errors import TemporaryDeliveryError
from nurture.rendering import OutgoingEmail


class OutboxTransport:
    """Writes each email atomically as ``<folder>/<hash of Message-ID>.eml``.

    The file name comes from the Message-ID, so a retried email replaces its
    own file and never appears twice.
    """

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, email: OutgoingEmail) -> Path:
        """Where this email's file goes."""
        digest = hashlib.sha256(email.message_id.encode()).hexdigest()[:24]
        return self.folder / f"{digest}.eml"

    def send(self, email: OutgoingEmail) -> None:
        """Write the file (temporary name, fsync, rename)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as fh:
                fh.write(email.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path_for(email))
        except OSError as exc:
            raise TemporaryDeliveryError(
                f"cannot write to the outbox {self.folder}: {exc}"
            ) from exc

    def close(self) -> None:
        """Nothing to release."""
