"""A minimal SMTP sink for the bench: answers 250 to everything, counts what it receives.

Run on its own (``python bench/sink.py``) it listens on a free loopback port,
prints ``port N`` and then obeys one-line commands on standard input, so it
lives in its own process and never competes for the measured process's GIL:

``reset``            forget everything received so far
``capture PATH``     also append every message (envelope and bytes) to PATH
``stop-capture``     close that file
``dump PATH``        write the Message-IDs received since ``reset``, one a line
``quit``             stop

Each command is answered with one ``ok ...`` line.  The server speaks just
enough ESMTP for smtplib, Django and pipelining clients: EHLO advertises
PIPELINING and 8BITMIME, every command gets 250 (DATA gets 354), and a
message ends at CRLF.CRLF.  A message is counted before its 250 is written,
so once a client has its answer the sink has the Message-ID.

``SinkProcess`` is the bench's handle on such a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

END = b"\r\n.\r\n"
EHLO = b"250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n"
MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def message_id(data: bytes) -> str:
    """The Message-ID header of a raw message ('' when it has none)."""
    headers = data.split(b"\r\n\r\n", 1)[0]
    found = MESSAGE_ID.search(headers)
    if found is None:
        return ""
    return b" ".join(found.group(1).split()).decode("ascii", "replace")


def unstuff(data: bytes) -> bytes:
    """Undo SMTP dot-stuffing (RFC 5321 4.5.2), giving the bytes the client meant."""
    data = data.replace(b"\r\n..", b"\r\n.")
    return data[1:] if data.startswith(b"..") else data


def frame(sender: bytes, recipient: bytes, data: bytes) -> bytes:
    """One captured message: a header line of three lengths, then the three byte strings."""
    return b"%d %d %d\n" % (len(sender), len(recipient), len(data)) + sender + recipient + data


def read_frames(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """The (envelope sender, recipient, message bytes) captured in ``path``."""
    with path.open("rb") as fh:
        while line := fh.readline():
            sizes = [int(n) for n in line.split()]
            sender, recipient, data = (fh.read(n) for n in sizes)
            yield sender.decode(), recipient.decode(), data


@dataclass
class Tally:
    """What the sink received since the last reset."""

    ids: list[str] = field(default_factory=list)
    octets: int = 0
    capture: IO[bytes] | None = None

    def record(self, sender: bytes, recipient: bytes, data: bytes) -> None:
        """Count one message (and capture it, when asked)."""
        self.ids.append(message_id(data))
        self.octets += len(data)
        if self.capture is not None:
            self.capture.write(frame(sender, recipient, unstuff(data)))


class SMTPSession(asyncio.Protocol):
    """One client connection: commands line by line, DATA until CRLF.CRLF."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0
        self.sender = b""
        self.recipient = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Greet the client."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        """Answer every complete command (and message) in the buffer with one write."""
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        closing = False
        while not closing:
            reply = self._message() if self.in_data else self._command()
            if reply is None:
                break
            replies.append(reply)
            closing = reply.startswith(b"221")
        if replies:
            self.transport.write(b"".join(replies))
        if closing:
            self.transport.close()

    def _message(self) -> bytes | None:
        if self.buffer.startswith(b".\r\n"):  # an empty message
            end, body = 0, b""
        else:
            end = self.buffer.find(END, max(self.scanned - len(END), 0))
            if end < 0:
                self.scanned = len(self.buffer)
                return None
            body = bytes(self.buffer[: end + 2])
            end += 2
        del self.buffer[: end + 3]
        self.in_data, self.scanned = False, 0
        self.tally.record(self.sender, self.recipient, body)
        return b"250 2.0.0 queued\r\n"

    def _command(self) -> bytes | None:
        newline = self.buffer.find(b"\r\n")
        if newline < 0:
            return None
        line = bytes(self.buffer[:newline])
        del self.buffer[: newline + 2]
        verb = line[:4].upper()
        if verb == b"EHLO":
            return EHLO
        if verb == b"MAIL":
            self.sender = _address(line)
        elif verb == b"RCPT":
            self.recipient = _address(line)
        elif verb == b"DATA":
            self.in_data, self.scanned = True, 0
            return b"354 end with <CRLF>.<CRLF>\r\n"
        elif verb == b"QUIT":
            return b"221 bye\r\n"
        return b"250 OK\r\n"


def _address(line: bytes) -> bytes:
    start, end = line.find(b"<"), line.find(b">")
    return line[start + 1 : end] if 0 <= start < end else b""


async def _control(tally: Tally, server: asyncio.Server) -> None:
    """Obey commands on standard input until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        verb, _, argument = line.partition(" ")
        if verb == "reset":
            tally.ids, tally.octets = [], 0
            answer = "ok"
        elif verb == "capture":
            tally.capture = Path(argument).open("wb")  # noqa: SIM115  (closed by stop-capture)
            answer = "ok"
        elif verb == "stop-capture":
            if tally.capture is not None:
                tally.capture.close()
            tally.capture = None
            answer = "ok"
        elif verb == "dump":
            Path(argument).write_text("".join(f"{i}\n" for i in tally.ids), encoding="ascii")
            answer = f"ok {len(tally.ids)} {tally.octets}"
        elif verb == "quit":
            break
        else:
            answer = f"error unknown command {verb!r}"
        print(answer, flush=True)
    server.close()


async def serve() -> None:
    """Listen on a free loopback port, announce it, and serve until told to quit."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTPSession(tally), "127.0.0.1", 0, backlog=128)
    port = server.sockets[0].getsockname()[1]
    print(f"port {port}", flush=True)
    async with server:
        await _control(tally, server)


class SinkProcess:
    """The bench's handle on a sink running in its own process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._readline().split()[1])

    @property
    def url(self) -> str:
        """The NURTURE_TRANSPORT that reaches the sink."""
        return f"smtp://127.0.0.1:{self.port}?timeout=60"

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the SMTP sink stopped unexpectedly")
        return line.strip()

    def command(self, line: str) -> str:
        """Send one control command; return the answer (``RuntimeError`` unless ok)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        answer = self._readline()
        if not answer.startswith("ok"):
            raise RuntimeError(f"sink: {answer}")
        return answer

    def reset(self) -> None:
        """Forget everything received so far."""
        self.command("reset")

    def received(self, scratch: Path) -> list[str]:
        """Message-IDs received since the last reset, in arrival order."""
        self.command(f"dump {scratch}")
        return scratch.read_text(encoding="ascii").splitlines()

    @contextlib.contextmanager
    def capturing(self, path: Path) -> Iterator[Path]:
        """Capture every message received inside the block to ``path``."""
        self.command(f"capture {path}")
        try:
            yield path
        finally:
            self.command("stop-capture")

    def close(self) -> None:
        """Ask the sink to quit (closing its input), then wait for it; kill it if it hangs."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    asyncio.run(serve())
