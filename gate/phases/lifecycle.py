"""`--lifecycle`: what a box's owner does to a stack besides changing its config, proven on
the box's own config (docs/lifecycle.md).

An ordered list of steps, each small and separate, each leaving records named
`lifecycle STEP: ...`:

1. restart: the contract's restart action, then ready, every expected service running,
   and every service that reported a pid (or start time) has a new one.
2. change: the matrix's first one-service change (gate/changes.py) applied: ready, only
   that service recreated (the scope check: every other keeps its pid), secrets kept;
   then reverted (the baseline config pushed and applied as the restore does): config
   bytes identical, ready, the revert held to the same scope.
3. failover: the contract's `failover`, exercised like a fault (gate/faults.py: armed,
   injected, degraded, held, healed, recovered); not recovered: NotRecovered, no round trip.
4. round trip: backup (verified like the safety backup), the box made to differ from the
   archive (and shown to), down / restore ARCHIVE / up, then config bytes and secret
   fingerprints equal the archive's moment; the baseline config applied again; the
   archive removed on every path.

A `down` is covered by a repair (`up`) opened before it, so a run killed there leaves the
stack brought back by the engine or `--recover`. The engine restores as ever afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gate.battery import wait_ready
from gate.box import APPLY_TIMEOUT, Kind, answered
from gate.changes import NEEDED, Change, any_change, one_service_change
from gate.checks import (
    CheckRecord,
    SkipClass,
    Verdict,
    check_secrets_kept,
    check_services_running,
)
from gate.contract import Config, StackContract
from gate.errors import GateError, NotRecovered, UsageError
from gate.faults import cannot_have, exercise
from gate.fit import fit_contract
from gate.matrix import Matrix, validate_matrix
from gate.observe import read_fingerprints, read_probe
from gate.options import Flag
from gate.phases.base import Phase
from gate.phases.matrix import apply_overrides
from gate.phases.safety_backup import backup_and_verify
from gate.repairs import Repair, control, mend, open_repair, remove
from gate.restarts import Clock, clock_fields, renewed, scope, service_clock
from gate.restore import config_identical, push_baseline
from gate.result import Result
from gate.snapshot import config_sha256, write_state
from gate.target import quote

if TYPE_CHECKING:
    from gate.engine.run import Run

PHASE = "lifecycle"
UP_AFTER_DOWN = "lifecycle-up-after-down"
ARCHIVE_REMOVED = "lifecycle-archive-removed"
ONE_SERVICE = "one service recreated alone"
FAILOVER = "the contract's failover exercised"
ROUND_TRIP = "backup and restore round trip"
REQUIRED = ("restart", "backup", "restore", "up", "down")
"""The Actions a lifecycle uses; a contract lacking one is refused at plan (exit 2)."""


@dataclass(frozen=True)
class Plan:
    """What the steps work from, fixed before the baseline."""

    matrix: Matrix
    change: Change | None
    """The one-service change (None: the change step is a named missing skip)."""
    diverge: Change | None
    """What makes the box differ from the round trip's archive (the one-service change if
    there is one, else the first safe axis change)."""


Step = Callable[["Run", Plan], None]


class LifecyclePhase(Phase):
    """`--lifecycle`: restart, a one-service change and its revert, the failover, and a
    backup/restore round trip, in that order."""

    name = PHASE
    mutates = True
    destructive = True  # it stops the stack and restores files from an archive
    flag = Flag(
        PHASE,
        "restart the stack, apply and revert a one-service change, fail over, and round-trip "
        "a backup through a restore, each proven (docs/lifecycle.md)",
    )

    def __init__(self) -> None:
        self._plan: Plan | None = None

    def plan(self, run: Run) -> bool:
        contract = run.box.contract
        refuse_missing_actions(contract)
        matrix = validate_matrix(run.ctx.contract_file.matrix)
        change = one_service_change(matrix, run.config, contract.expected_services(run.config))
        diverge = change or any_change(matrix, run.config)
        for made in {c for c in (change, diverge) if c is not None}:
            where = f"--lifecycle change {made}"
            fit_contract(contract, made.applied(run.config), where, run.ctx.facts)
        self._plan = Plan(matrix, change, diverge)
        return True

    def run(self, run: Run) -> None:
        assert self._plan is not None  # the engine plans before it runs
        for name, step in STEPS:
            run.console.phase(f"lifecycle: {name}")
            run.journal_note("lifecycle", step=name)
            write_state(run.box, "dirty", run.ctx.run_id, phase=f"lifecycle, {name}")
            step(run, self._plan)


def refuse_missing_actions(contract: StackContract) -> None:
    """Every action the steps use is declared, and restore takes the archive."""
    actions = contract.actions
    for name in REQUIRED:
        if getattr(actions, name) is None:
            raise UsageError(
                f"--lifecycle: contract {contract.name} declares no {name} action (Actions.{name})"
            )
    if "{archive}" not in (actions.restore or ""):
        raise UsageError(
            "--lifecycle: the contract's restore action must take the archive "
            '(Actions.restore, e.g. "restore {archive}")'
        )


# --- the steps ---------------------------------------------------------------------------


def restart(run: Run, plan: Plan) -> None:
    """The restart action; then ready, every service running, every pid new."""
    box, cfg = run.box, run.config
    verb = box.contract.actions.restart
    assert verb is not None  # plan refused a contract without one
    before = service_clock(box, cfg)
    done = _control(run, verb, "lifecycle/restart.log")
    records = [_exited("restart action exited 0", done)]
    if done.ok:
        records.append(wait_ready(box, cfg, plan.matrix.ready_timeout, run.console.waiting))
        records.append(_services_running(run, cfg))
        records.append(renewed(before, service_clock(box, cfg), clock_fields(box)))
    _add(run, "restart", records)


def change(run: Run, plan: Plan) -> None:
    """The one-service change: ready, only its service recreated, secrets kept; reverted."""
    found = plan.change
    if found is None:
        why = f"the matrix declares no one-service change: declare {NEEDED} (--strict fails this)"
        _add(run, "change", [_missing(ONE_SERVICE, why)])
        return
    box = run.box
    assert run.baseline is not None
    run.note(f"lifecycle change: {found} (touches {found.service})")
    before = service_clock(box, run.config)
    records: list[CheckRecord] = []
    cfg = apply_overrides(run, {found.path: found.value}, "lifecycle/change-apply.log", records)
    after: Clock | str = before
    if cfg is not None:
        records.append(wait_ready(box, cfg, plan.matrix.ready_timeout, run.console.waiting))
        after = service_clock(box, cfg)
        for record in scope(plan.matrix, run.config, cfg, before, after):
            records.append(_touched(record, found, before, after))
        records.append(check_secrets_kept(run.baseline.fingerprints, read_fingerprints(box)))
    _add(run, "change", records)
    revert(run, plan, cfg, after)


def revert(run: Run, plan: Plan, changed: Config | None, before: Clock | str) -> None:
    """The baseline config pushed and applied as the restore does: bytes back, ready, and
    the way back held to the change's scope too."""
    box = run.box
    assert run.baseline is not None
    applied = push_baseline(box)
    run.artifacts.write_text("lifecycle/revert-apply.log", applied.stdout + applied.stderr)
    records = [_exited("apply succeeded", applied), config_identical(box, run.baseline)]
    if applied.ok:
        records.append(wait_ready(box, run.config, plan.matrix.ready_timeout, run.console.waiting))
        if changed is not None:
            after = service_clock(box, run.config)
            records += scope(plan.matrix, changed, run.config, before, after)
    _add(run, "revert", records)


