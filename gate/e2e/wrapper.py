"""The branch end-to-end wrapper: gate BRANCH on the box, then put the canonical stack back.

main(request) -> exit code
    validate: branch name, mode, contract, E2E declaration, scenarios, host (exit 2,
        nothing touched)
    connect -> the canonical checkout read (a git work tree, clean), BRANCH resolved in it,
        no checkout left at its place (exit 2, nothing written) -> preflight -> the
        canonical's lock (exclusive, held to the end)
    canonical: not left dirty -> contract fits -> git state read -> baseline (healthy, kept
        on the box: a killed e2e leaves it for `--recover`) -> safety backup, verified
    branch: clone --shared beside the canonical -> seed config + secrets (on the box) ->
        install -> canonical down -> branch apply -> ready -> the gate in the chosen mode
    ALWAYS (shielded, also on failure, SIGINT, SIGTERM, SIGHUP): branch down -> canonical
        restored and proven (else rolled back from the safety backup and proven) -> git
        state of the canonical checkout unchanged -> the checkout removed (unless --keep)
    exit: 4 if the canonical is not proven restored, a signal's code, else the branch
        gate's code (or 1 when the branch could not be deployed)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TextIO

from gate.artifacts import Artifacts, new_run_id
from gate.battery import wait_ready
from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.checks import CheckRecord, Verdict, service_states
from gate.contract import Config, StackContract
from gate.e2e import checkout as git
from gate.e2e.inner import run_gate
from gate.e2e.spec import MODES, BranchDeploy, load_deploy, mode_flags
from gate.engine.baseline import refuse_dirty, take_baseline
from gate.engine.engine import (
    TargetFactory,
    connect_box,
    default_target,
    fit_config,
    resolve,
    run_to_the_end,
)
from gate.engine.run import Run, RunContext
from gate.errors import BackupRefused, BoxDirty, ExitCode, GateError, UsageError
from gate.fit import check_declarations
from gate.inventory import HostSpec
from gate.lock import BoxLock, lock_grace
from gate.matrix import validate_matrix
from gate.observe import read_config, read_probe, read_status
from gate.options import Options, load_contract_file
from gate.phases.safety_backup import remove_archive, rollback, verified_backup
from gate.probes import STATUS
from gate.redact import Redactor
from gate.repairs import Repair, mend, open_repair
from gate.repairs import tool as repair_tool
from gate.report import Console
from gate.restore import restore_and_prove
from gate.result import Result
from gate.signals import Interrupted, process_guard
from gate.snapshot import Journal
from gate.target import Target, quote

PHASE = "e2e"
SIGNAL_CODES = (ExitCode.SIGINT, ExitCode.SIGTERM, ExitCode.SIGHUP)


@dataclass(frozen=True)
class E2EOptions(Options):
    """The gate's box flags plus what e2e adds: the branch, the mode, keep the checkout."""

    branch: str = ""
    e2e_mode: str = "targeted"
    keep_checkout: bool = False

    @property
    def mode(self) -> str:
        return f"e2e-{self.e2e_mode}"


def main(
    opts: E2EOptions, stream: TextIO | None = None, target: TargetFactory = default_target
) -> int:
    """Check everything that can be checked off the box, then run the wrapper."""
    guard = process_guard()
    redactor = Redactor()
    console = Console(redactor, stream)
    try:
        git.check_branch_name(opts.branch)
        if opts.e2e_mode not in MODES:
            raise UsageError(f"--mode {opts.e2e_mode!r}: one of {', '.join(MODES)}")
        contract_file = load_contract_file(opts.matrix_file)
        check_declarations(contract_file.contract, opts.matrix_file)
        deploy = load_deploy(opts.matrix_file)
        actions = contract_file.contract.actions
        if not actions.down:
            raise UsageError(f"e2e: contract {contract_file.contract.name} declares no down action")
        scenarios = _scenarios(opts, contract_file.matrix)
        host = resolve(opts, contract_file.contract)
        grace = lock_grace()
    except UsageError as exc:
        console.line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    if guard.first is not None:
        console.line(f"gate: {Interrupted(guard.first)} before the run began: nothing touched")
        return Interrupted(guard.first).exit_code
    with contextlib.ExitStack() as stack:
        try:  # connect and read the box; nothing is written before the run begins
            opened = stack.enter_context(target(host, opts.accept_new_host_key))
            found = inspect(opened, host, contract_file.contract, opts.branch)
            if guard.first is not None:
                raise Interrupted(guard.first)
        except (GateError, Interrupted) as exc:
            console.line(f"gate: {exc}: nothing touched", "bold red")
            return exc.exit_code
        ctx = RunContext(opts, contract_file, host, new_run_id(), (), grace)
        run = Run(ctx, console, Artifacts(opts.out, ctx.run_id, redactor), guard)
        return Wrapper(run, opened, found, deploy, scenarios).execute()
    raise AssertionError("unreachable")  # ExitStack swallows nothing; mypy wants a return


