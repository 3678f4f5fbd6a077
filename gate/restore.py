"""Putting the box back, and proving it.

The restore copies the baseline config kept on the box (bytes never leave it), applies it,
and waits for the stack's readiness. The proof: the restore's apply succeeded, config bytes
identical, secret fingerprints equal, the baseline's services running and no other, status
exit 0, and the whole check battery green against the baseline config, so daemons still
running the last scenario's settings cannot pass for restored. Only a proven restore
marks the box clean; anything else is BoxDirty, exit 4, the loudest outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.battery import await_ready, battery
from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.checks import (
    CheckRecord,
    Verdict,
    check_no_unexpected,
    check_secrets_kept,
    check_services_running,
)
from gate.errors import BoxDirty, Unreachable
from gate.observe import read_config, read_fingerprints, read_probe
from gate.result import Result
from gate.snapshot import BASELINE_CONFIG, Baseline, config_sha256, write_state
from gate.target import quote

if TYPE_CHECKING:
    from gate.engine.run import Run

READY_TIMEOUT = 180.0
BATTERY = "restore: check: "


def restore_and_prove(run: Run, baseline: Baseline) -> None:
    """Push the baseline config, apply, wait, prove; BoxDirty unless every part passes."""
    box = run.box
    run.console.phase("restore", "baseline config back, apply, prove")
    try:
        applied = push_baseline(box)
        run.artifacts.write_text("restore/apply.log", applied.stdout + applied.stderr)
        proof = [_applied(applied.ok, applied.exit_code)]
        if applied.ok:
            proof += prove(run, baseline)
    except Unreachable as exc:
        raise BoxDirty(f"restore could not finish, the box is DIRTY: {exc}") from exc
    failed = []
    for record in proof:
        record.phase = "restore"
        if record.verdict is not Verdict.PASS:
            if _binds(record, baseline):
                failed.append(record.name)
            else:
                record.evidence += " (failed at the baseline too: not a restore defect)"
        run.add(record)
    if failed:
        raise BoxDirty("restore NOT proven, the box is DIRTY: " + "; ".join(failed))
    write_state(box, "clean", run.ctx.run_id, phase="restored")
    run.journal_note("restored", config_sha256=baseline.config_sha256)
    run.note("restore proven: config bytes, secrets, services, status and every check match")


def push_baseline(box: Box) -> Result:
    """Copy the baseline config kept on the box over the config file, then apply it; the
    apply's result (the bytes never leave the box)."""
    answered(
        box.run(f"cp -p {BASELINE_CONFIG} {quote(box.contract.config.path)}", kind=Kind.MUTATE)
    )
    apply = box.contract.actions.apply
    return answered(box.control(apply, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))


def _binds(record: CheckRecord, baseline: Baseline) -> bool:
    """Whether a failed proof record means dirty: a check failing at the baseline does not."""
    if not record.name.startswith(BATTERY):
        return True
    return record.name.removeprefix(BATTERY) in baseline.passing


def _applied(ok: bool, code: int | None) -> CheckRecord:
    verdict = Verdict.PASS if ok else Verdict.FAIL
    return CheckRecord("restore: apply succeeded", verdict, "exit 0", f"exit {code}")


def prove(run: Run, baseline: Baseline) -> list[CheckRecord]:
    """The restore proof, each part a record (the battery's named `restore: ...`)."""
    box = run.box
    cfg = read_config(box)
    if not cfg.usable or cfg.value is None:
        raise cfg.lost if cfg.lost is not None else BoxDirty(cfg.error)
    ready, last = await_ready(box, cfg.value, READY_TIMEOUT, run.console.waiting)
    records = [ready, config_identical(box, baseline)]
    records.append(check_secrets_kept(baseline.fingerprints, read_fingerprints(box)))
    spec = box.contract.services
    listed = read_probe(box, box.contract.probe(spec.probe), cfg.value)
    services = frozenset(baseline.services)
    again = check_services_running(listed, services, spec)
    again.name = "services: the baseline's running again"
    beyond = check_no_unexpected(listed, services, spec)
    beyond.name = "services: none beyond the baseline's"
    records += [again, beyond]
    for record in records:
        record.name = f"restore: {record.name}"
    if ready.verdict is Verdict.PASS:
        checks = battery(box, cfg.value, run.ctx.facts, run.console.waiting, recent=last)
        for record in checks:
            record.name = f"{BATTERY}{record.name}"
        records += checks
    return records


def config_identical(box: Box, baseline: Baseline) -> CheckRecord:
    """The config file's bytes (sha256 on the box) equal the baseline's."""
    sha = config_sha256(box)
    return CheckRecord(
        "config bytes identical",
        Verdict.PASS if sha == baseline.config_sha256 else Verdict.FAIL,
        baseline.config_sha256[:16],
        sha[:16],
        "sha256 of the config file on the box",
    )
