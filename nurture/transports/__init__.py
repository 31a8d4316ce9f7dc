"""Transports: where finished emails go (an outbox folder, an SMTP server, memory)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from nurture.errors import ConfigurationError
from nurture.transports.base import Transport
from nurture.transports.memory import MemoryTransport
from nurture.transports.outbox import OutboxTransport
from nurture.transports.smtp import SMTPTransport

__all__ = ["MemoryTransport", "OutboxTransport", "SMTPTransport", "Transport", "open_transport"]


def open_transport(spec: str, timeout: float = 30.0) -> Transport:
    """Build the transport named by ``NURTURE_TRANSPORT``."""
    scheme, _, rest = spec.partition(":")
    if scheme == "outbox":
        return OutboxTransport(Path(rest or "outbox"))
    if scheme == "memory":
        return MemoryTransport()
    if scheme in ("smtp", "smtps"):
        parts = urlsplit(spec)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not parts.hostname:
            raise ConfigurationError(f"NURTURE_TRANSPORT: {spec!r} names no host")
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"NURTURE_TRANSPORT: {spec!r} has a bad port") from None
        return SMTPTransport(
            host=parts.hostname,
            port=port or (465 if scheme == "smtps" else 25),
            ssl=scheme == "smtps",
            starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=_seconds(query.get("timeout"), timeout),
            cafile=query.get("cafile"),
        )
    raise ConfigurationError(f"NURTURE_TRANSPORT: unknown transport {scheme!r}")


def _seconds(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 600:
        raise ConfigurationError(f"NURTURE_TRANSPORT: timeout={text!r} must be 1 to 600 seconds")
    return value