@dataclass(frozen=True)
class Found:
    """What the box said before anything was written: the canonical checkout, the
    branch's commit, and where the dedicated checkout goes."""

    canonical: git.Canonical
    commit: str
    checkout: str


def inspect(target: Target, host: HostSpec, contract: StackContract, branch: str) -> Found:
    """Read-only, before boxtool goes up (nothing written, not even under .gate/): the
    canonical checkout, BRANCH in it, no checkout left at its place; else a usage error."""
    box = Box(target, host, contract, lambda _event: None)
    canonical = git.find_canonical(box)
    git.refuse_canonical_control(box.control_command, canonical, host.dir)
    commit = git.resolve_branch(box, canonical, branch)
    path = git.checkout_path(canonical, branch)
    git.refuse_existing(box, path)
    return Found(canonical, commit, path)


def _scenarios(opts: E2EOptions, matrix: object) -> tuple[str, ...]:
    """What --mode targeted walks: --scenario's names, else the first declared scenario."""
    if opts.e2e_mode == "check":
        if opts.scenarios:
            raise UsageError("--mode check runs no scenario: drop --scenario")
        return ()
    declared = validate_matrix(matrix)
    chosen = declared.select(opts.scenarios)  # an unknown name is a usage error
    if opts.e2e_mode == "matrix":
        if opts.scenarios:
            raise UsageError("--mode matrix walks every scenario: drop --scenario")
        return ()
    if not chosen:
        raise UsageError("--mode targeted: the matrix declares no scenario")
    return tuple(s.name for s in chosen) if opts.scenarios else (chosen[0].name,)


