"""The bench's one table: measures as median (min-max), ratios, targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    """The values of one measure over its repetitions."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        """A sample of at least one value."""
        if not values:
            raise ValueError("a sample needs at least one value")
        return cls(tuple(values))

    @property
    def median(self) -> float:
        """The median value."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The smallest value."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The largest value."""
        return max(self.values)

    def __truediv__(self, other: Sample) -> float:
        """The ratio of the medians."""
        return self.median / other.median


@dataclass(frozen=True)
class Target:
    """A goal from the issue, checked against the run's own numbers."""

    text: str
    met: bool


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    measure: str
    sample: Sample | None
    unit: str
    ratio: str = ""
    target: Target | None = None
    note: str = ""


@dataclass
class Table:
    """Rows in the order they were measured, grouped under headings."""

    rows: list[Row | str] = field(default_factory=list)

    def section(self, title: str) -> None:
        """Start a group of rows."""
        self.rows.append(title)

    def add(self, row: Row) -> None:
        """Append one measure."""
        self.rows.append(row)

    def render(self) -> str:
        """The table as fixed-width text."""
        header = ("measure", "median (min-max)", "ratio", "target", "")
        lines = [_cells(r) for r in self.rows if isinstance(r, Row)]
        widths = [max(len(c[i]) for c in [header, *lines]) for i in range(len(header))]
        out = [_join(header, widths), _join(tuple("-" * w for w in widths), widths)]
        cells = iter(lines)
        for row in self.rows:
            if isinstance(row, str):
                out.append(f"[{row}]")
            else:
                out.append(_join(next(cells), widths))
                if row.note:
                    out.append(f"    {row.note}")
        return "\n".join(out)

    def targets(self) -> list[Target]:
        """Every target checked in this run."""
        return [r.target for r in self.rows if isinstance(r, Row) and r.target is not None]


def _cells(row: Row) -> tuple[str, ...]:
    target = row.target
    verdict = "" if target is None else ("PASS" if target.met else "MISS")
    return (
        row.measure,
        _spread(row.sample, row.unit),
        row.ratio,
        target.text if target else "",
        verdict,
    )


def _join(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def _spread(sample: Sample | None, unit: str) -> str:
    if sample is None:
        return "not measured"
    fmt = _formatter(sample.median)
    if len(sample.values) == 1:
        return f"{fmt(sample.median)} {unit}"
    return f"{fmt(sample.median)} {unit} ({fmt(sample.low)}-{fmt(sample.high)})"


def _formatter(value: float) -> Callable[[float], str]:
    """Enough digits to read, never more: 12,345 / 123 / 12.3 / 1.23 / 0.123 (a count: 0)."""
    size = abs(value)
    if size >= 1000 or (isinstance(value, int) and not isinstance(value, bool)):
        return lambda v: f"{v:,.0f}"
    if size >= 100:
        return lambda v: f"{v:.0f}"
    if size >= 10:
        return lambda v: f"{v:.1f}"
    if size >= 1:
        return lambda v: f"{v:.2f}"
    return lambda v: f"{v:.3f}"


def ratio(value: Sample, base: Sample, of: str) -> str:
    """The ratio of the medians, e.g. '0.41 x floor'.

    When both were measured the same number of times, interleaved, the range of
    the per-repetition ratios follows: '0.41 x floor (0.39-0.44)'.
    """
    text = f"{value / base:.2f} x {of}"
    if len(value.values) == len(base.values) > 1:
        pairs = [v / b for v, b in zip(value.values, base.values, strict=True)]
        text += f" ({min(pairs):.2f}-{max(pairs):.2f})"
    return text
