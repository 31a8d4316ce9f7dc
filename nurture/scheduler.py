"""The clock: APScheduler calls one tick at an interval; our tables hold the state.

The job is coalesced (a late run happens once, not once per missed
interval), never runs twice at once, and is never skipped for being late.
SIGTERM or SIGINT stops the loop after the email in hand.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from nurture.delivery import Dispatcher

log = logging.getLogger(__name__)


def run_forever(dispatcher: Dispatcher, interval_seconds: int) -> None:
    """Tick every ``interval_seconds`` until SIGTERM or SIGINT."""
    stop = threading.Event()
    scheduler = BlockingScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )

    def tick() -> None:
        report = dispatcher.tick(stop)
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
