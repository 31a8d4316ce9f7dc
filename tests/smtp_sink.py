"""A real SMTP server on loopback (aiosmtpd) that records what it accepts.

It can be told to refuse: a permanent 550 for chosen recipients, or a
temporary 451 (or a dropped connection) for the next N messages.  It
advertises PIPELINING (RFC 2920) as production servers do, unless told not
to; aiosmtpd reads pipelined commands one by one either way.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The parsed message."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        """The Message-ID header."""
        return str(self.message["Message-ID"])


@dataclass
class Behaviour:
    """How the server answers, changeable while it runs."""

    reject: dict[str, str] = field(default_factory=dict)
    temporary_failures: int = 0
    temporary_reply: str = "451 4.3.0 Try again later"
    drop_connections: int = 0


def ehlo_lines(session: Any, hostname: str, responses: list[str], pipelining: bool) -> list[str]:
    """aiosmtpd's EHLO answer, with PIPELINING advertised when wanted."""
    session.host_name = hostname  # what aiosmtpd does itself when no hook is set
    if not pipelining:
        return responses
    return [*responses[:-1], "250-PIPELINING", responses[-1]]


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def handle_EHLO(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return ehlo_lines(session, hostname, responses, self.sink.pipelining)

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.sink.behaviour.reject.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        with self.sink.lock:
            behaviour = self.sink.behaviour
            if behaviour.drop_connections > 0:
                behaviour.drop_connections -= 1
                server.transport.close()
                return "421 closing"
            if behaviour.temporary_failures > 0:
                behaviour.temporary_failures -= 1
                self.sink.refused += 1
                return behaviour.temporary_reply
            self.sink.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"


class SMTPSink:
    """Start with ``start()``; read ``received``; ``stop()`` when done."""

    def __init__(self, *, pipelining: bool = True, **controller_options: Any) -> None:
        self.pipelining = pipelining
        self.received: list[Received] = []
        self.behaviour = Behaviour()
        self.lock = threading.Lock()
        self.refused = 0
        self.port = free_port()
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            **controller_options,
        )

    @property
    def url(self) -> str:
        """The NURTURE_TRANSPORT value that reaches this server."""
        return f"smtp://127.0.0.1:{self.port}?timeout=10"

    def start(self) -> SMTPSink:
        """Start listening."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def ids(self) -> list[str]:
        """Message-IDs received, in order."""
        return [r.message_id for r in self.received]

    def to(self, address: str) -> list[Received]:
        """Messages received for one recipient."""
        return [r for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert isinstance(port, int)
        return port
