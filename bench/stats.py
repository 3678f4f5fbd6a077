"""Pure helpers for the benchmarks: medians, p95, ratios and the printed table.

No I/O here, so `make test` covers them without running a benchmark.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One method's outcome: its samples in seconds, or the one-line reason it has none."""

    method: str
    samples: tuple[float, ...] = ()
    note: str = ""


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))


def p95(samples: Sequence[float]) -> float:
    """The nearest-rank 95th percentile: the smallest sample >= 95% of them."""
    ordered = sorted(samples)
    rank = math.ceil(0.95 * len(ordered))
    return ordered[max(rank, 1) - 1]


def median_ms(samples: Sequence[float]) -> float:
    return median(samples) * 1000.0


def p95_ms(samples: Sequence[float]) -> float:
    return p95(samples) * 1000.0


def ratio(value: float, reference: float | None) -> str:
    """`value / reference` as `207x`, `4.7x` or `0.0047x`; `-` with nothing to divide by."""
    if reference is None or reference <= 0:
        return "-"
    quotient = value / reference
    if quotient >= 10:
        return f"{quotient:.0f}x"
    return f"{quotient:.1f}x" if quotient >= 1 else f"{quotient:.2g}x"


def _median_of(rows: Sequence[Row], method: str | None = None) -> float | None:
    medians = [median_ms(r.samples) for r in rows if r.samples and method in (None, r.method)]
    return min(medians) if medians else None


HEADER = ("method", "median ms", "p95 ms", "x fastest", "x fabric run", "note")


def table_lines(rows: Sequence[Row], reference: str) -> list[str]:
    """The table: one line per row; rows without samples show only their note."""
    fastest, ref = _median_of(rows), _median_of(rows, reference)
    return aligned([HEADER, *(_cells(row, fastest, ref) for row in rows)])


def aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """Cells padded to their column's widest, two spaces apart; the last column (a note)
    is left ragged. Every line has the header's number of cells."""
    count = len(lines[0])
    widths = [max(len(line[i]) for line in lines) for i in range(count - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]).rstrip()
        for line in lines
    ]


def percent(part: float, whole: float) -> str:
    """`part / whole` as a percentage with one decimal; `-` with nothing to divide by."""
    return f"{100.0 * part / whole:.1f}%" if whole > 0 else "-"


def _cells(row: Row, fastest: float | None, ref: float | None) -> tuple[str, ...]:
    if not row.samples:
        return (row.method, "-", "-", "-", "-", row.note)
    med = median_ms(row.samples)
    return (
        row.method,
        f"{med:.2f}",
        f"{p95_ms(row.samples):.2f}",
        ratio(med, fastest),
        ratio(med, ref),
        row.note,
    )


@dataclass(frozen=True)
class Step:
    """Wall times at one count of work items (scenarios, boxes) against the smallest count."""

    count: int
    runs: int
    median: float
    p95: float
    per_item: float
    added: float | None
    """Seconds per item added since the previous count; None at the first."""


def growth(walls: Mapping[int, Sequence[float]]) -> list[Step]:
    """Each count's median and p95 wall, per item, and the cost of each item added since
    the previous count (counts without samples are left out)."""
    steps: list[Step] = []
    for count in sorted(c for c, samples in walls.items() if samples):
        mid = median(walls[count])
        added = None
        if steps:
            added = (mid - steps[-1].median) / (count - steps[-1].count)
        steps.append(Step(count, len(walls[count]), mid, p95(walls[count]), mid / count, added))
    return steps
