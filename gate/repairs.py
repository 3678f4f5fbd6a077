"""What a destructive phase broke and must mend: a fault to heal, a secret file to put back.

A phase opens a repair BEFORE it breaks anything. Its steps go into the on-box journal, so
a run killed in the middle leaves them for `--recover`; the engine mends every repair still
open before its rollback and restore (shielded from signals); a phase that healed what it
broke closes the repair itself (`mend`). Steps are control verbs or boxtool verbs, never a
secret, and never a path outside the stack dir that the box did not name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.checks import CheckRecord, Verdict
from gate.errors import BoxDirty, Unreachable
from gate.snapshot import JOURNAL_FILE
from gate.target import quote

if TYPE_CHECKING:
    from gate.engine.run import Run

OPENED, CLOSED = "repair-open", "repair-closed"
CONTROL, TOOL, REMOVE = "control", "tool", "remove"


@dataclass(frozen=True)
class Step:
    """One command of a repair: a control verb ("start node"), boxtool's argv, or the
    removal of a file the box itself named (an archive a phase made)."""

    via: str
    args: tuple[str, ...]

    def run(self, box: Box) -> tuple[bool, str]:
        """Run it on the box; (ok, one line saying what happened)."""
        if self.via == CONTROL:
            done = answered(box.control(self.args[0], kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
        elif self.via == REMOVE:
            done = answered(box.run(f"rm -f -- {quote(self.args[0])}", kind=Kind.MUTATE))
        else:
            done = answered(box.tool(*self.args, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
        return done.ok, f"{self} exited {done.exit_code}"

    def __str__(self) -> str:
        if self.via == CONTROL:
            return self.args[0]
        if self.via == REMOVE:
            return f"rm -f -- {self.args[0]}"
        return f"boxtool {' '.join(self.args)}"


@dataclass(frozen=True)
class Repair:
    """What to run to undo one break, keyed so a phase can close it again."""

    key: str
    what: str
    steps: tuple[Step, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "what": self.what,
            "steps": [[s.via, *s.args] for s in self.steps],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Repair:
        steps = tuple(Step(str(s[0]), tuple(str(a) for a in s[1:])) for s in raw["steps"])
        return cls(str(raw["key"]), str(raw["what"]), steps)


def control(verb: str) -> Step:
    return Step(CONTROL, (verb,))


def tool(*args: str) -> Step:
    return Step(TOOL, args)


def remove(path: str) -> Step:
    return Step(REMOVE, (path,))


def open_repair(run: Run, repair: Repair) -> None:
    """Before the break: remember the repair in the run and in the on-box journal."""
    run.repairs[repair.key] = repair
    run.journal_note(OPENED, **repair.to_json())


def mend(run: Run, key: str) -> list[str]:
    """Run one open repair's steps (all of them, even after a failure) and close it if every
    step succeeded; the failures, one line each."""
    repair = run.repairs[key]
    failures = run_steps(run.box, repair.steps)
    if not failures:
        del run.repairs[key]
        run.journal_note(CLOSED, key=key)
    return failures


def run_steps(box: Box, steps: Sequence[Step]) -> list[str]:
    failures = []
    for step in steps:
        ok, said = step.run(box)
        if not ok:
            failures.append(said)
    return failures


def mend_all(run: Run) -> None:
    """The engine, before its rollback and restore: mend what the phases left open, newest
    first; a repair that fails is a FAIL record (the restore's proof then decides dirty).

    A link lost while mending stops here: no restore may overlay a repair that did not run
    (its proof might pass and mark the box clean with the break still in). The repairs stay
    open in the on-box journal, the box stays dirty, and `--recover` mends them (BoxDirty).
    """
    for key in reversed(list(run.repairs)):
        what = run.repairs[key].what
        try:
            failures = mend(run, key)
        except Unreachable as exc:
            run.add(
                CheckRecord(
                    f"repair: {what}",
                    Verdict.INCONCLUSIVE,
                    "every step exits 0",
                    f"could not ask: {exc}",
                    phase="repair",
                )
            )
            raise BoxDirty(
                f"the link was lost while mending ({what}): {len(run.repairs)} repair(s) left "
                f"open, the box stays dirty; `{run.hint('--recover')}` mends them and restores"
            ) from exc
        run.add(
            CheckRecord(
                f"repair: {what}",
                Verdict.FAIL if failures else Verdict.PASS,
                "every step exits 0",
                "; ".join(failures) or "mended",
                phase="repair",
            )
        )


def left_open(box: Box, run_id: str) -> list[Repair]:
    """The repairs a killed run opened and never closed, from the on-box journal."""
    return open_in(journal_events(box, run_id))


def open_in(events: Sequence[dict[str, Any]]) -> list[Repair]:
    """The repairs opened and never closed in one run's journal events, oldest first."""
    closed = {e.get("key") for e in events if e.get("event") == CLOSED}
    opened = [e for e in events if e.get("event") == OPENED and e.get("key") not in closed]
    return [Repair.from_json(e) for e in opened]


def journal_events(box: Box, run_id: str) -> list[dict[str, Any]]:
    """One run's events from the on-box journal (lines that do not parse are skipped)."""
    result = answered(box.run(f"cat {JOURNAL_FILE} 2>/dev/null || echo"))
    events = []
    for line in result.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("run_id") == run_id:
            events.append(event)
    return events