class Wrapper:
    """One e2e: the canonical stack's run (its box, lock, baseline) with the branch inside."""

    def __init__(
        self,
        run: Run,
        target: Target,
        found: Found,
        deploy: BranchDeploy,
        scenarios: tuple[str, ...],
    ) -> None:
        self.run = run
        self.opts: E2EOptions = run.ctx.opts  # type: ignore[assignment]
        self.target = target
        self.found = found
        self.deploy = deploy
        self.scenarios = scenarios
        self.inner_code: int | None = None
        self.checkout: str | None = None
        """The dedicated checkout's path once e2e began to make it (removed at the end)."""
        self.branch_box: Box | None = None
        self.branch_started = False

    # --- the run ------------------------------------------------------------------------

    def execute(self) -> int:
        return run_to_the_end(self.run, self._connect_and_run, self._exit_code)

    def _exit_code(self, own: int) -> int:
        """Dirty and signals first; then the branch gate's own verdict code; else ours."""
        if own == ExitCode.DIRTY or own in SIGNAL_CODES:
            return own
        if self.inner_code not in (None, ExitCode.PASSED):
            assert self.inner_code is not None
            return self.inner_code
        return own

    def _connect_and_run(self) -> None:
        run, host = self.run, self.run.ctx.host
        mode = "local" if host.local else f"ssh, {host.transport} transport"
        run.console.phase("connect", f"{host.name} ({mode}, e2e of {self.opts.branch})")
        found = self.found
        box = connect_box(run, self.target)
        lock = BoxLock(box, run.ctx.run_id, exclusive=True, grace=run.ctx.lock_grace)
        lock.acquire()
        try:
            run.attach(box, Journal(box, run.ctx.run_id, self.opts.mode))
            run.journal_note(
                "start", branch=self.opts.branch, commit=found.commit, checkout=found.checkout
            )
            self._e2e(box, found.canonical, found.commit, found.checkout)
            run.journal_note("end", verdict=str(run.ledger.verdict()))
        finally:
            with run.guard.shielded(), contextlib.suppress(GateError):
                box.remove_spec()
            lock.release()

    def _e2e(self, box: Box, canonical: git.Canonical, commit: str, path: str) -> None:
        run = self.run
        refuse_dirty(run)
        fit_config(run)
        git_before = git.git_state(box, canonical)
        run.baseline = take_baseline(run)
        if run.baseline is None:
            return
        try:
            self._safety_backup()
            self._branch(box, canonical, commit, path)
        finally:
            self._finish(box, canonical, git_before)

    def _safety_backup(self) -> None:
        run = self.run
        if run.box.contract.actions.backup is None:
            run.note("the contract declares no backup action: e2e runs without a safety backup")
            return
        run.console.phase("safety-backup", "the canonical stack, verified on the box")
        record, archive = verified_backup(
            run, "e2e: canonical safety backup verified", "e2e/backup.log", PHASE
        )
        if archive is None:
            raise BackupRefused(f"e2e: the canonical's backup is not verified: {record.evidence}")

    # --- the branch -----------------------------------------------------------------------

    def _branch(self, box: Box, canonical: git.Canonical, commit: str, path: str) -> None:
        """Checkout, seed, install, swap the stacks, wait ready, gate the branch."""
        run, contract = self.run, box.contract
        stack_dir = git.stack_dir_in(path, canonical)
        run.console.phase("checkout", f"{self.opts.branch} ({commit[:12]}) at {path}")
        self.checkout = path
        if not self._step(
            "checkout made beside the canonical", git.clone(box, canonical, path, commit)
        ):
            return
        patterns = [contract.config.path, contract.env_file, *contract.secrets.files]
        copied = git.seed(box, box.host.dir, stack_dir, [*patterns, *self.deploy.seed])
        seeded = contract.config.path in copied and contract.env_file in copied
        self._record(
            "checkout seeded with the canonical config and secrets",
            seeded,
            f"{contract.config.path}, {contract.env_file} and the secret files copied on the box",
            f"{len(copied)} files: {', '.join(copied)}",
        )
        if not seeded:
            return
        branch = Box(
            box.target,
            replace(box.host, dir=stack_dir),
            contract,
            run.artifacts.record_event,
            run.guard.checkpoint,
            run_id=run.ctx.run_id,
        )
        self.branch_box = branch
        branch.install_tool()
        if self.deploy.install and not self._step(
            "branch installed",
            branch.run(self.deploy.install, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT),
        ):
            return
        run.console.phase("deploy", "canonical down, the branch's stack applied")
        run.journal_note("canonical-down")
        down = contract.actions.down
        assert down is not None  # main() refuses a contract without one
        if not self._step("canonical stack stopped", self._control(box, down)):
            return
        # before the branch can run: a killed e2e leaves this for `--recover` (or a watchdog)
        open_repair(run, branch_repair(branch, stack_dir))
        self.branch_started = True
        if not self._step("branch stack applied", self._control(branch, contract.actions.apply)):
            return
        if not self._branch_ready(branch):
            return
        self._gate_branch(stack_dir)

    def _branch_ready(self, branch: Box) -> bool:
        cfg = read_config(branch)
        if cfg.lost is not None:
            raise cfg.lost
        if cfg.value is None:
            self._record("branch stack ready", False, "its config readable", str(cfg.error))
            return False
        record = wait_ready(branch, cfg.value, self.deploy.ready_timeout, self.run.console.waiting)
        record.name, record.phase = f"{PHASE}: branch stack ready", PHASE
        self.run.add(record)
        return record.verdict is Verdict.PASS

    def _gate_branch(self, stack_dir: str) -> None:
        """The gate against the branch's stack dir, as a child; its verdict is a record."""
        run, opts = self.run, self.opts
        run.console.phase("gate", f"--mode {opts.e2e_mode} against {opts.branch}")
        flags = [*branch_flags(opts, stack_dir, run), *mode_flags(opts.e2e_mode, self.scenarios)]
        run.artifacts.write_text("e2e/gate-command.txt", " ".join(flags) + "\n")
        run.journal_note("branch-gate", mode=opts.e2e_mode)
        log = run.artifacts.dir / "e2e" / "gate.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)
        code = run_gate(flags, log, run.guard, lambda line: run.console.line("  " + line))
        run.artifacts.write_text("e2e/gate.log", log.read_text(errors="replace"))  # redacted
        self.inner_code = code
        verdict = {0: Verdict.PASS, 3: Verdict.INCONCLUSIVE}.get(code, Verdict.FAIL)
        self._record_verdict(f"gate --mode {opts.e2e_mode} on {opts.branch}", verdict, code)
        run.guard.checkpoint()  # a signal the child was given: unwind now (the restore follows)

    # --- ALWAYS ------------------------------------------------------------------------

    def _finish(self, box: Box, canonical: git.Canonical, git_before: dict[str, str]) -> None:
        """Branch down, the canonical restored and proven, the git state compared, the
        checkout removed: every step tried, the first dirty one raised at the end."""
        run = self.run
        dirty: list[BoxDirty] = []
        with run.guard.shielded():
            stopped, running = self._branch_down()
            if running:  # never start the canonical on top of it: its restore could not pass
                dirty.append(
                    BoxDirty(
                        f"the branch's stack at {self.checkout} still runs "
                        f"({', '.join(running)}): the canonical was NOT started. Stop the "
                        f"branch's stack, then run `{run.hint('--recover')}`"
                    )
                )
            else:
                try:
                    self._restore_canonical()
                except BoxDirty as exc:
                    dirty.append(exc)
            after = git.git_state(box, canonical)
            changed = sorted(k for k in git_before if git_before[k] != after.get(k))
            self._record(
                "canonical checkout's git state unchanged",
                not changed,
                "HEAD, branch, index, staged entries, status and refs as before",
                "changed: " + ", ".join(changed) if changed else "all equal",
            )
            if changed:
                dirty.append(BoxDirty(f"the canonical checkout's git state changed: {changed}"))
            self._remove_checkout(box, canonical, stopped and not running)
        if dirty:
            raise dirty[0]

    def _branch_down(self) -> tuple[bool, list[str]]:
        """Stop the branch's stack if e2e began to start it (its repair): whether the stop
        succeeded, and the services the branch's own status still reports running."""
        run = self.run
        if not self.branch_started or REPAIR_KEY not in run.repairs or self.branch_box is None:
            return True, []
        repair = run.repairs[REPAIR_KEY]
        failures = mend(run, REPAIR_KEY)
        running = still_running(self.branch_box, run.config)
        if running and not failures:  # the stop said yes and the stack says no: keep it open
            open_repair(run, repair)
        said = "; ".join(failures) or (f"still running: {', '.join(running)}" if running else "")
        self._record(
            "branch stack stopped",
            not failures and not running,
            "the stop exits 0 and the branch's status lists no running service",
            said or "down",
        )
        return not failures, running

    def _restore_canonical(self) -> None:
        """restore_and_prove; if not proven and a safety backup exists, roll back from it
        and prove again; a proven restore removes the archive."""
        run = self.run
        assert run.baseline is not None
        try:
            restore_and_prove(run, run.baseline)
        except BoxDirty:
            if run.backup_archive is None:
                raise
            rollback(run, run.baseline)
            restore_and_prove(run, run.baseline)
        if run.backup_archive is not None:
            remove_archive(run)

    def _remove_checkout(self, box: Box, canonical: git.Canonical, branch_down: bool) -> None:
        path = self.checkout
        if path is None:
            return
        if self.opts.keep_checkout or not branch_down:
            why = "--keep" if branch_down else "its stack could not be stopped"
            run_note = f"the checkout is KEPT at {path} ({why})"
            self.run.note(run_note, "bold yellow")
            return
        self._step("checkout removed", git.remove(box, canonical, path))

    # --- records -------------------------------------------------------------------------

    def _control(self, box: Box, verb: str) -> Result:
        return answered(box.control(verb, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))

    def _step(self, name: str, result: Result) -> bool:
        """A mutating step's outcome as a record (its output in the artifacts)."""
        self.run.artifacts.write_text(f"e2e/{_slug(name)}.log", result.stdout + result.stderr)
        why = (result.stderr or result.stdout).strip().splitlines()
        self._record(name, result.ok, "exit 0", f"exit {result.exit_code}", why[-1] if why else "")
        return result.ok

    def _record(
        self, name: str, ok: bool, expected: str, observed: str, evidence: str = ""
    ) -> None:
        verdict = Verdict.PASS if ok else Verdict.FAIL
        self.run.add(
            CheckRecord(f"{PHASE}: {name}", verdict, expected, observed, evidence, phase=PHASE)
        )

    def _record_verdict(self, name: str, verdict: Verdict, code: int) -> None:
        self.run.add(
            CheckRecord(f"{PHASE}: {name}", verdict, "exit 0", f"exit {code}", phase=PHASE)
        )


