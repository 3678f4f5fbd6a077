"""The run's records and how they become one verdict and one exit code: pure, no I/O.

Precedence (docs/verdicts.md): a box left dirty (4) beats an interrupt (130/143/129),
which beats a reported error's own code, which beats the records' verdict. A run that
checked nothing never passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gate.checks import CheckRecord, SkipClass, Verdict, worst
from gate.errors import BoxDirty, ExitCode, GateError
from gate.signals import Interrupted

WORDS = {
    ExitCode.PASSED: "passed",
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage error",
    ExitCode.INCONCLUSIVE: "inconclusive",
    ExitCode.DIRTY: "BOX DIRTY",
    ExitCode.LOCKED: "box locked",
}


@dataclass
class Ledger:
    """What a run found: check records, notes, per-scenario lines, and how it ended."""

    records: list[CheckRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    items: list[dict[str, str]] = field(default_factory=list)
    observers: dict[str, list[str]] = field(default_factory=dict)
    """Matrix axis -> the checks whose expectation depends on it (empty: unobserved)."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    """Each exercised fault's timings (gate/faults.py FaultTimings), for summary.json."""
    error: BaseException | None = None
    signal: int | None = None
    """The first signal received, even one that arrived after the last command."""

    def exit_code(self, *, strict: bool) -> int:
        if isinstance(self.error, BoxDirty):
            return ExitCode.DIRTY
        if isinstance(self.error, Interrupted):
            return self.error.exit_code
        if self.signal is not None:
            return Interrupted(self.signal).exit_code
        if isinstance(self.error, GateError):
            return self.error.exit_code
        if self.error is not None:
            return ExitCode.FAILED
        if not self.records or (strict and self.strict_failures()):
            return ExitCode.FAILED
        return {Verdict.FAIL: ExitCode.FAILED, Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE}.get(
            self.verdict(), ExitCode.PASSED
        )

    def verdict(self) -> Verdict:
        return worst(r.verdict for r in self.records)

    def strict_failures(self) -> list[str]:
        """What --strict refuses: a missing-class skip, or a run that checked nothing."""
        reasons = [
            f"skip of class missing: {r.scenario or r.name}"
            for r in self.records
            if r.verdict is Verdict.SKIP and r.skip_class is SkipClass.MISSING
        ]
        if not any(r.verdict is not Verdict.SKIP for r in self.records):
            reasons.append("no check executed")
        return reasons

    def counts(self) -> dict[str, int]:
        return {v.value: sum(r.verdict is v for r in self.records) for v in Verdict}

    @staticmethod
    def word(exit_code: int) -> str:
        return WORDS.get(exit_code, "interrupted")