def failover(run: Run, plan: Plan) -> None:
    """The contract's failover, exercised like a fault (gate/faults.py); a failover this
    config cannot have is a by-design skip, none declared a missing one."""
    fault = run.box.contract.failover
    if fault is None:
        why = "the contract declares no failover (StackContract.failover, a Fault)"
        _add(run, "failover", [_missing(FAILOVER, why)])
        return
    why = cannot_have(fault, run.box.contract.expected_services(run.config), run.config)
    if why:
        skipped = CheckRecord(FAILOVER, Verdict.SKIP, evidence=why, skip_class=SkipClass.BY_DESIGN)
        _add(run, "failover", [skipped])
        return
    timings = exercise(run, fault, PHASE, prefix="lifecycle failover: ")
    if timings.injected and timings.recover_s is None:
        raise NotRecovered(
            f"--lifecycle: the stack did not recover from its failover {fault.name!r}: "
            "no later step or phase runs on it"
        )


def round_trip(run: Run, plan: Plan) -> None:
    """Backup, diverge (shown), down / restore / up, proven equal to the archive's moment;
    the archive is removed on every path."""
    if plan.diverge is None:
        why = (
            "the matrix has no axis value to make the box differ from its archive (a "
            "restore that does nothing would pass): declare an Axis with a second value"
        )
        _add(run, "round trip", [_missing(ROUND_TRIP, why)])
        return
    box = run.box
    moment = Moment(config_sha256(box), _fingerprints(run))
    with run.guard.shielded():  # a signal cannot land between the archive and its repair
        record, archive = backup_and_verify(run, "archive verified", "lifecycle/backup.log")
        if archive is not None:
            removal = Repair(ARCHIVE_REMOVED, f"round-trip archive {archive} removed",
                             (remove(archive),))  # fmt: skip
            open_repair(run, removal)
    _add(run, "round trip", [record])
    if archive is None:
        return
    try:
        if diverge(run, plan.diverge, moment):
            restore_archive(run, archive, moment)
        settle(run, plan)
    finally:
        with run.guard.shielded():
            _remove(run, archive)


