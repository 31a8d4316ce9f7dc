"""Scenario 1: kill -9 workers at random moments, many times, and restart them.

Two `nurture run` workers work through a few hundred emails while the test
SIGKILLs one of them at a random moment (after a random number of further
arrivals, plus up to 30 ms, choosing among the workers that are mid-tick)
and starts a replacement, round after round.  The SMTP server answers each
message after a few milliseconds, so kills land while a batch is being
worked through (each victim's own log tells).
Some clients were unsubscribed or erased before the workers started: they
get nothing.  The default run does 4 rounds on SQLite, CI 25 on each
backend (NURTURE_KILL_ROUNDS to choose); NURTURE_BATTERY_SEED replays a run
(the seed is printed).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.battery.workers import Db, Fleet, Worker, enrol_many, erase, wait_for, worker_env
from tests.conftest import RUN_SLOW, Cli

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Kill:
    """One round: how many emails had arrived, and whether the victim was mid-tick."""

    arrived_before: int
    mid_tick: bool


def _mid_tick(log: str) -> bool:
    """True when the worker had sent an email since its last finished tick."""
    lines = log.splitlines()
    marks = [i for i, line in enumerate(lines) if "tick_done" in line or "worker_started" in line]
    return any("email_sent" in line for line in lines[(marks[-1] if marks else 0) :])


def _busy(workers: list[Worker]) -> list[Worker]:
    """The workers that have sent an email in the tick they are in."""
    return [w for w in workers if _mid_tick(w.output())]


def _rounds() -> int:
    return int(os.environ.get("NURTURE_KILL_ROUNDS", "25" if RUN_SLOW else "4"))


def test_random_kills_lose_nothing_and_duplicate_only_flagged(
    cli: Cli, db_url: str, sink: FaultSink, fleet: Fleet, db_probe: Callable[[str], Db]
) -> None:
    """SIGKILL at random points, round after round: every email arrives; repeats are flagged."""
    seed = int(os.environ.get("NURTURE_BATTERY_SEED", random.randrange(1 << 30)))  # noqa: S311
    rng = random.Random(seed)  # noqa: S311  (reproducible test randomness, not a secret)
    rounds = _rounds()
    emails = enrol_many(cli, 40 * rounds, NOW)
    blocked = [emails[7], emails[19], emails[33]]
    for address in blocked[:2]:
        cli.ok("unsubscribe", address, now=NOW.isoformat())
    erase(cli, blocked[2], NOW)
    db = db_probe(db_url)
    sink.plan.delay = 0.01
    fleet.env = worker_env(db_url, sink.url, NOW, NURTURE_BATCH_SIZE="15")
    live = [fleet.run(), fleet.run()]
    kills: list[Kill] = []
    for _ in range(rounds):
        target = sink.count() + rng.randint(1, 25)
        wait_for("the workers to make progress", lambda n=target: sink.count() >= n, timeout=60)
        time.sleep(rng.uniform(0, 0.03))
        # Only a worker in the middle of a tick is worth killing: a replacement
        # still starting up, or one between ticks, has nothing in flight.
        wait_for("a worker to be mid-tick", lambda: bool(_busy(live)), timeout=60, poll=0.005)
        busy = _busy(live)
        victim = busy[rng.randrange(len(busy))]
        live.remove(victim)
        before = sink.count()
        victim.kill()
        kills.append(Kill(before, _mid_tick(victim.output())))
        live.append(fleet.run())
    wait_for("every email to be settled", lambda: db.settled(NOW), timeout=180, poll=0.5)
    assert set(fleet.stop_all().values()) == {0}
    summary = check(db_url, sink, settled_by=NOW, blocked=blocked)
    assert summary.sent == len(emails) - len(blocked)
    mid_batch = sum(1 for k in kills if k.mid_tick)
    print(  # noqa: T201  (the closing note counts rounds and findings)
        f"seed={seed} rounds={rounds} kills_mid_tick={mid_batch} "
        f"arrivals={sum(summary.arrivals.values())} duplicated={summary.duplicated} "
        f"flagged={summary.flagged} most_copies={max(summary.arrivals.values())}"
    )
    assert mid_batch >= rounds // 2, kills
