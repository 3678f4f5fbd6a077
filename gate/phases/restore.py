"""Putting the box back, and proving it: config bytes, secrets, services, status.

The restore copies the baseline config kept on the box (bytes never leave it), applies,
waits for status 0, then proves. Only a proven restore marks the box clean; anything
else is BoxDirty, exit 4, the loudest outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.box import Kind, answered
from gate.checks import (
    CheckRecord,
    Verdict,
    check_no_unexpected,
    check_secrets_kept,
    check_services_running,
    check_status_exit,
)
from gate.errors import BoxDirty, Unreachable, UsageError
from gate.observe import read_fingerprints, read_status
from gate.readiness import wait_until
from gate.snapshot import (
    BASELINE_CONFIG,
    Baseline,
    config_sha256,
    load_baseline,
    read_state,
    write_state,
)
from gate.target import quote

if TYPE_CHECKING:
    from gate.runner import Run

READY_TIMEOUT = 180.0


def restore_and_prove(run: Run, baseline: Baseline) -> None:
    """Exactly once per run: push the baseline config, apply, wait, prove."""
    if run.restored:
        return
    run.restored = True
    box = run.require_box()
    run.console.phase("restore", "baseline config back, apply, prove")
    try:
        config = quote(box.contract.config_file)
        answered(box.run(f"cp -p {BASELINE_CONFIG} {config}", kind=Kind.MUTATE))
        applied = answered(box.control(box.contract.commands.apply, kind=Kind.MUTATE, timeout=600))
        run.artifacts.write_text("restore/apply.log", applied.stdout + applied.stderr)
        wait_until(
            "status 0 after restore",
            lambda: answered(box.control(box.contract.commands.status, timeout=30)).exit_code,
            lambda code: code == 0,
            timeout=READY_TIMEOUT,
            observe=run.console.waiting,
        )
        proof = prove(run, baseline)
    except Unreachable as exc:
        raise BoxDirty(f"restore could not finish, the box is DIRTY: {exc}") from exc
    for record in proof:
        record.phase = "restore"
        run.add(record)
    failed = [r.name for r in proof if r.verdict is not Verdict.PASS]
    if failed:
        raise BoxDirty("restore NOT proven, the box is DIRTY: " + "; ".join(failed))
    write_state(box, "clean", run.run_id, phase="restored")
    run.journal_note("restored", config_sha256=baseline.config_sha256)
    run.note("restore proven: config bytes, secrets, services and status match the baseline")


def prove(run: Run, baseline: Baseline) -> list[CheckRecord]:
    """The restore proof, each part a record."""
    box = run.require_box()
    sha = config_sha256(box)
    same = sha == baseline.config_sha256
    records = [
        CheckRecord(
            "restore: config bytes identical",
            Verdict.PASS if same else Verdict.FAIL,
            baseline.config_sha256[:16],
            sha[:16],
            "sha256 of the config file on the box",
        ),
        check_secrets_kept(baseline.fingerprints, read_fingerprints(box)),
    ]
    code, status = read_status(box)
    services = frozenset(baseline.services)
    records += [
        check_services_running(status, services, box.contract.status),
        check_no_unexpected(status, services, box.contract.status),
        check_status_exit(code),
    ]
    return records


def recover_phase(run: Run) -> None:
    """`--recover`: restore from the baseline an interrupted run left on the box, and prove it."""
    box = run.require_box()
    state = read_state(box)
    if state.get("state") == "clean":
        raise UsageError(
            f"box {run.host.name} is clean: nothing to recover (no interrupted run left it dirty)"
        )
    baseline = load_baseline(box)
    if baseline is None:
        raise BoxDirty("no baseline on the box to recover from (.gate/baseline/ is empty)")
    run.note(
        f"recovering: on-box state {state.get('state')} from run {state.get('run_id', '?')}, "
        f"baseline of run {baseline.run_id}"
    )
    with run.guard.shielded():
        restore_and_prove(run, baseline)
