"""The floor: captured message bytes sent with plain smtplib over one connection.

``python bench/floor.py PORT CAPTURE`` reads every message captured by the
sink (``sink.read_frames``) into memory, then sends them all, in order, over
one persistent smtplib connection to the sink on PORT, and prints one JSON
line: ``{"messages": N, "seconds": S}``.  Only the sending is timed, so this
is the most one connection can carry: the ceiling for a single worker.

``--pipelined`` sends the same bytes over a raw socket with every command of
a message in one write (RFC 2920), reading the replies at the end: how much
the sink itself can take, to show that the sink is never the bottleneck.
"""

from __future__ import annotations

import json
import smtplib
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sink import read_frames  # the sink's framing; stdlib only

Message = tuple[str, str, bytes]


def send_all(port: int, messages: list[Message]) -> float:
    """Send every message with smtplib over one connection; return the seconds it took."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as conn:
        conn.ehlo()
        started = time.perf_counter()
        for sender, recipient, data in messages:
            conn.sendmail(sender, [recipient], data)
        elapsed = time.perf_counter() - started
    return elapsed


def pipeline_all(port: int, messages: list[Message]) -> float:
    """Send every message pipelined on a raw socket; return the seconds until all were answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        replies = sock.makefile("rb")
        replies.readline()
        sock.sendall(b"EHLO bench\r\n")
        while not replies.readline().startswith(b"250 "):
            pass
        started = time.perf_counter()
        for sender, recipient, data in messages:
            stuffed = data.replace(b"\r\n.", b"\r\n..")
            head = f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
            sock.sendall(head + stuffed + b".\r\n")
        sock.sendall(b"QUIT\r\n")
        answered = sum(1 for line in replies if line.startswith(b"250 2.0.0"))
        elapsed = time.perf_counter() - started
    if answered != len(messages):
        raise SystemExit(f"the sink answered {answered} of {len(messages)} messages")
    return elapsed


def main() -> None:
    """Load the capture, send it, print the timing as JSON."""
    args = [a for a in sys.argv[1:] if a != "--pipelined"]
    port, capture = int(args[0]), Path(args[1])
    messages = list(read_frames(capture))
    send = pipeline_all if "--pipelined" in sys.argv else send_all
    print(json.dumps({"messages": len(messages), "seconds": send(port, messages)}))


if __name__ == "__main__":
    main()
