"""Scenarios done out of the total, time elapsed and an estimate of what is left: the line a
person watching a long matrix on a terminal wants. Pure: the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    total: int
    began: float
    starts: list[float] = field(default_factory=list)
    """When each scenario began; a scenario is done when the next one begins."""

    def scenario(self, now: float) -> None:
        self.starts.append(now)

    @property
    def done(self) -> int:
        return max(0, len(self.starts) - 1)

    def text(self, now: float) -> str:
        """e.g. `scenario 3/7, 1:02 elapsed, ~1:40 left` (left: the mean scenario so far)."""
        current = min(len(self.starts), self.total)
        said = f"scenario {current}/{self.total}, {clock(now - self.began)} elapsed"
        if self.done == 0:
            return said
        mean = (self.starts[-1] - self.starts[0]) / self.done
        left = max(0.0, mean * (self.total - self.done) - (now - self.starts[-1]))
        return f"{said}, ~{clock(left)} left"


def clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"
