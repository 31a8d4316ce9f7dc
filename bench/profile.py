"""Where a delivering tick spends its time, per email.

    python bench/profile.py [--n 2000] [--pyinstrument FILE.html]

Prepares N due emails exactly as ``run.py`` does, then runs one real
``Dispatcher.tick`` in this process against the bench's SMTP sink, with a
stopwatch around each stage of the deliver path (claim, load, Jinja, CSS
inlining, the calendar invite, MIME, the unsubscribe token, the SMTP
exchange, recording the outcome).  The stopwatches cost about a microsecond
per call, so the split is that of an unprofiled run; whatever no stopwatch
covers is shown as "rest of the loop".  With ``--pyinstrument`` (``pip
install pyinstrument``), a second tick on a fresh copy runs under the
sampling profiler and its call tree is written as HTML.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/profile.py`

import nurture.rendering
from bench import prepare, scenario
from bench.sink import SinkProcess
from bench.workspace import (
    Postgres,
    Workspace,
    copy_sqlite,
    copy_to_postgres,
    sqlite_url,
)
from nurture.db import queue
from nurture.delivery import READ_CHUNK, Dispatcher, TickReport
from nurture.runtime import Runtime
from nurture.tracking import Unsubscribe

RESULTS = Path(__file__).resolve().parent / "results"
NOW = scenario.NOW.isoformat()


class Stopwatches:
    """Accumulated seconds and calls per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[Callable[[], None]] = []
        self.missing: list[str] = []

    def wrap(self, owner: Any, attribute: str, stage: str) -> None:
        """Time every call of ``owner.attribute`` under ``stage`` (until ``remove``).

        The deliver path is under active development: a stage whose function no
        longer exists is reported as missing rather than failing the profile.
        """
        original: Callable[..., Any] | None = getattr(owner, attribute, None)
        if original is None:
            self.missing.append(f"{stage} ({attribute})")
            return
        if attribute in vars(owner):
            self._undo.append(lambda: setattr(owner, attribute, original))
        else:  # a method found on the class: drop the instance's stand-in
            self._undo.append(lambda: delattr(owner, attribute))

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1

        setattr(owner, attribute, timed)

    def remove(self) -> None:
        """Put every original back."""
        while self._undo:
            self._undo.pop()()


class TimedInliner:
    """Stands in for the renderer's CSS inliner, timing it."""

    def __init__(self, inliner: Any, watches: Stopwatches) -> None:
        self._inliner = inliner
        self._watches = watches

    def inline(self, html: str) -> str:
        """Inline the CSS of ``html``, timed as one stage."""
        started = time.perf_counter()
        try:
            return str(self._inliner.inline(html))
        finally:
            self._add(started, 1)

    def inline_many(self, htmls: list[str]) -> list[str]:
        """Inline the CSS of a batch (css_inline's threads), timed as the same stage."""
        started = time.perf_counter()
        try:
            return list(self._inliner.inline_many(htmls))
        finally:
            self._add(started, len(htmls))

    def _add(self, started: float, calls: int) -> None:
        stage = "render: CSS inlining (css_inline)"
        self._watches.seconds[stage] += time.perf_counter() - started
        self._watches.calls[stage] += calls


def instrument(runtime: Runtime, dispatcher: Dispatcher) -> Stopwatches:
    """Stopwatches around every stage of the deliver path of ``dispatcher``."""
    watches = Stopwatches()
    watches.wrap(queue, "claim", "db: claim a batch (UPDATE ... RETURNING)")
    watches.wrap(dispatcher, "_load", f"db: read claimed emails, {READ_CHUNK} at a time (Core)")
    watches.wrap(
        dispatcher, "_begin_send", "db: last outcome + flag in flight (2 UPDATEs, 1 COMMIT)"
    )
    watches.wrap(dispatcher, "_flush", "db: outcomes left at a batch's end (COMMIT)")
    watches.wrap(runtime.renderer, "_run", "render: Jinja (subject, text, HTML)")
    runtime.renderer._inliner = TimedInliner(runtime.renderer._inliner, watches)
    watches.wrap(nurture.rendering, "invite_attachments", "invite: iCalendar (nurture.invites)")
    watches.wrap(nurture.rendering, "build_message", "MIME: build and serialise (nurture.mime)")
    watches.wrap(Unsubscribe, "url", "unsubscribe link (signed token, HMAC)")
    stages = dispatcher._stages
    watches.wrap(stages, "announce", "SMTP: envelope out (MAIL, RCPT, DATA in one write)")
    watches.wrap(stages, "hand_over", "SMTP: envelope replies, message out")
    watches.wrap(stages, "settle", "SMTP: the server's answer (waits not overlapped)")
    return watches


