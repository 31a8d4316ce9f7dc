"""Real `nurture run` and `nurture tick` processes, and the facts tests wait on.

Workers log to files (a pipe would fill up and block a busy worker); every
process a ``Fleet`` started is killed when the test ends, whatever happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from nurture.db.models import Message
from nurture.domain import MessageStatus
from tests.conftest import TEST_SECRET, Cli

#: Short enough that a test waits seconds for a dead worker's claims, and still
#: longer than the SMTP timeout (the settings refuse anything else).
LEASE_SECONDS = 5
SMTP_TIMEOUT = 2


def worker_env(url: str, transport: str, now: datetime | str, **extra: str) -> dict[str, str]:
    """The environment of a worker: this machine's, minus any NURTURE_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        NURTURE_DATABASE_URL=url,
        NURTURE_TRANSPORT=transport,
        NURTURE_SECRET_KEY=TEST_SECRET,
        NURTURE_NOW=now if isinstance(now, str) else now.isoformat(),
        NURTURE_LEASE_SECONDS=str(LEASE_SECONDS),
        NURTURE_SMTP_TIMEOUT=str(SMTP_TIMEOUT),
        NURTURE_LOG_LEVEL="info",
        NURTURE_ACTOR="battery",
    )
    env.update(extra)
    return env


@dataclass
class Worker:
    """One running nurture process."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: frozen mid-whatever, as a stalled VM or a GC pause."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = 120) -> int:
        """Wait for a process that ends by itself (a tick)."""
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """Everything it printed."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Fleet:
    """Starts workers and guarantees that none outlives the test."""

    folder: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def start(self, *args: str, **extra_env: str) -> Worker:
        """Start `python -m nurture ARGS` with the fleet's environment."""
        name = f"w{len(self.workers)}-{args[0]}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nurture", *args],
                env=self.env | extra_env,
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(name, proc, log)
        self.workers.append(worker)
        return worker

    def run(self, **extra_env: str) -> Worker:
        """Start `nurture run --interval 1`."""
        return self.start("run", "--interval", "1", **extra_env)

    def tick(self, timeout: float = 120, **extra_env: str) -> Worker:
        """Run `nurture tick` to the end and insist that it succeeded."""
        worker = self.start("tick", **extra_env)
        code = worker.wait(timeout)
        assert code == 0, f"tick exited {code}:\n{worker.output()[-3000:]}"
        return worker

    def stop_all(self, timeout: float = 60) -> dict[str, int]:
        """SIGTERM every live worker; return each one's exit code."""
        live = [w for w in self.workers if w.alive()]
        for w in live:
            w.proc.send_signal(signal.SIGTERM)
        return {w.name: w.proc.wait(timeout=timeout) for w in live}

    def close(self) -> None:
        """Kill whatever still runs (paused ones are woken first so they can die)."""
        for w in self.workers:
            if w.alive():
                try:
                    w.resume()
                    w.proc.kill()
                    w.proc.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):  # pragma: no cover
                    pass


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, poll: float = 0.1) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)


class Db:
    """Read-only questions tests ask while workers run."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def pending_due(self, by: datetime) -> int:
        """Emails still pending and due by ``by``."""
        return self._count(Message.status == MessageStatus.PENDING, Message.due_at <= by)

    def claimed(self) -> int:
        """Emails carrying a claim."""
        return self._count(Message.claim_token.is_not(None))

    def settled(self, by: datetime) -> bool:
        """Nothing due is pending and nothing is claimed."""
        return self.pending_due(by) == 0 and self.claimed() == 0

    def status_counts(self) -> dict[str, int]:
        """How many emails in each status."""
        with Session(self.engine) as db:
            rows = db.execute(select(Message.status, func.count()).group_by(Message.status))
            return {status.value: count for status, count in rows}

    def sent_at_counts(self) -> dict[datetime, int]:
        """How many sent emails carry each sent_at (workers run on distinct clocks)."""
        with Session(self.engine) as db:
            rows = db.execute(
                select(Message.sent_at, func.count())
                .where(Message.status == MessageStatus.SENT)
                .group_by(Message.sent_at)
            )
            return dict(rows.all())

    def _count(self, *where: object) -> int:
        with Session(self.engine) as db:
            return int(db.scalar(select(func.count()).select_from(Message).where(*where)) or 0)


def enrol_many(
    cli: Cli, count: int, now: datetime | str, prefix: str = "c", zone: str = "Europe/London"
) -> list[str]:
    """Enrol ``count`` clients through `nurture import`; return their addresses."""
    emails = [f"{prefix}{n}@example.com" for n in range(count)]
    rows = "".join(f"{e},Client {n},atrophic,{zone},5\n" for n, e in enumerate(emails))
    path = cli.workdir / f"{prefix}-{count}.csv"
    path.write_text("email,name,scar,timezone,sessions\n" + rows, encoding="utf-8")
    cli.ok("import", str(path), now=now if isinstance(now, str) else now.isoformat())
    return emails


def erase(cli: Cli, email: str, now: datetime) -> None:
    """Erase a client as the web app does (there is no CLI command for it yet)."""
    from nurture.config import load_settings  # noqa: PLC0415
    from nurture.enrollment import find_client  # noqa: PLC0415
    from nurture.privacy import erase_client  # noqa: PLC0415
    from nurture.runtime import Runtime  # noqa: PLC0415

    settings = load_settings(
        environ={"NURTURE_DATABASE_URL": cli.url, "NURTURE_SECRET_KEY": TEST_SECRET}
    )
    runtime = Runtime(settings, actor="battery", now_override=now)
    try:
        with runtime.transaction() as db:
            erase_client(db, runtime.context(), find_client(db, email))
    finally:
        runtime.close()
