"""What a phase is, and the one ordered registry of them.

A phase is a small object: its name, whether it changes the box, the flag that selects
it, `plan` (before the baseline: is there anything to do? record named skips) and `run`.
The engine runs the selected phases in registration order, and every phase that mutates
runs inside its one always-restore. Adding a phase: its module, one `register` line in
gate/phases/__init__.py, its docs and its tests.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from gate.errors import UsageError
from gate.options import Flag, Options

if TYPE_CHECKING:
    from gate.engine.run import Run


class Phase(abc.ABC):
    """One step of a run."""

    name: ClassVar[str]
    mutates: ClassVar[bool]
    flag: ClassVar[Flag | None] = None
    """The flag that selects it; None marks the default phase of a mutating run (the matrix)."""
    destructive: ClassVar[bool] = False
    """It may break what a config change cannot put back (stops, kills, blanks secrets): it
    runs only with --safety-backup (a verified archive first) or an explicit --no-backup."""

    def plan(self, run: Run) -> bool:
        """Before the baseline: whether there is anything to do (skips are recorded here)."""
        return True

    @abc.abstractmethod
    def run(self, run: Run) -> None:
        """Do the phase's work, adding records to the run."""


_REGISTRY: list[Phase] = []


def register(phase: Phase) -> Phase:
    """Add a phase at the end of the fixed order; its flag joins the flag table."""
    if phase.destructive and not phase.mutates:
        raise ValueError(f"phase {phase.name!r}: a destructive phase mutates")
    if any(p.name == phase.name for p in _REGISTRY):
        raise ValueError(f"a phase named {phase.name!r} is already registered")
    _REGISTRY.append(phase)
    return phase


def unregister(name: str) -> None:
    """Remove a phase (tests register throwaway phases and take them out again)."""
    _REGISTRY[:] = [p for p in _REGISTRY if p.name != name]


def registered() -> tuple[Phase, ...]:
    return tuple(_REGISTRY)


def select(opts: Options) -> list[Phase]:
    """The phases a run executes, in registration order.

    Non-mutating phases (e.g. --check) run alone; otherwise the default phase runs with
    every mutating phase whose flag was given.
    """
    chosen = [p for p in _REGISTRY if p.flag is not None and p.name in opts.phases]
    readers = [p for p in chosen if not p.mutates]
    if readers:
        others = [_option(p) for p in chosen if p is not readers[0]]
        if others:
            raise UsageError(
                f"{_option(readers[0])} changes nothing and runs alone: drop {' '.join(others)}"
            )
        return readers
    refuse_unguarded(opts, chosen)
    return [p for p in _REGISTRY if p.flag is None or p in chosen]


BACKUP_FLAG = "safety_backup"
"""The phase (and flag) that takes a verified archive before any destructive phase."""


def refuse_unguarded(opts: Options, chosen: list[Phase]) -> None:
    """A destructive phase runs only after a verified backup (--safety-backup) or when the
    user said --no-backup; both at once is a contradiction."""
    backup = BACKUP_FLAG in opts.phases
    if backup and opts.no_backup:
        raise UsageError("--safety-backup and --no-backup contradict each other: drop one")
    destructive = [_option(p) for p in chosen if p.destructive]
    if destructive and not (backup or opts.no_backup):
        raise UsageError(
            f"{' '.join(destructive)} can break what a config change cannot put back: add "
            "--safety-backup (a verified archive first, rolled back on failure) or say "
            "--no-backup"
        )


def _option(phase: Phase) -> str:
    return phase.flag.option if phase.flag is not None else phase.name
