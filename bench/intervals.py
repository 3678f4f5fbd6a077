"""Time intervals on one clock: merge, clip, subtract, measure. Pure, no I/O.

The overhead bench asks "how much of the wall time was the stack's own work"; the stack's
commands and its convergence overlap each other (a status poll runs while the node syncs),
so time is counted as the length of a union, never as a sum.
"""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[float, float]


def merged(intervals: Iterable[Interval]) -> list[Interval]:
    """The union as sorted, disjoint intervals; empty and reversed ones are dropped."""
    out: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def total(intervals: Iterable[Interval]) -> float:
    """The length of the union (time covered at least once)."""
    return sum(end - start for start, end in merged(intervals))


def clipped(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The parts of `intervals` inside `window`, merged."""
    low, high = window
    return merged((max(s, low), min(e, high)) for s, e in intervals)


def minus(intervals: Iterable[Interval], removed: Iterable[Interval]) -> list[Interval]:
    """The parts of `intervals` that no interval of `removed` covers, merged."""
    holes = merged(removed)
    out: list[Interval] = []
    for start, end in merged(intervals):
        cursor = start
        for low, high in holes:
            if high <= cursor or low >= end:
                continue
            if low > cursor:
                out.append((cursor, low))
            cursor = max(cursor, high)
        if cursor < end:
            out.append((cursor, end))
    return out