@dataclass(frozen=True)
class Moment:
    """The box as the round trip's archive holds it: config sha256, secret fingerprints."""

    config_sha256: str
    fingerprints: Mapping[str, Mapping[str, str]]


def diverge(run: Run, made: Change, moment: Moment) -> bool:
    """Apply a change so the box differs from the archive, and show that it does."""
    records: list[CheckRecord] = []
    apply_overrides(run, {made.path: made.value}, "lifecycle/diverge-apply.log", records)
    for record in records:
        record.name = f"diverge: {record.name}"
    now = config_sha256(run.box)
    differs = now != moment.config_sha256
    records.append(
        CheckRecord(
            "the box diverged from the archive",
            Verdict.PASS if differs else Verdict.FAIL,
            f"config sha256 other than {moment.config_sha256[:16]}",
            now[:16],
            f"after {made}"
            + ("" if differs else ": the restore could not be shown to do anything"),
        )
    )
    _add(run, "round trip", records)
    return differs


def restore_archive(run: Run, archive: str, moment: Moment) -> None:
    """down (its repair, `up`, opened first), restore ARCHIVE, up (the repair mended);
    then config bytes and secret fingerprints equal the archive's moment."""
    box = run.box
    actions = box.contract.actions
    assert actions.up is not None and actions.down is not None and actions.restore is not None
    repair = Repair(UP_AFTER_DOWN, "stack up after the round trip's down", (control(actions.up),))
    open_repair(run, repair)
    said, failed = [], False
    for verb in (actions.down, actions.restore.replace("{archive}", quote(archive))):
        done = _control(run, verb, f"lifecycle/{verb.split()[0]}.log")
        said.append(f"`{verb}` exited {done.exit_code}")
        if not done.ok:
            failed = True
            break
    failures = mend(run, UP_AFTER_DOWN)  # the round trip's own `up`
    failed = failed or bool(failures)
    said += failures or [f"`{actions.up}` exited 0"]
    verdict = Verdict.FAIL if failed else Verdict.PASS
    records = [
        CheckRecord(
            "down, restore, up exited 0",
            verdict,
            "exit 0 each",
            "failed" if failed else "ok",
            "; ".join(said),
        )
    ]
    now = config_sha256(box)
    records.append(
        CheckRecord(
            "config bytes equal the archive's",
            Verdict.PASS if now == moment.config_sha256 else Verdict.FAIL,
            moment.config_sha256[:16],
            now[:16],
            "sha256 of the config file on the box, before the backup and after the restore",
        )
    )
    kept = check_secrets_kept(moment.fingerprints, read_fingerprints(box))
    kept.name = "secrets equal the archive's"
    records.append(kept)
    _add(run, "round trip", records)


