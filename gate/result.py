"""A finished command as a value, and the three things running one can tell us."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gate.errors import Unreachable


class Outcome(enum.Enum):
    """What running a command told us: it worked, it failed, or we could not ask."""

    OK = "ok"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Result:
    """A finished command, as a value: what was sent, what came back, how long it took."""

    command: str
    outcome: Outcome
    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def lost(self) -> Unreachable | None:
        """Why the box could not be asked, as the one could-not-ask type; None if it answered."""
        if self.outcome is not Outcome.UNREACHABLE:
            return None
        return Unreachable(f"{self.command[:80]}: {self.reason}")


@dataclass(frozen=True)
class Exchange:
    """What a transport brought back for one command, before it is classified into a Result.

    `lost` is set when the link (or a timeout), not the command, ended it: the command's
    outcome is then unknown, whatever it printed before.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    lost: str = ""
