"""The baseline: what the box is before the first change, kept on the box, and who took it.

A box must be healthy to be gated (else the restore proof could never pass): an unhealthy
box is a failed check that names what is unhealthy, and nothing is changed. The baseline
records the contract's identity, so a later `--recover` or run under another contract is
refused with the command that names the right one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.battery import battery
from gate.checks import (
    CheckRecord,
    Reading,
    Verdict,
    check_secrets_present,
    check_status_exit,
    from_reading,
    service_states,
)
from gate.errors import BoxDirty, UsageError
from gate.observe import read_fingerprints, read_probe, read_status
from gate.probes import STATUS
from gate.snapshot import (
    Baseline,
    config_sha256,
    load_baseline,
    read_state,
    store_baseline,
    write_state,
)
from gate.watchdog import arm, said

if TYPE_CHECKING:
    from gate.engine.run import Run


def refuse_dirty(run: Run) -> None:
    """An earlier run left the box mid-flight: say how to recover it, exactly."""
    state = read_state(run.box)
    if state.get("state") == "clean":
        return
    watchdog = f"; {said(state)}" if state.get("watchdog") else ""
    raise BoxDirty(
        f"box {run.ctx.host.name} was left {state.get('state')} by run "
        f"{state.get('run_id', '?')} (phase {state.get('phase', '?')}){watchdog}; its baseline "
        f"is kept on the box: {recover_advice(run)}"
    )


def recover_advice(run: Run) -> str:
    """How to recover this box, under the contract its baseline was taken with."""
    baseline = load_baseline(run.box)
    return _advice(run, dict(baseline.contract) if baseline else {})


def _advice(run: Run, recorded: dict[str, str]) -> str:
    """`run `...`` with a command that works as printed, or what must be put back first.

    A contract file edited in place since the baseline cannot be named by a command: the
    advice says which bytes (sha256) to put back instead of printing a hint that loops.
    """
    mine = run.ctx.contract_file
    wanted = recorded.get("sha256")
    if not recorded or wanted == mine.sha256:
        return f"run `{run.hint('--recover')}`"
    path = Path(recorded.get("file", ""))
    hint = run.hint("--recover", matrix=str(path))
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == wanted:
        return f"run `{hint}`"
    return (
        f"its contract file {path} changed since the baseline (sha256 {str(wanted)[:12]} "
        f"then): put that version back (e.g. from version control), then run `{hint}`"
    )


def check_identity(run: Run, baseline: Baseline, doing: str) -> None:
    """The baseline was taken under this contract (name and file bytes), else refuse."""
    recorded = dict(baseline.contract)
    mine = run.ctx.contract_file.identity
    if not recorded or recorded.get("sha256") == mine["sha256"]:
        return
    raise UsageError(
        f"cannot {doing}: the box's baseline was taken under contract "
        f"{recorded.get('name')!r} ({recorded.get('file')}, sha256 "
        f"{str(recorded.get('sha256'))[:12]}), not {mine['name']!r} ({mine['file']}, sha256 "
        f"{mine['sha256'][:12]}): {_advice(run, recorded)}"
    )


def take_baseline(run: Run) -> Baseline | None:
    """What the box is now, kept on the box before the first change; None if unhealthy."""
    box = run.box
    run.console.phase("baseline", "config bytes, secret fingerprints, services (kept on the box)")
    code, status = read_status(box)
    spec = box.contract.services
    services = (
        status
        if spec.probe == STATUS
        else read_probe(box, box.contract.probe(spec.probe), run.config)
    )
    prints = read_fingerprints(box)
    records = [check_status_exit(code), _services_readable(services, run)]
    records.append(check_secrets_present(prints))
    for record in records:
        record.phase, record.name = "baseline", f"baseline: {record.name}"
        run.add(record)
    if any(r.verdict is not Verdict.PASS for r in records):
        run.note("the box is not healthy before the run: nothing was changed", "bold red")
        return None
    assert services.value is not None and prints.value is not None
    running = service_states(services.value, box.contract.services)
    passing = passing_checks(run)
    baseline = Baseline(
        run_id=run.ctx.run_id,
        config_sha256=config_sha256(box),
        fingerprints=prints.value,
        services=sorted(s for s, st in running.items() if st == box.contract.services.running),
        contract=run.ctx.contract_file.identity,
        passing=passing,
    )
    # Shielded: a signal here must not leave the box marked dirty with no restore to follow;
    # it is raised at the first phase command, inside the always-restore block.
    with run.guard.shielded():
        store_baseline(box, baseline)
        arm(run, baseline)  # before the dirty mark: a dirty box always has its watchdog
        write_state(box, "dirty", run.ctx.run_id, phase="baseline")
        run.journal_note("baseline", config_sha256=baseline.config_sha256)
    return baseline


def passing_checks(run: Run) -> list[str]:
    """The battery against the box as it is: what the restore must bring back to green."""
    records = battery(run.box, run.config, run.ctx.facts, observe=run.console.waiting)
    return sorted(r.name for r in records if r.verdict is Verdict.PASS)


def _services_readable(reading: Reading[Any], run: Run) -> CheckRecord:
    """The services probe lists services in the shape the contract declares."""
    spec = run.box.contract.services
    name = f"{spec.probe}: lists services"
    want = f"an object or list at {spec.at}"
    if (early := from_reading(name, reading, want)) is not None:
        return early
    try:
        states = service_states(reading.value, spec)
    except ValueError as exc:
        return CheckRecord(name, Verdict.FAIL, want, "unreadable", str(exc))
    return CheckRecord(name, Verdict.PASS, want, f"{len(states)} services", "")
