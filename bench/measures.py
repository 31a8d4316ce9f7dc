"""What a run measured, and the table it makes: ratios and the issue's targets."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.peer import PeerTemplate
from bench.report import Row, Sample, Table, Target, ratio
from bench.scenario import DueSet

FLOOR_SHARE = 0.5  # nurture, one worker on SQLite, against the smtplib floor
PEER_FACTOR = 4.0  # nurture against django-post-office's delivery rate
SCALE_FACTOR = 1.6  # two workers on PostgreSQL against one
IDLE_GROWTH = 2.0  # idle tick at the largest table against the smallest
IDLE_MS = 20.0
RSS_MB = 200.0


@dataclass
class Results:
    """Every sample of one run (None: not measured)."""

    n: int
    repeat: int
    seconds: float = 0.0
    setup_seconds: float = 0.0
    due: DueSet | None = None
    message_bytes: float = 0.0
    capture: Path | None = None
    floor: Sample | None = None
    sink_capacity: Sample | None = None
    sqlite: Sample | None = None
    rss: Sample | None = None
    pg1: Sample | None = None
    pg2: Sample | None = None
    pg2_rss: Sample | None = None
    #: The share of the machine's cores busy during each run (all processes), percent.
    pg1_busy: Sample | None = None
    pg2_busy: Sample | None = None
    duplicates: int | None = None
    peer_template: PeerTemplate | None = None
    peer_deliver: Sample | None = None
    peer_queue: Sample | None = None
    idle: dict[int, Sample] = field(default_factory=dict)
    history_rows: int = 0
    cold_idle: Sample | None = None
    enrolments: int = 0
    enrol_import: Sample | None = None
    enrol_single: Sample | None = None
    notes: list[str] = field(default_factory=list)

    def footer(self, broken: list[str]) -> list[str]:
        """The lines under the table: what was due, the run time, and anything broken."""
        lines = [""]
        if self.due is not None:
            mix = ", ".join(f"{step} {count}" for step, count in self.due.steps.most_common())
            lines.append(
                f"due set: {len(self.due.message_ids)} emails ({mix}); "
                f"{self.due.invites} with a calendar invite; median message "
                f"{self.message_bytes / 1024:.1f} KiB; recorded through nurture.enrollment "
                f"in {self.setup_seconds:.0f} s (not measured)"
            )
        lines += self.notes
        verdict = "BROKEN: " + " | ".join(broken) if broken else "run complete, nothing broken"
        lines.append(
            f"N={self.n}, {self.repeat} repetition(s), {self.seconds / 60:.1f} min; {verdict}"
        )
        return lines


def build_table(r: Results) -> Table:
    """The one table of the run."""
    table = Table()
    _delivery(table, r)
    _peer(table, r)
    _scale(table, r)
    _flat(table, r)
    _memory(table, r)
    return table


def _delivery(table: Table, r: Results) -> None:
    table.section(f"1-2. one connection, {r.n} emails: the floor and nurture deliver")
    table.add(Row("floor: smtplib, pre-rendered bytes, 1 connection", r.floor, "msg/s", "baseline"))
    table.add(
        Row(
            "sink capacity: same bytes, pipelined",
            r.sink_capacity,
            "msg/s",
            _ratio(r.sink_capacity, r.floor, "floor"),
            note="the sink, not the client, would be the limit only at this rate",
        )
    )
    table.add(
        Row(
            "nurture deliver: `nurture tick`, SQLite, 1 worker",
            r.sqlite,
            "msg/s",
            _ratio(r.sqlite, r.floor, "floor"),
            _target(r.sqlite, r.floor, FLOOR_SHARE, f">= {FLOOR_SHARE} x floor"),
        )
    )


def _peer(table: Table, r: Results) -> None:
    table.section("3. peer: django-post-office, same N, same sink, 1 process")
    t = r.peer_template
    size = f"template text {t.text_bytes} B + HTML {t.html_bytes} B" if t else ""
    table.add(
        Row(
            "post_office deliver: send_queued_mail",
            r.peer_deliver,
            "msg/s",
            _ratio(r.sqlite, r.peer_deliver, "peer", "nurture "),
            _target(r.sqlite, r.peer_deliver, PEER_FACTOR, f"nurture >= {PEER_FACTOR} x peer"),
            note=size,
        )
    )
    table.add(Row("post_office queue: send_many (renders)", r.peer_queue, "msg/s"))
    asked = None
    if r.peer_deliver is not None:
        asked = Sample.of([PEER_FACTOR * v for v in r.peer_deliver.values])
    table.add(
        Row(
            f"what {PEER_FACTOR:g} x peer asks of nurture",
            asked,
            "msg/s",
            _ratio(asked, r.floor, "floor"),
            note="above 1.00 x floor, more than plain smtplib sends of bytes rendered beforehand"
            if asked is not None and r.floor is not None and asked / r.floor > 1
            else "",
        )
    )


def _scale(table: Table, r: Results) -> None:
    table.section("4. scale: PostgreSQL, same N")
    table.add(
        Row(
            "nurture deliver: PostgreSQL, 1 worker",
            r.pg1,
            "msg/s",
            _ratio(r.pg1, r.sqlite, "SQLite"),
            note=_busy(r.pg1_busy),
        )
    )
    table.add(
        Row(
            "nurture deliver: PostgreSQL, 2 workers",
            r.pg2,
            "msg/s",
            _ratio(r.pg2, r.pg1, "1 worker"),
            _target(r.pg2, r.pg1, SCALE_FACTOR, f">= {SCALE_FACTOR} x 1 worker"),
            note=_busy(r.pg2_busy),
        )
    )
    dupes = None if r.duplicates is None else Sample.of([r.duplicates])
    met = r.duplicates == 0 if r.duplicates is not None else None
    table.add(
        Row(
            "duplicates at the sink, 2 workers, all runs",
            dupes,
            "",
            target=None if met is None else Target("0", met),
        )
    )


def _busy(sample: Sample | None) -> str:
    """How busy the machine was during a delivery: what bounds two workers on a small box."""
    if sample is None:
        return ""
    spread = f" ({sample.low:.0f}-{sample.high:.0f})" if len(sample.values) > 1 else ""
    cores = os.cpu_count() or 1
    return (
        f"the machine's {cores} cores were {sample.median:.0f}% busy{spread} "
        "(workers, PostgreSQL, sink)"
    )


def _flat(table: Table, r: Results) -> None:
    table.section("5. flat cost")
    sizes = sorted(r.idle)
    for rows in sizes:
        growth = _ratio(r.idle[rows], r.idle[sizes[0]], f"{_rows(sizes[0])} rows")
        target = None
        if rows == sizes[-1] and len(sizes) > 1 and rows >= 1_000_000:
            sample, base = r.idle[rows], r.idle[sizes[0]]
            met = sample / base <= IDLE_GROWTH and sample.median < IDLE_MS
            target = Target(f"<= {IDLE_GROWTH} x {_rows(sizes[0])}, < {IDLE_MS:.0f} ms", met)
        table.add(
            Row(
                f"idle tick, in-process, {_rows(rows)} message rows",
                r.idle[rows],
                "ms",
                growth if rows != sizes[0] else "",
                target,
            )
        )
    if sizes:
        table.add(
            Row(
                f"idle `nurture tick` process, {_rows(r.history_rows)} rows",
                r.cold_idle,
                "ms",
                note="start-up and imports included: what a cron tick costs",
            )
        )
    table.add(
        Row(f"enrol+plan {r.enrolments} courses: `nurture import`", r.enrol_import, "courses/s")
    )
    table.add(
        Row(
            f"enrol+plan {r.enrolments} courses: one enroll() per transaction",
            r.enrol_single,
            "courses/s",
            note="the path of the API and `nurture enroll`",
        )
    )


def _memory(table: Table, r: Results) -> None:
    table.section("6. memory")
    table.add(
        Row(
            f"peak RSS, 1 worker delivering {r.n} (SQLite)",
            r.rss,
            "MB",
            target=None if r.rss is None else Target(f"< {RSS_MB:.0f} MB", r.rss.median < RSS_MB),
        )
    )
    table.add(Row("peak RSS, largest of 2 workers (PostgreSQL)", r.pg2_rss, "MB"))


def _rows(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


def _ratio(value: Sample | None, base: Sample | None, of: str, prefix: str = "") -> str:
    if value is None or base is None:
        return ""
    return prefix + ratio(value, base, of)


def _target(value: Sample | None, base: Sample | None, factor: float, text: str) -> Target | None:
    if value is None or base is None:
        return None
    return Target(text, value / base >= factor)
