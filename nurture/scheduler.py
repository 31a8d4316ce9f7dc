"""The clock: APScheduler calls one tick at an interval; our tables hold the state.

The job is coalesced (a late run happens once, not once per missed
interval), never runs twice at once, and is never skipped for being late.
While the database cannot be reached the worker backs off (the interval,
doubling, up to a minute or the interval if longer) and says so in one log
line, then resumes by itself.  SIGTERM or SIGINT stops the loop after the
email in hand.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from nurture.delivery import DATABASE_UNREACHABLE, Dispatcher, TickReport, first_line

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """When to try again after consecutive failures (pure apart from the clock passed in)."""

    interval: float
    cap: float = 60.0
    failures: int = 0
    resume_at: float = 0.0

    def ready(self, now: float) -> bool:
        """True when a tick may run at monotonic time ``now``."""
        return now >= self.resume_at

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; return the delay before the next try."""
        self.failures += 1
        delay = min(self.interval * 2.0 ** (self.failures - 1), max(self.cap, self.interval))
        self.resume_at = now + delay
        return delay

    def succeeded(self) -> int:
        """Record a success; return how many failures it ended."""
        ended, self.failures, self.resume_at = self.failures, 0, 0.0
        return ended


def run_forever(dispatcher: Dispatcher, interval_seconds: int) -> None:
    """Tick every ``interval_seconds`` until SIGTERM or SIGINT."""
    stop = threading.Event()
    backoff = Backoff(interval_seconds)
    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    def tick() -> None:
        if not backoff.ready(time.monotonic()):
            return
        try:
            report = dispatcher.tick(stop)
        except DATABASE_UNREACHABLE as exc:
            delay = backoff.failed(time.monotonic())
            log.warning("database_unavailable retry_in=%.0fs error=%s", delay, first_line(exc))
            return
        if backoff.failures:
            log.warning("database_back after=%d failed tick(s)", backoff.succeeded())
        _log_report(report)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker_stopping signal=%s", signal.Signals(signum).name)
        stop.set()
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=interval_seconds),
        id="tick",
        next_run_time=datetime.now(UTC),
    )
    log.info("worker_started interval=%ds", interval_seconds)
    scheduler.start()
    log.info("worker_stopped")


def _log_report(report: TickReport) -> None:
    if report.handled or report.lost or report.released:
        log.info(
            "tick_done sent=%d deferred=%d skipped=%d cancelled=%d retried=%d failed=%d "
            "lost=%d released=%d",
            report.sent,
            report.deferred,
            report.skipped,
            report.cancelled,
            report.retried,
            report.failed,
            report.lost,
            report.released,
        )
