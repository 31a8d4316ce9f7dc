"""Run real ``python -m nurture tick`` workers against the sink and check what arrived.

The wall time runs from the first worker's start to the last one's exit, so
it includes interpreter start-up and imports: what a cron job or a scheduler
restart pays.  Peak RSS comes from ``os.wait4``; how busy the whole machine
was (every process on every core: workers, database, sink) from
``/proc/stat``, where there is one.  A run counts only if the
sink received every due Message-ID exactly once and the database agrees
(nothing due left, no claim left behind).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.scenario import NOW
from bench.sink import SinkProcess
from nurture.db import queue
from nurture.db.engine import make_engine
from nurture.db.models import Message
from nurture.domain import MessageStatus

SENT = re.compile(r"^sent (\d+),", re.MULTILINE)


class BrokenRunError(RuntimeError):
    """A measure whose result cannot be trusted (or a setup step that failed)."""


@dataclass(frozen=True)
class Finished:
    """Processes that ran to the end."""

    seconds: float
    peak_rss_mb: tuple[float, ...]
    outputs: tuple[str, ...]
    #: The share of all cores' time spent busy while they ran (None without /proc/stat).
    machine_busy: float | None = None


def cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all cores since boot, from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the ticks between two readings that were busy."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def run_processes(commands: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path) -> Finished:
    """Start every command at once, wait for all; ``BrokenRunError`` if one fails."""
    logs = [cwd / f"proc-{i}.log" for i in range(len(commands))]
    ticks = cpu_ticks()
    started = time.perf_counter()
    procs = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("wb") as out:
            procs.append(subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=out, stderr=out))
    rss = []
    for proc in procs:  # the last wait returns when the slowest process has exited
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        rss.append(usage.ru_maxrss / 1024)  # kilobytes on Linux
    seconds = time.perf_counter() - started
    busy = busy_share(ticks, cpu_ticks())
    outputs = tuple(log.read_text(encoding="utf-8", errors="replace") for log in logs)
    for proc, output in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise BrokenRunError(
                f"{' '.join(proc.args)} exited {proc.returncode}:\n{output[-2000:]}"
            )
    return Finished(seconds, tuple(rss), outputs, busy)


@dataclass(frozen=True)
class Exactness:
    """What the sink received compared with what was due."""

    received: int
    duplicates: int
    missing: int
    unexpected: int

    @property
    def ok(self) -> bool:
        """Every due email arrived exactly once, and nothing else did."""
        return not (self.duplicates or self.missing or self.unexpected)

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"received {self.received}, duplicates {self.duplicates}, "
            f"missing {self.missing}, unexpected {self.unexpected}"
        )


def exactness(received: Sequence[str], expected: frozenset[str]) -> Exactness:
    """Compare the sink's Message-IDs with the due set."""
    counts = Counter(received)
    return Exactness(
        received=len(received),
        duplicates=sum(c - 1 for c in counts.values() if c > 1),
        missing=len(expected - counts.keys()),
        unexpected=len(counts.keys() - expected),
    )


@dataclass(frozen=True)
class Delivery:
    """One measured delivery of the due set, and whatever makes it untrustworthy."""

    workers: int
    seconds: float
    messages: int
    peak_rss_mb: tuple[float, ...]
    exact: Exactness
    problems: tuple[str, ...] = ()
    machine_busy: float | None = None

    @property
    def rate(self) -> float:
        """Messages per second of wall time."""
        return self.messages / self.seconds


def deliver(
    sink: SinkProcess,
    env: Mapping[str, str],
    cwd: Path,
    expected: frozenset[str],
    workers: int = 1,
) -> Delivery:
    """Run ``workers`` ticks at once to the sink; check exactly-once at the sink and in the DB.

    A crashed worker raises ``BrokenRunError``; a delivery that finished but
    missed or repeated emails is returned with its ``problems``, so the table
    can still show what happened (the run is then reported broken).
    """
    sink.reset()
    command = [sys.executable, "-m", "nurture", "tick"]
    finished = run_processes([command] * workers, env, cwd)
    received = sink.received(cwd / "received.txt")
    exact = exactness(received, expected)
    reported = sum(int(m) for out in finished.outputs for m in SENT.findall(out))
    problems = [] if exact.ok else [exact.describe()]
    if reported != len(expected):
        problems.append(f"the workers reported {reported} sent, {len(expected)} were due")
    problems += _database_problems(env["NURTURE_DATABASE_URL"])
    return Delivery(
        workers,
        finished.seconds,
        len(expected),
        finished.peak_rss_mb,
        exact,
        tuple(problems),
        finished.machine_busy,
    )


def _database_problems(url: str) -> list[str]:
    """What the database says is wrong after a delivery (nothing, normally)."""
    engine = make_engine(url)
    try:
        with Session(engine) as db:
            due = db.scalar(
                select(func.count()).where(
                    Message.status == MessageStatus.PENDING, Message.due_at <= NOW
                )
            )
            dangling = queue.dangling_claims(db)
    finally:
        engine.dispose()
    problems = []
    if due:
        problems.append(f"{due} emails still due in the database")
    if dangling:
        problems.append(f"{dangling} claims left behind")
    return problems
