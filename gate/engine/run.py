"""What a phase sees: the run's frozen inputs, the box, and where its findings go."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.artifacts import Artifacts
from gate.box import Box
from gate.checks import CheckRecord
from gate.contract import Config
from gate.engine.ledger import Ledger
from gate.hints import gate_command
from gate.inventory import HostSpec
from gate.options import ContractFile, Options
from gate.report import Console
from gate.signals import SignalGuard
from gate.snapshot import Baseline, Journal

if TYPE_CHECKING:
    from gate.phases.base import Phase
    from gate.repairs import Repair


@dataclass(frozen=True)
class RunContext:
    """The inputs of one run, fixed before the first side effect."""

    opts: Options
    contract_file: ContractFile
    host: HostSpec
    run_id: str
    phases: tuple[Phase, ...]
    lock_grace: float
    watchdog_s: float = 0.0
    """The on-box watchdog's limit for a mutating run (0: off; gate/watchdog.py)."""

    @property
    def facts(self) -> Mapping[str, str]:
        """Run-wide facts: the contract's defaults, the inventory's [requirements], --fact."""
        defaults = self.contract_file.contract.facts
        return {**defaults, **self.host.requirements, **self.opts.facts}

    @property
    def mutates(self) -> bool:
        return any(p.mutates for p in self.phases)

    @property
    def watchdog(self) -> float:
        """The watchdog limit this run's lock carries: only a mutating run that restores
        arms one (`--keep` leaves the box on its last scenario on purpose; `--recover`)."""
        restores = self.mutates and not (self.opts.recover or self.opts.keep)
        return self.watchdog_s if restores else 0.0


class Run:
    """One run against one box, as its phases see it."""

    def __init__(
        self,
        ctx: RunContext,
        console: Console,
        artifacts: Artifacts,
        guard: SignalGuard,
    ) -> None:
        self.ctx = ctx
        self.console = console
        self.artifacts = artifacts
        console.marks = artifacts.record_mark  # phases and wait polls for report.html
        self.guard = guard
        self.ledger = Ledger()
        self.started = time.time()
        self.baseline: Baseline | None = None
        self.config: Config = {}
        """The box's config (secret paths masked) as read before the first change."""
        self.backup_archive: str | None = None
        """The verified safety backup's path on the box (--safety-backup), kept for a
        rollback until the run ends."""
        self.repairs: dict[str, Repair] = {}
        """What the phases broke and have not mended yet (gate/repairs.py), oldest first."""
        self._box: Box | None = None
        self._journal: Journal | None = None

    @property
    def box(self) -> Box:
        if self._box is None:
            raise RuntimeError("a phase ran before the box was connected")
        return self._box

    def attach(self, box: Box, journal: Journal) -> None:
        self._box, self._journal = box, journal

    def add(self, record: CheckRecord) -> None:
        self.ledger.records.append(record)
        self.console.check(record)

    def note(self, text: str, style: str = "") -> None:
        self.ledger.notes.append(text)
        self.console.line(text, style)

    def journal_note(self, event: str, **details: Any) -> None:
        if self._journal is not None:
            self._journal.note(event, **details)

    def hint(self, *extra: str, matrix: str | None = None) -> str:
        """A command reaching this box under this contract, runnable exactly as printed."""
        return gate_command(self.ctx.opts, *extra, matrix=matrix)
