"""Gate overhead from one run's timings: what of the wall time was not the stack's own work.
Pure, no I/O.

The stack's intrinsic time is the union of
- its commands' own run time on the box (the control command, timed on the box by a
  wrapper: `StackRun`), and
- convergence: from the end of each command that (re)starts services to the last ready
  line those services wrote in the stack's own logs before the next such command.
Overhead = wall - intrinsic. It splits into time inside gate's commands that is not
intrinsic (channels, boxtool, gate's own probes) and time outside any command (gate's
Python: start-up, planning, the pauses between polls, reports).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.intervals import Interval, clipped, merged, minus, total
from bench.stacklog import LogLine, last_ready

STARTS_SERVICES = frozenset({"apply", "up", "restart", "start"})
"""Control verbs after which services come up: convergence runs from their end."""


@dataclass(frozen=True)
class StackRun:
    """One control command as the box saw it: wall-clock start and end, exit code, verb."""

    start: float
    end: float
    exit: int
    verb: str


def parse_stack_runs(text: str) -> list[StackRun]:
    """The wrapper's log: `START END EXIT VERB` per line; malformed lines are skipped."""
    runs = []
    for line in text.splitlines():
        parts = line.split()
        try:
            runs.append(StackRun(float(parts[0]), float(parts[1]), int(parts[2]), parts[3]))
        except (IndexError, ValueError):
            continue
    return runs


@dataclass(frozen=True)
class Command:
    """One command from events.jsonl: the client's start and end, and its text."""

    start: float
    end: float
    text: str


def commands_from(events: Sequence[Mapping[str, Any]]) -> list[Command]:
    return [Command(float(e["start"]), float(e["end"]), str(e["command"])) for e in events]


def waits_of(checks: Sequence[Mapping[str, Any]], names: Collection[str]) -> list[Interval]:
    """The time span of each check record named in `names` (summary.json's `checks`: a
    record ends at `finished_at` and lasted `duration`)."""
    return [
        (float(c["finished_at"]) - float(c["duration"]), float(c["finished_at"]))
        for c in checks
        if c.get("name") in names
    ]


def convergence(runs: Sequence[StackRun], lines: Sequence[LogLine], end: float) -> list[Interval]:
    """For each command that starts services: its end -> the last ready line logged after
    it started and before the next such command began (nothing when none came later)."""
    starters = sorted((r for r in runs if r.verb in STARTS_SERVICES), key=lambda r: r.start)
    found: list[Interval] = []
    for index, run in enumerate(starters):
        until = starters[index + 1].start if index + 1 < len(starters) else end
        last = last_ready(lines, run.start, until)
        if last is not None and last > run.end:
            found.append((run.end, last))
    return found


@dataclass(frozen=True)
class Breakdown:
    wall: float
    commands: int
    in_commands: float
    stack_commands: int
    status_calls: int
    stack_on_box: float
    stack_as_sent: float
    """The same stack commands' durations as gate saw them (client side), summed."""
    converging: float
    """Convergence time not already inside a stack command."""
    intrinsic: float
    overhead_in_commands: float
    overhead_outside: float
    settles: tuple[float, ...] = ()
    """Each convergence after a command that started services, in order, in seconds."""
    counting: float = 0.0
    """Overhead spent in gate's waits for a counter to grow (the stack's pace sets it)."""

    @property
    def overhead(self) -> float:
        return self.wall - self.intrinsic

    @property
    def share(self) -> float:
        return self.overhead / self.wall if self.wall > 0 else 0.0


def breakdown(
    window: Interval,
    commands: Sequence[Command],
    runs: Sequence[StackRun],
    lines: Sequence[LogLine],
    control: str,
    counter_waits: Sequence[Interval] = (),
) -> Breakdown:
    """One run's split of its wall time (see the module docstring); `counter_waits` are
    gate's waits for a counter to grow, shown apart as part of the overhead."""
    inside = clipped(((c.start, c.end) for c in commands), window)
    stack = clipped(((r.start, r.end) for r in runs), window)
    converging = clipped(convergence(runs, lines, window[1]), window)
    intrinsic = merged([*stack, *converging])
    wall = window[1] - window[0]
    sent = [c for c in commands if c.text.startswith(control)]
    return Breakdown(
        wall=wall,
        commands=len(commands),
        in_commands=total(inside),
        stack_commands=len(runs),
        status_calls=sum(r.verb == "status" for r in runs),
        stack_on_box=total(stack),
        stack_as_sent=sum(c.end - c.start for c in sent),
        converging=total(minus(converging, stack)),
        intrinsic=total(intrinsic),
        overhead_in_commands=total(minus(inside, intrinsic)),
        overhead_outside=wall - total([*inside, *intrinsic]),
        settles=tuple(end - start for start, end in converging),
        counting=total(minus(clipped(counter_waits, window), intrinsic)),
    )
