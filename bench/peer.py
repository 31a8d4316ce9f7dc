"""The bench's side of the peer: its own venv, a template the size of nurture's, one run.

django-post-office is installed with pinned versions into ``bench/.peer-venv``
(created with ``python -m venv``; reused while the pins match) and driven by
``peer_app.py`` in a subprocess, so it never shares a process, or packages,
with nurture.
"""

from __future__ import annotations

import email
import email.policy
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from bench.deliver import BrokenRunError, Exactness, exactness
from bench.sink import SinkProcess, read_frames

PINS = ("Django==5.2.19", "django-post-office==3.12.0")
VENV = Path(__file__).resolve().parent / ".peer-venv"
APP = Path(__file__).resolve().parent / "peer_app.py"


def ensure_venv() -> Path:
    """The peer venv's python, creating the venv (or reinstalling the pins) when needed."""
    python = VENV / "bin" / "python"
    marker = VENV / "bench-pins.txt"
    wanted = "\n".join(PINS)
    if python.exists() and marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return python
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokenRunError(
                f"setting up the peer venv failed: {' '.join(step)}\n{done.stderr}"
            )
    marker.write_text(wanted, encoding="utf-8")
    return python


@dataclass(frozen=True)
class PeerTemplate:
    """A Django template pair shaped like one of nurture's emails."""

    subject: str
    text: str
    html: str
    text_bytes: int
    html_bytes: int


def template_like(capture: Path) -> PeerTemplate:
    """A post_office template from nurture's median-size captured email.

    The client's first name and the unsubscribe link become template variables;
    everything else is kept verbatim, so the rendered size matches.
    """
    frames = sorted(read_frames(capture), key=lambda f: len(f[2]))
    message = email.message_from_bytes(frames[len(frames) // 2][2], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    first = str(message["To"]).split()[0]
    link = str(message["List-Unsubscribe"]).strip("<>")
    text, html = (_part(message, kind) for kind in ("plain", "html"))
    swaps = {first: "{{ first_name }}", link: "{{ unsubscribe_url }}"}
    return PeerTemplate(
        subject=_template(str(message["Subject"]), swaps),
        text=_template(text, swaps),
        html=_template(html, swaps),
        text_bytes=len(text.encode()),
        html_bytes=len(html.encode()),
    )


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage), f"no text/{subtype} part"
    return str(part.get_content())


def _template(content: str, swaps: dict[str, str]) -> str:
    """``content`` as a Django template: the swapped values as variables, the rest verbatim."""
    pieces = [content]
    for value, variable in swaps.items():
        pieces = [p for piece in pieces for p in _split_keep(piece, value, variable)]
    return "".join(
        p if p in swaps.values() else "{% verbatim %}" + p + "{% endverbatim %}" for p in pieces
    )


def _split_keep(piece: str, value: str, variable: str) -> list[str]:
    if piece == variable:
        return [piece]
    parts = piece.split(value)
    out = [parts[0]]
    for part in parts[1:]:
        out += [variable, part]
    return out


@dataclass(frozen=True)
class PeerRun:
    """One queue-then-deliver run of the peer."""

    queue_seconds: float
    deliver_seconds: float
    exact: Exactness


def run(
    python: Path, sink: SinkProcess, template: PeerTemplate, count: int, folder: Path
) -> PeerRun:
    """Queue and deliver ``count`` emails with post_office to the sink; check exactly-once."""
    database = folder / "peer.sqlite3"
    for leftover in folder.glob("peer.sqlite3*"):
        leftover.unlink()
    spec = {
        "database": str(database),
        "port": sink.port,
        "count": count,
        "subject": template.subject,
        "text": template.text,
        "html": template.html,
        "ids": str(folder / "peer-ids.txt"),
    }
    (folder / "peer.json").write_text(json.dumps(spec), encoding="utf-8")
    sink.reset()
    done = subprocess.run(
        [str(python), str(APP), str(folder / "peer.json")],
        capture_output=True,
        text=True,
        cwd=folder,
        check=False,
    )
    if done.returncode != 0:
        raise BrokenRunError(f"the peer failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = (folder / "peer-ids.txt").read_text(encoding="ascii").split()
    exact = exactness(sink.received(folder / "received.txt"), frozenset(expected))
    if not exact.ok or result["sent"] != count or len(expected) != count:
        raise BrokenRunError(f"peer: {exact.describe()}; post_office marked {result['sent']} sent")
    return PeerRun(result["queue_seconds"], result["deliver_seconds"], exact)


def median_size(capture: Path) -> float:
    """The median size in bytes of the captured messages."""
    return statistics.median(len(data) for _, _, data in read_frames(capture))
