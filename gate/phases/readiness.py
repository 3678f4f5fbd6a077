"""The readiness phase: is this box fit for gating? Read-only, like --check.

Items (docs/readiness.md): not left dirty by an earlier run; healthy (the battery against
the box's own config, as --check judges it); secrets found for a baseline; disk headroom
for a backup; the env file and every secret file mode 0600 or stricter; the contract's
loopback ports bound to loopback only; the backup dir writable; the tools gate needs on
PATH. Each unfit item is one failed record whose evidence says how to fix it. Nothing is
written outside .gate/ (bookkeeping); the box's facts come from `boxtool fitness`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.battery import battery
from gate.capture import capture
from gate.checks import CheckRecord, SkipClass, Verdict
from gate.engine.baseline import recover_advice
from gate.fitness import (
    PHASE,
    check_backup_dir,
    check_headroom,
    check_healthy,
    check_loopback,
    check_modes,
    check_secrets_found,
    check_tools,
    no_loopback_ports,
    read_fitness,
    uses_env_file,
)
from gate.observe import read_fingerprints, read_probe
from gate.options import Flag
from gate.phases.base import Phase
from gate.phases.check import check_clean_state
from gate.probes import Port, at
from gate.snapshot import read_state

if TYPE_CHECKING:
    from gate.engine.run import Run

HEALTH_ARTIFACT = "readiness/health.json"
"""The battery's own records behind the one `healthy` item."""


class ReadinessPhase(Phase):
    """`--readiness`: the box's fitness for gating; nothing is changed."""

    name = "readiness"
    mutates = False
    flag = Flag(
        "readiness",
        "non-destructive: is the box fit for gating (health, disk, file modes, binds, tools)",
    )

    def run(self, run: Run) -> None:
        box, contract = run.box, run.box.contract
        run.console.phase("readiness", f"{contract.name}: is this box fit for gating")
        records: list[CheckRecord] = []

        def add(*found: CheckRecord) -> None:  # each item shown as soon as it is judged
            for record in found:
                record.phase = PHASE
                records.append(record)
                run.add(record)

        state = read_state(box)
        add(check_clean_state(state, recover_advice(run) if state.get("state") != "clean" else ""))
        health = battery(box, run.config, run.ctx.facts, observe=run.console.waiting)
        run.artifacts.write_json(HEALTH_ARTIFACT, [r.as_dict() for r in health])
        add(check_healthy(health, run.hint("--check")))
        if any(r.verdict is Verdict.FAIL for r in health):
            capture(box, run.artifacts, run.config, "captures/readiness")
        add(check_secrets_found(read_fingerprints(box)))
        facts, readiness = read_fitness(box), contract.readiness
        add(check_headroom(facts, readiness))
        add(*check_modes(facts, contract.env_file, uses_env_file(contract)))
        add(*loopback_records(run))
        add(check_backup_dir(facts, readiness, contract.actions.backup is not None))
        add(check_tools(facts))
        run.note(*conclusion(records))


def conclusion(records: list[CheckRecord]) -> tuple[str, str]:
    """The phase's last line: fit, not fit (how many items to fix), or could not judge."""
    count = {v: sum(r.verdict is v for r in records) for v in Verdict}
    if count[Verdict.FAIL]:
        return f"readiness: NOT fit for gating: {count[Verdict.FAIL]} item(s) to fix", "bold red"
    if count[Verdict.INCONCLUSIVE]:
        unjudged = count[Verdict.INCONCLUSIVE]
        return f"readiness: could not judge {unjudged} item(s): run it again", "bold yellow"
    skipped = f" ({count[Verdict.SKIP]} item(s) skipped)" if count[Verdict.SKIP] else ""
    return f"readiness: fit for gating{skipped}", "bold green"


def loopback_records(run: Run) -> list[CheckRecord]:
    """One item per Port probe the contract's Readiness names (a probe the box's config
    does not use is a by-design skip); none named is a missing-class skip."""
    contract, cfg = run.box.contract, run.config
    if not contract.readiness.loopback_ports:
        return [no_loopback_ports(contract)]
    records = []
    for name in contract.readiness.loopback_ports:
        probe = contract.probe(name)
        assert isinstance(probe, Port)  # StackContract refuses any other name
        if not probe.applies(cfg):
            records.append(
                CheckRecord(
                    f"readiness: {name} bound to loopback only",
                    Verdict.SKIP,
                    evidence=f"probe {name} does not apply to this box's config",
                    phase=PHASE,
                    skip_class=SkipClass.BY_DESIGN,
                )
            )
            continue
        records.append(check_loopback(name, at(probe.port, cfg), read_probe(run.box, probe, cfg)))
    return records