def fresh_copy(work: Workspace, prepared: Path, pg: Postgres | None, name: str) -> str:
    """A copy of the prepared database to tick on: an SQLite file, or a PostgreSQL one."""
    if pg is None:
        return copy_sqlite(prepared, work.path("run.db"))
    url = pg.url(pg.create(name))
    copy_to_postgres(sqlite_url(prepared), url)
    return url


def timed_tick(url: str, work: Workspace, sink: SinkProcess) -> tuple[float, Stopwatches]:
    """One instrumented tick on ``url``; its seconds and stopwatches."""
    runtime = work.runtime(url, sink.url, NOW)
    dispatcher = runtime.ready().dispatcher()
    runtime.sequence  # noqa: B018  (load and validate the templates outside the timing)
    watches = instrument(runtime, dispatcher)
    started = time.perf_counter()
    report: TickReport = dispatcher.tick()
    seconds = time.perf_counter() - started
    watches.remove()
    runtime.close()
    if report.sent == 0:
        raise SystemExit(f"nothing was sent: {report}")
    return seconds, watches


def breakdown(seconds: float, sent: int, watches: Stopwatches) -> str:
    """The stages as a table: total, per email, share of the tick."""
    lines = [f"{'stage':<50} {'total s':>8} {'us/email':>9} {'share':>6}"]
    rows = sorted(watches.seconds.items(), key=lambda item: -item[1])
    rows.append(
        (
            "rest of the loop (decide, context, Job, commit glue)",
            seconds - sum(watches.seconds.values()),
        )
    )
    for stage, total in rows:
        lines.append(
            f"{stage:<50} {total:>8.2f} {total / sent * 1e6:>9.0f} {total / seconds:>6.1%}"
        )
    lines.append(
        f"{'whole tick':<50} {seconds:>8.2f} {seconds / sent * 1e6:>9.0f} {1:>6.0%}"
        f"   ({sent / seconds:.0f} emails/s in-process, no start-up)"
    )
    lines += [f"(not in this version of the code: {m})" for m in watches.missing]
    return "\n".join(lines)


def sampled(url: str, work: Workspace, sink: SinkProcess, html: Path) -> None:
    """A second, uninstrumented tick under pyinstrument, written to ``html``."""
    from pyinstrument import Profiler  # noqa: PLC0415  (optional: pip install pyinstrument)

    runtime = work.runtime(url, sink.url, NOW)
    dispatcher = runtime.ready().dispatcher()
    runtime.sequence  # noqa: B018
    with Profiler(interval=0.0005) as profiler:
        dispatcher.tick()
    runtime.close()
    html.write_text(profiler.output_html(), encoding="utf-8")
    print(profiler.output_text(show_all=False, color=False, unicode=False)[:6000])


def main(argv: list[str] | None = None) -> int:
    """Prepare, tick once with stopwatches (and once sampled, if asked), print the split."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="emails due (default 2000)")
    parser.add_argument("--pyinstrument", type=Path, help="also profile with pyinstrument")
    parser.add_argument("--postgres", action="store_true", help="tick on PostgreSQL")
    args = parser.parse_args(argv)
    work = Workspace.create(RESULTS)
    pg = Postgres() if args.postgres else None
    try:
        with SinkProcess() as sink:
            prepared, due_set, _ = prepare.build(work, args.n)
            due = len(due_set.message_ids)
            sink.reset()
            seconds, watches = timed_tick(fresh_copy(work, prepared, pg, "profile"), work, sink)
            received = len(sink.received(work.path("received.txt")))
            if received != due:
                raise SystemExit(f"the sink received {received} of {due}")
            print(breakdown(seconds, due, watches))
            if args.pyinstrument is not None:
                url = fresh_copy(work, prepared, pg, "sampled")
                sampled(url, work, sink, args.pyinstrument)
    finally:
        if pg is not None:
            pg.close()
        work.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
