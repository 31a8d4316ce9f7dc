"""Issue 7's harness: how nurture delivers, scales and idles, against its baselines.

    python bench/run.py [--n 20000] [--repeat 3] [--quick] [--keep]

Everything is measured in one run on this machine and printed as one table:
medians of the repetitions with min-max, ratios against baselines measured
in the same run, and PASS/MISS per target of the issue.  Every delivery is
counted at an SMTP sink in its own process (every due Message-ID exactly
once, or the run is broken).  The exit status is non-zero only for a broken
run: a failed setup step, a worker that crashed, an email missing or sent
twice.  A missed target is a result, not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/run.py`

from bench import flat, peer, prepare, scenario
from bench.deliver import BrokenRunError, Delivery, deliver, run_processes
from bench.measures import Results, build_table
from bench.report import Sample
from bench.sink import SinkProcess
from bench.workspace import (
    Postgres,
    Workspace,
    copy_sqlite,
    copy_to_postgres,
    new_sqlite,
    postgres_error,
    settle_file,
)
from nurture.db.engine import make_engine

RESULTS = Path(__file__).resolve().parent / "results"
NOW = scenario.NOW.isoformat()


@dataclass(frozen=True)
class Options:
    """What to run, from the command line."""

    n: int
    repeat: int
    history: tuple[int, ...]
    enrolments: int
    peer: bool
    keep: bool

    @classmethod
    def parse(cls, argv: list[str] | None) -> Options:
        """Options from ``argv`` (``--quick`` shrinks everything to a smoke run)."""
        parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        parser.add_argument("--n", type=int, help="emails due at once (default 20000)")
        parser.add_argument("--repeat", type=int, help="repetitions of each measure (default 3)")
        parser.add_argument(
            "--quick", action="store_true", help="N=2000, one repetition, no 1M rows, no peer"
        )
        parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
        args = parser.parse_args(argv)
        quick = bool(args.quick)
        return cls(
            n=args.n or (2000 if quick else 20_000),
            repeat=args.repeat or (1 if quick else 3),
            history=(10_000, 100_000) if quick else (10_000, 100_000, 1_000_000),
            enrolments=2000 if quick else 10_000,
            peer=not quick,
            keep=bool(args.keep),
        )


@dataclass
class Bench:
    """One run: the workspace, the sink, and what has been measured so far."""

    options: Options
    work: Workspace
    sink: SinkProcess
    results: Results
    broken: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Run one group of measures; a broken one is noted and the run goes on."""
        started = time.perf_counter()
        print(f"-- {title}", file=sys.stderr, flush=True)
        try:
            yield
        except BrokenRunError as exc:
            self.broken.append(f"{title}: {exc}")
            print(f"   BROKEN: {exc}", file=sys.stderr, flush=True)
        print(f"   ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    def setup(self) -> tuple[Path, frozenset[str]]:
        """The prepared SQLite file with N emails due at NOW, and their Message-IDs."""
        try:
            path, due, seconds = prepare.build(self.work, self.options.n)
        except scenario.SetupError as exc:
            raise BrokenRunError(f"setup: {exc}") from exc
        self.results.setup_seconds = seconds
        self.results.due = due
        return path, due.message_ids

    def sqlite_and_floor(self, prepared: Path, expected: frozenset[str]) -> None:
        """nurture on SQLite, one worker, interleaved with the smtplib floor."""
        capture = self.work.path("capture.bin")
        rates, floor, rss = [], [], []
        for i in range(self.options.repeat):
            url = copy_sqlite(prepared, self.work.path("run.db"))
            env = self.work.env(url, self.sink.url, NOW)
            if i == 0:
                with self.sink.capturing(capture):
                    run = self._deliver(env, expected, 1)
                self.results.message_bytes = peer.median_size(capture)
            else:
                run = self._deliver(env, expected, 1)
            rates.append(run.rate)
            rss.append(run.peak_rss_mb[0])
            floor.append(self._floor(capture, len(expected)))
        self.results.sqlite = Sample.of(rates)
        self.results.floor = Sample.of(floor)
        self.results.rss = Sample.of(rss)
        self.results.sink_capacity = Sample.of([self._floor(capture, len(expected), "--pipelined")])
        self.results.capture = capture

    def _deliver(self, env: dict[str, str], expected: frozenset[str], workers: int) -> Delivery:
        """One delivery; its problems (a missing or repeated email) mark the run broken."""
        run = deliver(self.sink, env, self.work.root, expected, workers)
        where = env["NURTURE_DATABASE_URL"].split(":", 1)[0]
        self.broken += [f"{where}, {workers} worker(s): {p}" for p in run.problems]
        return run

    def _floor(self, capture: Path, count: int, *mode: str) -> float:
        self.sink.reset()
        command = [sys.executable, str(Path(__file__).parent / "floor.py"), *mode]
        finished = run_processes(
            [[*command, str(self.sink.port), str(capture)]], os.environ, self.work.root
        )
        received = self.sink.received(self.work.path("received.txt"))
        if len(received) != count or len(set(received)) != count:
            raise BrokenRunError(f"floor: the sink received {len(received)} of {count}")
        seconds = json.loads(finished.outputs[0].strip().splitlines()[-1])["seconds"]
        return count / float(seconds)

    def scale(self, prepared: Path, expected: frozenset[str]) -> None:
        """One worker against two on PostgreSQL, interleaved, on fresh copies of one database."""
        why = postgres_error()
        if why is not None:
            self.results.notes.append(f"PostgreSQL not measured: {why}")
            return
        pg = Postgres()
        try:
            template = pg.create("template")
            copy_to_postgres(f"sqlite:///{prepared}", pg.url(template))
            runs: dict[int, list[Delivery]] = {1: [], 2: []}
            for i in range(self.options.repeat):
                for workers in (1, 2):
                    with pg.clone(template, f"run{i}_{workers}") as url:
                        env = self.work.env(url, self.sink.url, NOW)
                        runs[workers].append(self._deliver(env, expected, workers))
            self.results.pg1 = Sample.of([r.rate for r in runs[1]])
            self.results.pg2 = Sample.of([r.rate for r in runs[2]])
            self.results.pg2_rss = Sample.of([max(r.peak_rss_mb) for r in runs[2]])
            for workers, attribute in ((1, "pg1_busy"), (2, "pg2_busy")):
                busy = [100 * r.machine_busy for r in runs[workers] if r.machine_busy is not None]
                setattr(self.results, attribute, Sample.of(busy) if busy else None)
            self.results.duplicates = sum(r.exact.duplicates for r in runs[2])
        finally:
            pg.close()

    def peer(self) -> None:
        """django-post-office queuing and delivering the same N, a template of the same size."""
        if self.results.capture is None:
            raise BrokenRunError("no captured nurture email to size the peer's template on")
        python = peer.ensure_venv()
        template = peer.template_like(self.results.capture)
        self.results.peer_template = template
        runs = [
            peer.run(python, self.sink, template, self.options.n, self.work.root)
            for _ in range(self.options.repeat)
        ]
        self.results.peer_deliver = Sample.of([self.options.n / r.deliver_seconds for r in runs])
        self.results.peer_queue = Sample.of([self.options.n / r.queue_seconds for r in runs])

    def flat_cost(self) -> None:
        """The idle tick as the history grows, and one idle `nurture tick` process.

        The history is grown once, a copy kept at each size; the sizes are
        then timed in turn, repetition by repetition, so a shared machine's
        slow and fast spells fall on every size alike, not on whichever was
        measured during them.
        """
        path = self.work.path("history.db")
        url = new_sqlite(path)
        engine = make_engine(url)
        sizes: dict[int, str] = {}
        try:
            for rows in self.options.history:
                flat.grow_history(engine, rows)
                engine.dispose()
                settle_file(path)
                sizes[rows] = copy_sqlite(path, self.work.path(f"history-{rows}.db"))
            self.results.history_rows = flat.message_rows(engine)
        finally:
            engine.dispose()
        runtimes = {rows: self.work.runtime(at, self.sink.url, NOW) for rows, at in sizes.items()}
        times: dict[int, list[float]] = {rows: [] for rows in sizes}
        try:
            for _ in range(self.options.repeat):
                for rows, runtime in runtimes.items():
                    times[rows].append(flat.idle_tick_ms(runtime, 100))
        finally:
            for runtime in runtimes.values():
                runtime.close()
        for rows, measured in times.items():
            self.results.idle[rows] = Sample.of(measured)
        self.results.cold_idle = Sample.of(
            [flat.cold_tick_ms(self.work, url, self.sink.url) for _ in range(self.options.repeat)]
        )

    def enrolment(self) -> None:
        """Courses enrolled and planned per second, by `nurture import` and one by one."""
        count = self.options.enrolments
        csv = flat.enrolment_csv(self.work.path("enrol.csv"), count)
        empty = self.work.path("empty.db")
        new_sqlite(empty)
        settle_file(empty)
        imports, singles = [], []
        for _ in range(self.options.repeat):
            url = copy_sqlite(empty, self.work.path("enrol.db"))
            imports.append(count / flat.import_seconds(self.work, url, csv, count))
            url = copy_sqlite(empty, self.work.path("enrol.db"))
            runtime = self.work.runtime(url, "memory:", NOW)
            singles.append(count / flat.enrol_seconds(runtime, csv))
            runtime.close()
        self.results.enrol_import = Sample.of(imports)
        self.results.enrol_single = Sample.of(singles)
        self.results.enrolments = count


def machine() -> str:
    """Where and on what code the numbers were taken."""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores, load {load}, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; {code_version()}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def code_version() -> str:
    """The commit measured, and which of nurture's files differed from it."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "nurture", "templates", "alembic"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    if not changed:
        return f"code: {head}"
    names = ", ".join(sorted({Path(line[3:]).name for line in changed})[:8])
    return f"code: {head} + uncommitted changes to {len(changed)} file(s) ({names})"


def fingerprint() -> str:
    """A hash of nurture's code, templates and migrations, to notice edits during a run."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for folder in ("nurture", "templates", "alembic"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    """Run every measure, print the table, return 1 if the run was broken."""
    options = Options.parse(argv)
    before, code = machine(), fingerprint()
    started = time.perf_counter()
    work = Workspace.create(RESULTS)
    results = Results(n=options.n, repeat=options.repeat)
    broken: list[str] = []
    try:
        with SinkProcess() as sink:
            bench = Bench(options, work, sink, results, broken)
            steps: list[tuple[str, Callable[[], None]]] = []
            with bench.step(f"setup: {options.n} clients with one email due each"):
                prepared, expected = bench.setup()
                steps = [
                    (
                        "nurture on SQLite and the floor",
                        lambda: bench.sqlite_and_floor(prepared, expected),
                    ),
                    ("PostgreSQL, one and two workers", lambda: bench.scale(prepared, expected)),
                ]
                if options.peer:
                    steps.append(("django-post-office", bench.peer))
                steps += [("idle ticks", bench.flat_cost), ("enrolment", bench.enrolment)]
            for title, run in steps:
                with bench.step(title):
                    run()
    finally:
        if not options.keep:
            work.remove()
    results.seconds = time.perf_counter() - started
    if fingerprint() != code:
        results.notes.append(
            "WARNING: nurture's code or templates changed during the run; "
            "the repetitions may have measured different versions"
        )
    header = [f"before: {before}", f"after:  {machine()}"]
    text = "\n".join([*header, build_table(results).render(), *results.footer(broken)])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%S}.txt").write_text(text + "\n", encoding="utf-8")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
