"""`--fault-injection`: every fault the contract declares, one after another
(docs/fault-injection.md; each is exercised by gate/faults.py).

plan: a contract without faults is a usage error naming `StackContract.faults`; a fault
whose service the box's config does not run, or whose `applies` says this config cannot
have it, is a by-design skip (never a pass). run: each remaining fault on the box's own
config (the phase runs before the matrix), armed -> injected -> degraded -> held -> healed
-> recovered. A fault the stack did not recover from stops the run (NotRecovered, exit 1,
then the engine's restore): the later faults are missing-class skips, and no later phase
waits out its deadlines on a broken stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.checks import CheckRecord, SkipClass, Verdict
from gate.contract import Fault
from gate.errors import NotRecovered, UsageError
from gate.faults import cannot_have, exercise
from gate.options import Flag
from gate.phases.base import Phase

if TYPE_CHECKING:
    from gate.engine.run import Run

PHASE = "fault-injection"


class FaultInjectionPhase(Phase):
    """Inject each declared fault, prove the stack degrades as declared, heal, recover."""

    name = "fault_injection"
    mutates = True
    destructive = True
    flag = Flag(
        "fault_injection",
        "inject each fault the contract declares (stop, SIGSTOP, remove a service): the "
        "stack must degrade as declared, hold it, and recover after the heal",
    )

    def __init__(self) -> None:
        self._runnable: list[Fault] = []

    def plan(self, run: Run) -> bool:
        contract = run.box.contract
        if not contract.faults:
            raise UsageError(
                f"--fault-injection: contract {contract.name} declares no faults "
                "(StackContract.faults; docs/fault-injection.md)"
            )
        expected = contract.expected_services(run.config)
        self._runnable = []
        for fault in contract.faults:
            why = cannot_have(fault, expected, run.config)
            if why:
                run.add(skip(fault, why, SkipClass.BY_DESIGN))
            else:
                self._runnable.append(fault)
        return bool(self._runnable)

    def run(self, run: Run) -> None:
        names = ", ".join(f.name for f in self._runnable)
        run.console.phase(PHASE, f"{len(self._runnable)} fault(s): {names}")
        for index, fault in enumerate(self._runnable):
            timings = exercise(run, fault, PHASE)
            if timings.injected and timings.recover_s is None:
                for later in self._runnable[index + 1 :]:
                    why = f"not run: the stack did not recover from {fault.name!r}"
                    run.add(skip(later, why, SkipClass.MISSING))
                raise NotRecovered(
                    f"--fault-injection: the stack did not recover from {fault.name!r} after "
                    "the heal: no later phase runs on it"
                )


def skip(fault: Fault, why: str, klass: SkipClass) -> CheckRecord:
    return CheckRecord(
        f"{fault.name}: {fault.inject} {fault.service}",
        Verdict.SKIP,
        evidence=why,
        phase=PHASE,
        skip_class=klass,
    )
