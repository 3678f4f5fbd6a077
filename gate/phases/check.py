"""The check phase: read the box's live state and judge it, changing nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gate.battery import battery
from gate.capture import capture
from gate.checks import CheckRecord, Reading, Verdict, check_secrets_present
from gate.engine.baseline import recover_advice
from gate.observe import read_fingerprints
from gate.options import Flag
from gate.phases.base import Phase
from gate.snapshot import config_sha256, read_state

if TYPE_CHECKING:
    from gate.engine.run import Run


class CheckPhase(Phase):
    """`--check`: the box's live state against its own config; nothing is changed."""

    name = "check"
    mutates = False
    flag = Flag("check", "non-destructive: judge the live state, change nothing")

    def run(self, run: Run) -> None:
        box = run.box
        run.console.phase("baseline", "config hash and secret fingerprints, computed on the box")
        state = read_state(box)
        advice = recover_advice(run) if state.get("state") != "clean" else ""
        run.add(check_clean_state(state, advice))
        prints = read_fingerprints(box)
        run.add(check_secrets_present(prints))
        run.journal_note("baseline", config_sha256=config_sha256(box), secrets=_count(prints))
        run.console.phase("check", f"{box.contract.name} as configured")
        records = battery(box, run.config, run.ctx.facts, observe=run.console.waiting)
        for record in records:
            run.add(record)
        if any(r.verdict is Verdict.FAIL for r in records):
            capture(box, run.artifacts, run.config, "captures/check")


def _count(prints: Reading[Any]) -> int:
    return sum(len(v) for v in (prints.value or {}).values())


def check_clean_state(state: Mapping[str, Any], recover_advice: str) -> CheckRecord:
    """No earlier run left the box mid-flight (its on-box state says clean)."""
    name = "box: not left dirty by an earlier run"
    if state.get("state") == "clean":
        return CheckRecord(name, Verdict.PASS, "clean", "clean", "on-box state is clean")
    evidence = (
        f"run {state.get('run_id', '?')} left it {state.get('state')} in phase "
        f"{state.get('phase', '?')}; {recover_advice}"
    )
    return CheckRecord(name, Verdict.FAIL, "clean", str(state.get("state")), evidence)