REPAIR_KEY = "e2e-branch"
WAIT_FOR_BRANCH_RUN = (
    "import fcntl, os; os.makedirs('.gate', exist_ok=True); "
    "fcntl.flock(open('.gate/lock', 'a'), fcntl.LOCK_EX)"
)
"""Waits until no gate run holds the branch checkout's lock (the branch's gate, which
restores its own stack first), so the stop never races it."""


def still_running(branch: Box, cfg: Config) -> list[str]:
    """The services the branch's own services probe reports running ([] when it reports
    none, or cannot be read: a stack whose control cannot run has nothing it started)."""
    spec = branch.contract.services
    _code, status = read_status(branch)
    reading = (
        status
        if spec.probe == STATUS
        else read_probe(branch, branch.contract.probe(spec.probe), cfg)
    )
    if not reading.usable or reading.value is None:
        return []
    try:
        states = service_states(reading.value, spec)
    except ValueError:
        return []
    return sorted(name for name, state in states.items() if state == spec.running)


def branch_repair(branch: Box, stack_dir: str) -> Repair:
    """Stop the branch's stack, once no gate run holds its checkout: a control verb in the
    checkout (boxtool exec from the canonical stack dir, journaled there)."""
    down = branch.contract.actions.down
    where = quote(stack_dir)
    command = (  # a checkout already gone has nothing left running (e2e stops, then removes)
        f"[ ! -d {where} ] || {{ cd {where} && python3 -c {quote(WAIT_FOR_BRANCH_RUN)} && "
        f"{branch.control_command} {down}; }}"
    )
    return Repair(
        REPAIR_KEY,
        f"the branch's stack at {stack_dir} stopped",
        (repair_tool("exec", f"{APPLY_TIMEOUT:g}", command),),
    )


def branch_flags(opts: E2EOptions, stack_dir: str, run: Run) -> list[str]:
    """The flags that reach the branch's stack dir on the same box under the same contract."""
    words = ["--local"] if opts.local else []
    if opts.host:
        words += ["--host", opts.host, "--inventory", str(opts.inventory_dir)]
    words += ["--dir", stack_dir, "--matrix", str(opts.matrix_file.resolve())]
    words += ["--out", str(run.artifacts.dir / "branch")]
    if opts.control:
        words += ["--control", opts.control]
    if opts.known_hosts is not None:
        words += ["--known-hosts", str(opts.known_hosts)]
    if opts.transport:
        words += ["--transport", opts.transport]
    if opts.accept_new_host_key:
        words.append("--accept-new-host-key")
    if opts.strict:
        words.append("--strict")
    for key, value in sorted(opts.facts.items()):
        words += ["--fact", f"{key}={value}"]
    return words


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")
