"""The baseline: what the box is before the first change, kept on the box, and who took it.

A box must be healthy to be gated (else the restore proof could never pass): an unhealthy
box is a failed check that names what is unhealthy, and nothing is changed. The baseline
records the contract's identity, so a later `--recover` or run under another contract is
refused with the command that names the right one.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from gate.observe import read_config, read_fingerprints, read_status
from gate.snapshot import (
    Baseline,
    config_sha256,
    load_baseline,
    read_state,
    store_baseline,
    write_state,
)

if TYPE_CHECKING:
    from gate.engine.run import Run


def refuse_dirty(run: Run) -> None:
    """An earlier run left the box mid-flight: say how to recover it, exactly."""
    state = read_state(run.box)
    if state.get("state") == "clean":
        return
    hint = recover_hint(run)
    raise BoxDirty(
        f"box {run.ctx.host.name} was left {state.get('state')} by run "
        f"{state.get('run_id', '?')} (phase {state.get('phase', '?')}); its baseline is kept "
        f"on the box: run `{hint}`"
    )


def recover_hint(run: Run) -> str:
    """`--recover` for this box, under the contract its baseline was taken with."""
    baseline = load_baseline(run.box)
    recorded = dict(baseline.contract) if baseline else {}
    return run.hint("--recover", matrix=_matrix_for(run, recorded))


def check_identity(run: Run, baseline: Baseline, doing: str) -> None:
    """The baseline was taken under this contract (name and file bytes), else refuse."""
    recorded = dict(baseline.contract)
    mine = run.ctx.contract_file.identity
    if not recorded or recorded.get("sha256") == mine["sha256"]:
        return
    hint = run.hint("--recover", matrix=_matrix_for(run, recorded))
    raise UsageError(
        f"cannot {doing}: the box's baseline was taken under contract "
        f"{recorded.get('name')!r} ({recorded.get('file')}, sha256 "
        f"{str(recorded.get('sha256'))[:12]}), not {mine['name']!r} ({mine['file']}, sha256 "
        f"{mine['sha256'][:12]}): run `{hint}`"
    )


def _matrix_for(run: Run, recorded: dict[str, str]) -> str | None:
    """The --matrix a hint needs: this run's unless the baseline names another file."""
    if not recorded or recorded.get("sha256") == run.ctx.contract_file.sha256:
        return None
    return recorded.get("file")


def take_baseline(run: Run) -> Baseline | None:
    """What the box is now, kept on the box before the first change; None if unhealthy."""
    box = run.box
    run.console.phase("baseline", "config bytes, secret fingerprints, services (kept on the box)")
    code, status = read_status(box)
    prints = read_fingerprints(box)
    records = [check_status_exit(code), _status_readable(status, run)]
    records.append(check_secrets_present(prints))
    for record in records:
        record.phase, record.name = "baseline", f"baseline: {record.name}"
        run.add(record)
    if any(r.verdict is not Verdict.PASS for r in records):
        run.note("the box is not healthy before the run: nothing was changed", "bold red")
        return None
    assert status.value is not None and prints.value is not None
    running = service_states(status.value, box.contract.status)
    passing = passing_checks(run)
    baseline = Baseline(
        run_id=run.ctx.run_id,
        config_sha256=config_sha256(box),
        fingerprints=prints.value,
        services=sorted(s for s, st in running.items() if st == box.contract.status.running),
        contract=run.ctx.contract_file.identity,
        passing=passing,
    )
    # Shielded: a signal here must not leave the box marked dirty with no restore to follow;
    # it is raised at the first phase command, inside the always-restore block.
    with run.guard.shielded():
        store_baseline(box, baseline)
        write_state(box, "dirty", run.ctx.run_id, phase="baseline")
        run.journal_note("baseline", config_sha256=baseline.config_sha256)
    return baseline


def passing_checks(run: Run) -> list[str]:
    """The battery against the box as it is: what the restore must bring back to green."""
    cfg = read_config(run.box)
    if not cfg.usable or cfg.value is None:
        return []
    records = battery(run.box, cfg.value, run.ctx.host.workers, observe=run.console.waiting)
    return sorted(r.name for r in records if r.verdict is Verdict.PASS)


def _status_readable(status: Reading[Mapping[str, Any]], run: Run) -> CheckRecord:
    """The status JSON lists services in the shape the contract declares."""
    name = "status: JSON lists services"
    want = f"an object at {run.box.contract.status.services}"
    if (early := from_reading(name, status, want)) is not None:
        return early
    try:
        states = service_states(status.value or {}, run.box.contract.status)
    except ValueError as exc:
        return CheckRecord(name, Verdict.FAIL, want, "unreadable", str(exc))
    return CheckRecord(name, Verdict.PASS, want, f"{len(states)} services", "")
