"""`--shard I/N`: one share of a run's scenarios, the same share on every machine, so N CI
jobs (or N boxes) together walk the whole plan exactly once.

Scenarios are dealt round-robin in the order of their names, which no box, clock or
starting config changes; each share then keeps the run's own order (the planner's
restart-minimising walk, or the declared one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gate.errors import UsageError

_FORM = re.compile(r"([0-9]+)/([0-9]+)")


class Named(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Named)


@dataclass(frozen=True)
class Shard:
    index: int
    """1-based: shard 1/3 is the first of three."""
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def take(self, scenarios: Sequence[S]) -> list[S]:
        """This shard's scenarios, in the order given."""
        names = sorted(s.name for s in scenarios)
        mine = set(names[self.index - 1 :: self.count])
        return [s for s in scenarios if s.name in mine]


def parse_shard(text: str) -> Shard:
    """`I/N` with 1 <= I <= N; anything else is one usage line."""
    match = _FORM.fullmatch(text.strip())
    index, count = (int(match[1]), int(match[2])) if match else (0, 0)
    if not 1 <= index <= count:
        raise UsageError(f"--shard takes I/N with 1 <= I <= N (e.g. 2/3), not {text!r}")
    return Shard(index, count)


def shard_lines(scenarios: Sequence[Named], count: int, chosen: Shard | None) -> list[str]:
    """`--list --shard I/N`: every shard's scenarios, the chosen one marked."""
    lines = [f"shards ({count} jobs together walk these {len(scenarios)} scenarios once):"]
    for index in range(1, count + 1):
        shard = Shard(index, count)
        names = ", ".join(s.name for s in shard.take(scenarios)) or "(none)"
        mark = "  <- this job" if shard == chosen else ""
        lines.append(f"  {shard}: {names}{mark}")
    return lines
