"""An SMTP server on loopback that fails on cue: refusals, drops, kills and pauses.

A fault is planned per DATA command (counted from 1 across all connections),
so a test can say "drop the connection after accepting the 3rd message" or
"kill the worker when the 5th message arrives".  ``hook`` is awaited after a
message is stored and before the server answers its DATA command
(``on_data`` when the message has come in but before it is stored,
``on_mail`` when a MAIL command arrives), so a test can pause or kill a
worker, or stop the database, at that exact moment; while it waits, the
server keeps serving other connections.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.smtp_sink import ehlo_lines, free_port

#: Faults a DATA command can meet:
#: "451"  temporary refusal, nothing stored
#: "421"  "closing", nothing stored, connection closed
#: "drop" connection cut before the message is stored
#: "accept_then_drop" message stored, connection cut before the reply (ambiguous)
#: "accept_then_hang" message stored, no reply until the client gives up (ambiguous)
FAULTS = ("451", "421", "drop", "accept_then_drop", "accept_then_hang")

Hook = Callable[[int], Awaitable[str | None]]


@dataclass
class Arrival:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    ordinal: int
    accepted_at: float

    @property
    def message(self) -> EmailMessage:
        """The parsed message."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        """The Message-ID header, as sent."""
        return str(self.message["Message-ID"])


@dataclass
class Plan:
    """How the server answers; tests change it while it runs."""

    reject: dict[str, str] = field(default_factory=dict)
    faults: dict[int, str] = field(default_factory=dict)
    #: Fault applied to every DATA command while time.monotonic() < until.
    outage: tuple[float, tuple[str, ...]] | None = None
    hook: Hook | None = None
    #: Awaited when a MAIL command arrives (counted from 1), before it is answered.
    on_mail: Hook | None = None
    #: Awaited when a message has come in (counted like DATA), before it is stored.
    on_data: Hook | None = None
    delay: float = 0.0
    hang_seconds: float = 5.0


class _Handler:
    def __init__(self, sink: FaultSink) -> None:
        self.sink = sink

    async def handle_EHLO(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return ehlo_lines(session, hostname, responses, pipelining=True)

    async def handle_MAIL(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        with self.sink.lock:
            self.sink.mail_commands += 1
            ordinal = self.sink.mail_commands
        if self.sink.plan.on_mail is not None:
            reply = await self.sink.plan.on_mail(ordinal)
            if reply is not None:
                return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.sink.plan.reject.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        sink, plan = self.sink, self.sink.plan
        with sink.lock:
            sink.data_commands += 1
            ordinal = sink.data_commands
        if plan.on_data is not None:
            reply = await plan.on_data(ordinal)
            if reply is not None:
                return reply
        if plan.delay:
            await asyncio.sleep(plan.delay)
        fault = sink.fault_for(ordinal)
        if fault is not None:
            sink.note_fault(fault, envelope)
        if fault in ("451", "421", "drop"):
            if fault == "451":
                return "451 4.3.0 Try again later"
            if fault == "421":
                await server.push("421 4.3.2 Closing")  # said first: close() drops later writes
                server.transport.close()
                return "421 4.3.2 Closing"  # never reaches the client
            server.transport.abort()
            return "421 4.3.2 Closing"  # never reaches the client
        sink.store(envelope, ordinal)
        if plan.hook is not None:
            reply = await plan.hook(ordinal)
            if reply is not None:
                return reply
        if fault == "accept_then_drop":
            server.transport.abort()
        elif fault == "accept_then_hang":
            await asyncio.sleep(plan.hang_seconds)
            server.transport.abort()
        return "250 Message accepted"


class FaultSink:
    """Start with ``start()``; read ``arrivals``; ``stop()`` when done."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.arrivals: list[Arrival] = []
        self.plan = Plan()
        self.lock = threading.Lock()
        self.data_commands = 0
        self.mail_commands = 0
        self.faults_applied: Counter[str] = Counter()
        #: (fault, Message-ID) of every message that met a fault.
        self.faulted: list[tuple[str, str]] = []
        self.timeout = timeout
        self.port = free_port()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False
        )

    @property
    def url(self) -> str:
        """The NURTURE_TRANSPORT value that reaches this server."""
        return f"smtp://127.0.0.1:{self.port}?timeout={self.timeout:g}"

    def start(self) -> FaultSink:
        """Start listening."""
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the server's event loop (to release what a hook awaits)."""
        self._controller.loop.call_soon_threadsafe(callback)

    def fault_for(self, ordinal: int) -> str | None:
        """The fault planned for the ``ordinal``-th DATA command, if any."""
        planned = self.plan.faults.get(ordinal)
        if planned is not None:
            return planned
        if self.plan.outage is not None:
            until, cycle = self.plan.outage
            if time.monotonic() < until:
                return cycle[ordinal % len(cycle)]
        return None

    def note_fault(self, fault: str, envelope: Any) -> None:
        """Remember which message met which fault."""
        parsed = email.message_from_bytes(bytes(envelope.content), policy=email.policy.default)
        with self.lock:
            self.faults_applied[fault] += 1
            self.faulted.append((fault, str(parsed["Message-ID"])))

    def faulted_ids(self, *faults: str) -> set[str]:
        """Message-IDs that met any of ``faults``."""
        with self.lock:
            return {mid for fault, mid in self.faulted if fault in faults}

    def store(self, envelope: Any, ordinal: int) -> None:
        """Record an accepted message."""
        arrival = Arrival(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            bytes(envelope.content),
            ordinal,
            time.monotonic(),
        )
        with self.lock:
            self.arrivals.append(arrival)

    def count(self) -> int:
        """How many messages were accepted so far."""
        with self.lock:
            return len(self.arrivals)

    def ids(self) -> list[str]:
        """Message-IDs accepted, in order."""
        with self.lock:
            return [a.message_id for a in self.arrivals]