def settle(run: Run, plan: Plan) -> None:
    """The baseline config pushed and applied again (restore puts files back; the running
    stack follows its last apply): ready, every service running, for the phases after."""
    box = run.box
    applied = push_baseline(box)
    run.artifacts.write_text("lifecycle/settle-apply.log", applied.stdout + applied.stderr)
    records = [_exited("baseline config applied again", applied)]
    if applied.ok:
        records.append(wait_ready(box, run.config, plan.matrix.ready_timeout, run.console.waiting))
        records.append(_services_running(run, run.config))
    _add(run, "round trip", records)


STEPS: tuple[tuple[str, Step], ...] = (
    ("restart", restart),
    ("change", change),
    ("failover", failover),
    ("round trip", round_trip),
)
"""The lifecycle, in order (molecule's scenario sequence: a named list of steps)."""


# --- small helpers -----------------------------------------------------------------------


def _control(run: Run, verb: str, log: str) -> Result:
    done = answered(run.box.control(verb, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
    run.artifacts.write_text(log, done.stdout + done.stderr)
    return done


def _exited(name: str, done: Result) -> CheckRecord:
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    verdict = Verdict.PASS if done.ok else Verdict.FAIL
    return CheckRecord(name, verdict, "exit 0", f"exit {done.exit_code}", tail[0][:200])


def _services_running(run: Run, cfg: Config) -> CheckRecord:
    contract = run.box.contract
    spec = contract.services
    listed = read_probe(run.box, contract.probe(spec.probe), cfg)
    return check_services_running(listed, contract.expected_services(cfg), spec)


def _fingerprints(run: Run) -> Mapping[str, Mapping[str, str]]:
    prints = read_fingerprints(run.box).asked()
    if not prints.usable or prints.value is None:
        raise GateError(f"lifecycle: secret fingerprints unreadable: {prints.why}")
    return prints.value


def _touched(
    record: CheckRecord, found: Change, before: Clock | str, after: Clock | str
) -> CheckRecord:
    """The scope record, saying also whether the touched service itself was recreated."""
    if isinstance(before, dict) and isinstance(after, dict) and found.service in before:
        moved = after.get(found.service) != before[found.service]
        record.evidence += f"; {found.service} {'recreated' if moved else 'kept its pid'}"
    return record


def _missing(name: str, why: str) -> CheckRecord:
    return CheckRecord(name, Verdict.SKIP, evidence=why, skip_class=SkipClass.MISSING)


def _add(run: Run, step: str, records: list[CheckRecord]) -> None:
    for record in records:
        record.name, record.phase = f"lifecycle {step}: {record.name}", PHASE
        run.add(record)


def _remove(run: Run, archive: str) -> None:
    """Take the round trip's archive off the box (its repair, mended on every path; left
    open for the engine or `--recover` when the box cannot be asked)."""
    try:
        failures = mend(run, ARCHIVE_REMOVED)
    except GateError as exc:
        run.note(f"lifecycle: archive NOT removed yet ({exc}): {archive}", "yellow")
        return
    if failures:
        run.note(f"lifecycle: archive NOT removed ({'; '.join(failures)}): {archive}", "yellow")
    else:
        run.note(f"lifecycle: round-trip archive removed: {archive}")
