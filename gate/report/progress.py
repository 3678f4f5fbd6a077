"""Scenarios done out of the total, time elapsed and an estimate of what is left: the line a
person watching a long matrix on a terminal wants. Pure: the clock is passed in.

The estimate for a scenario still to run is what it took in the last passing run on this
box (`before`), else the mean scenario of this run so far; `bound` (the declared ready
timeout a scenario may wait) gives the most the rest can take in waits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Progress:
    names: Sequence[str]
    began: float
    before: Mapping[str, float] = field(default_factory=dict)
    """Seconds each scenario took in the last passing run on this box."""
    bound: float = 0.0
    """The most one scenario may wait on the stack (its declared ready timeout)."""
    starts: list[float] = field(default_factory=list)
    """When each scenario began; a scenario is done when the next one begins."""

    @property
    def total(self) -> int:
        return len(self.names)

    def scenario(self, now: float) -> None:
        self.starts.append(now)

    @property
    def done(self) -> int:
        return max(0, len(self.starts) - 1)

    def text(self, now: float) -> str:
        """e.g. `scenario 3/7, 1:02 elapsed, ~1:40 left, waits at most 8:00`."""
        current = min(len(self.starts), self.total)
        said = f"scenario {current}/{self.total}, {clock(now - self.began)} elapsed"
        left = self.left(now)
        if left is not None:
            said += f", ~{clock(left)} left"
        if self.bound:
            said += f", waits at most {clock(self.bound * (self.total - self.done))}"
        return said

    def left(self, now: float) -> float | None:
        """The estimate of what is left, or None when nothing yet says."""
        mean = (self.starts[-1] - self.starts[0]) / self.done if self.done else None
        ahead = [self.before.get(name, mean) for name in self.names[self.done :]]
        if not ahead or any(seconds is None for seconds in ahead):
            return None
        in_current = now - self.starts[-1] if self.starts else 0.0
        return max(0.0, sum(s for s in ahead if s is not None) - in_current)


def clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"
