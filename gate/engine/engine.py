"""The one engine around every phase.

main(options) -> exit code
    validate flags, load the contract, resolve the host   (usage error: exit 2, nothing touched)
    connect -> preflight (boxtool first: every output is scrubbed on the box) -> lock
    mutating runs: refuse a dirty box -> the contract fits the box -> plan the phases
        -> baseline kept on the box -> phases in registration order
        -> ALWAYS restore and prove, exactly once (shielded from signals)
    --recover: the baseline a killed run left -> its open repairs mended -> restore and prove
        -> its safety backup removed (proven), else rolled back from and proven (recovery.py)
    read-only runs (--check): the phase alone; no baseline, no mutating command
    report: summary.json, junit.xml, the console's last line, the exit code
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TextIO

from gate.artifacts import Artifacts, new_run_id
from gate.box import Box, answered
from gate.capture import capture
from gate.checks import Verdict
from gate.contract import StackContract
from gate.engine.baseline import check_identity, refuse_dirty, take_baseline
from gate.engine.results import write_manifest, write_results
from gate.engine.run import Run, RunContext
from gate.errors import BoxDirty, ExitCode, GateError, PreflightError, UsageError
from gate.fit import check_declarations, fit_contract
from gate.inventory import HostSpec, load_inventory_spec, local_spec, resolve_host
from gate.lock import BoxLock, lock_grace
from gate.matrix import validate_matrix
from gate.observe import read_config
from gate.options import Options, load_contract_file
from gate.phases import Phase, select
from gate.phases.safety_backup import remove_archive, rollback
from gate.recovery import recover
from gate.redact import Redactor
from gate.repairs import mend_all
from gate.report import Console
from gate.restore import restore_and_prove
from gate.signals import Interrupted, process_guard
from gate.snapshot import Journal, load_baseline, read_state
from gate.target import Target, quote, target_for
from gate.watchdog import said, watchdog_limit

REQUIRED_TOOLS = ("python3", "sha256sum", "cp", "mv", "cat")

TargetFactory = Callable[[HostSpec, bool], Target]


def default_target(host: HostSpec, accept_new: bool) -> Target:
    return target_for(host, accept_new=accept_new)


def main(
    opts: Options, stream: TextIO | None = None, target: TargetFactory = default_target
) -> int:
    """Load and check what the run needs, then run it; the process exit code.

    The flags were validated by the CLI (gate/cli/); here the contract file, the phases,
    the scenarios, the host and the lock grace are, still before anything is touched.
    """
    guard = process_guard()
    redactor = Redactor()
    console = Console(redactor, stream)
    try:
        ctx = prepare(opts)
    except UsageError as exc:
        console.line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    if guard.first is not None:
        console.line(f"gate: {Interrupted(guard.first)} before the run began: nothing touched")
        return Interrupted(guard.first).exit_code
    run = Run(ctx, console, Artifacts(opts.out, ctx.run_id, redactor), guard)
    return Engine(run, target).execute()


def prepare(opts: Options) -> RunContext:
    """Everything a run checks before it touches a box (the contract file, the phases, the
    scenarios, the host, the lock grace, the watchdog limit); a UsageError names the first
    problem. A fleet (gate/fleet/) calls it for every box before it starts any."""
    contract_file = load_contract_file(opts.matrix_file)
    check_declarations(contract_file.contract, opts.matrix_file)
    phases = tuple(select(opts))
    if any(p.flag is None for p in phases) and not opts.recover:
        validate_matrix(contract_file.matrix).select(opts.scenarios)
    host = resolve(opts, contract_file.contract)
    grace, watchdog = lock_grace(), watchdog_limit(host)
    return RunContext(opts, contract_file, host, new_run_id(), phases, grace, watchdog)


def resolve(opts: Options, contract: StackContract) -> HostSpec:
    """The host spec the options name, with --dir, --control and --known-hosts; the control
    command is --control, else the inventory's, else the contract's."""
    if opts.local:
        spec = load_inventory_spec(opts.host, opts.inventory_dir) if opts.host else None
        spec = replace(spec, local=True) if spec else local_spec(opts.dir or "")
    else:
        assert opts.host is not None
        spec = resolve_host(opts.host, opts.inventory_dir)
    changes: dict[str, Any] = {
        "dir": opts.dir,
        "control": opts.control or spec.control or contract.control,
        "known_hosts": opts.known_hosts,
        "transport": opts.transport,
    }
    spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
    if not spec.dir:
        raise UsageError(f"{spec.name}: no stack dir: set `dir` in its inventory file or --dir")
    return spec


def run_to_the_end(
    run: Run, body: Callable[[], None], exit_code: Callable[[int], int] = lambda own: own
) -> int:
    """Run `body`; whatever it raises is the ledger's error, said in one line (a bug in gate
    with its traceback in the artifacts); then results/ and the exit code (`exit_code` may
    refine the ledger's)."""
    try:
        body()
    except (Interrupted, GateError) as exc:
        run.ledger.error = exc
        run.note(f"gate: {exc}", "bold red")
    except Exception as exc:  # a bug in gate: one redacted line, traceback in artifacts
        run.ledger.error = exc
        run.artifacts.write_text("traceback.txt", traceback.format_exc())
        run.note(f"gate: internal error: {type(exc).__name__}: {exc}", "bold red")
    finally:
        run.guard.uninstall()
    run.ledger.signal = run.guard.first
    code = exit_code(run.ledger.exit_code(strict=run.ctx.opts.strict))
    write_results(run, code)
    return code


def connect_box(run: Run, target: Target) -> Box:
    """The run's Box on an open target, preflighted (boxtool up first), with the manifest
    written; the target's own notices (a transport fallback) go to the run's notes."""
    target.notice = lambda text: run.note(text, "yellow")
    box = Box(
        target,
        run.ctx.host,
        run.ctx.contract_file.contract,
        run.artifacts.record_event,
        run.guard.checkpoint,
        run_id=run.ctx.run_id,
    )
    write_manifest(run, target.name, preflight(box))
    return box


def fit_config(run: Run) -> None:
    """Read the box's config once, before any change, and check the contract fits it
    (else one usage line, exit 2); phases and the baseline use this reading."""
    cfg = read_config(run.box)
    if cfg.lost is not None:
        raise cfg.lost
    if cfg.error or cfg.value is None:
        raise PreflightError(f"cannot read the stack's config: {cfg.error}")
    fit_contract(run.box.contract, cfg.value, run.ctx.contract_file.path, run.ctx.facts)
    run.config = cfg.value


class Engine:
    """Runs one run's phases against one box, restoring it on every exit path."""

    def __init__(self, run: Run, target: TargetFactory) -> None:
        self.run = run
        self.ctx = run.ctx
        self._target = target

    def execute(self) -> int:
        return run_to_the_end(self.run, self._connect_and_run)

    def _connect_and_run(self) -> None:
        run, host = self.run, self.ctx.host
        mode = "local" if host.local else f"ssh, {host.transport} transport"
        run.console.phase("connect", f"{host.name} ({mode}, {self.ctx.opts.mode})")
        with self._target(host, self.ctx.opts.accept_new_host_key) as target:
            box = connect_box(run, target)
            exclusive = self.ctx.mutates or self.ctx.opts.recover
            lock = BoxLock(
                box,
                self.ctx.run_id,
                exclusive=exclusive,
                grace=self.ctx.lock_grace,
                watchdog=self.ctx.watchdog,
            )
            lock.acquire()
            try:
                run.attach(box, Journal(box, self.ctx.run_id, self.ctx.opts.mode))
                if watchdog_did := said(read_state(box)):
                    run.note(watchdog_did, "yellow")
                run.journal_note("start")
                self._phases()
                run.journal_note("end", verdict=str(run.ledger.verdict()))
            finally:
                with run.guard.shielded(), contextlib.suppress(GateError):
                    box.remove_spec()
                lock.release()

    def _phases(self) -> None:
        if self.ctx.opts.recover:
            self._recover()
        elif self.ctx.mutates:
            self._mutating()
        else:
            self._fit_contract()
            for phase in self.ctx.phases:
                phase.run(self.run)

    def _fit_contract(self) -> None:
        fit_config(self.run)

    def _mutating(self) -> None:
        """Plan, baseline, the phases, and ALWAYS the restore (unless --keep)."""
        run = self.run
        refuse_dirty(run)
        self._fit_contract()
        planned = [p for p in self.ctx.phases if p.plan(run)]
        if not any(p.mutates for p in planned):
            run.note("nothing runnable: the box was not touched", "bold yellow")
            return
        run.baseline = take_baseline(run)
        if run.baseline is None:
            return
        raised = True
        try:
            for phase in planned:
                self._run_phase(phase)
            raised = False
        finally:
            self._finish(raised)

    def _run_phase(self, phase: Phase) -> None:
        run = self.run
        run.journal_note("phase", phase=phase.name)
        before = len(run.ledger.records)
        try:
            phase.run(run)
        finally:
            failed = any(r.verdict is Verdict.FAIL for r in run.ledger.records[before:])
            if failed and phase.mutates and phase.flag is not None:  # the matrix: per scenario
                self._capture(phase)

    def _capture(self, phase: Phase) -> None:
        """A destructive phase failed: the stack's own diagnostics, as they are before the
        restore puts the box back (the matrix captures per scenario itself)."""
        where = f"captures/{phase.name}"
        try:
            capture(self.run.box, self.run.artifacts, self.run.config, where)
        except (GateError, Interrupted) as exc:  # the restore comes first: say it, go on
            self.run.note(f"{phase.name}: diagnostics not captured: {exc}", "yellow")
            return
        self.run.note(f"{phase.name} failed: the stack's diagnostics are in {where}/")

    def _finish(self, raised: bool) -> None:
        """The restore (unless --keep); with a verified safety backup, first a rollback
        from it if anything failed, and after a proven restore the archive is removed."""
        run = self.run
        assert run.baseline is not None
        archive = run.backup_archive
        with run.guard.shielded():
            try:
                mend_all(run)  # a fault is healed, a secret file put back: even under --keep
            except BoxDirty as exc:  # the link was lost: no restore over an unmended break
                if archive is None:
                    raise
                raise BoxDirty(f"{exc}; the safety backup is KEPT at {archive}") from exc
        if self.ctx.opts.keep:
            run.note(
                "--keep: the box was NOT restored; it stays on the last scenario and is marked "
                f"dirty. Put it back with `{run.hint('--recover')}`.",
                "bold yellow",
            )
            if archive is not None:
                run.note(f"--keep: the safety backup is kept at {archive}", "bold yellow")
            return
        failed = raised or run.ledger.verdict() in (Verdict.FAIL, Verdict.INCONCLUSIVE)
        with run.guard.shielded():
            if archive is not None and failed:
                rollback(run, run.baseline)
            try:
                restore_and_prove(run, run.baseline)
            except BoxDirty as exc:
                if archive is None:
                    raise
                raise BoxDirty(f"{exc}; the safety backup is KEPT at {archive}") from exc
            if archive is not None:
                remove_archive(run)

    def _recover(self) -> None:
        """The baseline an interrupted run left on the box: mend the repairs it left open,
        restore and prove; its safety backup, if any, is removed or rolled back from
        (gate/recovery.py)."""
        run = self.run
        state = read_state(run.box)
        if state.get("state") == "clean":
            raise UsageError(
                f"box {self.ctx.host.name} is clean: nothing to recover "
                "(no interrupted run left it dirty)"
            )
        baseline = load_baseline(run.box)
        if baseline is None:
            raise BoxDirty("no baseline on the box to recover from (.gate/baseline/ is empty)")
        check_identity(run, baseline, "recover")
        run.note(
            f"recovering: on-box state {state.get('state')} from run {state.get('run_id', '?')}, "
            f"baseline of run {baseline.run_id}"
        )
        with run.guard.shielded():
            recover(run, baseline, str(state.get("run_id", "")))


def preflight(box: Box) -> Any:
    """The box is gateable; boxtool goes up before the stack is asked anything.

    The first probe prints only fixed words; the control command's `version` output is
    then scrubbed on the box like every later command. Returns the stack's versions.
    """
    directory = quote(box.host.dir)
    tools = " ".join(REQUIRED_TOOLS)
    probe = (
        f"test -d {directory} || {{ echo no-dir; exit 0; }}; "
        f'for t in {tools}; do command -v "$t" >/dev/null || echo "missing:$t"; done'
    )
    words = answered(box.run(probe, in_dir=False)).stdout.split()
    if "no-dir" in words:
        raise PreflightError(f"stack dir {box.host.dir} not found on {box.host.name}")
    missing = [w.removeprefix("missing:") for w in words if w.startswith("missing:")]
    if missing:
        raise PreflightError(f"{box.host.name} lacks needed tools: {', '.join(missing)}")
    box.install_tool()
    version = answered(box.control(box.contract.actions.version, timeout=30))
    if not version.ok:
        why = (version.stderr or version.stdout).strip()[:160]
        raise PreflightError(
            f"control command `{box.host.control}` failed in {box.host.dir}: {why}"
        )
    try:
        return json.loads(version.stdout)
    except ValueError:  # a text version (the contract may declare one): kept as said
        return {"text": version.stdout.strip()[:200]}
