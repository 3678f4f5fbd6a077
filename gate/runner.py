"""Orders the phases of a run, owns the lock, the always-restore and the exit code.

main(options) -> exit code
    validate options, load matrix.py, resolve the host      (usage error: exit 2)
    open the target, preflight, install boxtool, lock        (75 locked, 3 unreachable)
    check | matrix | recover                                 (phases/)
    summary.json, junit.xml, the final table
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from gate import __version__
from gate.artifacts import Artifacts, git_revision, new_run_id
from gate.box import Box, answered
from gate.checks import CheckRecord, SkipClass, Verdict, worst
from gate.errors import ExitCode, GateError, PreflightError, UsageError
from gate.inventory import HostSpec, local_spec, resolve_host
from gate.matrix import Matrix, validate_matrix
from gate.options import Options, StackFile, load_stack_file, validate
from gate.redact import Redactor
from gate.report import Console
from gate.signals import Interrupted, SignalGuard
from gate.snapshot import BoxLock, Journal
from gate.target import quote, target_for

REQUIRED_TOOLS = ("python3", "flock", "sha256sum", "cp", "mv", "cat")

Phase = Callable[["Run"], None]


def resolve(opts: Options) -> HostSpec:
    """The host spec the options name, with --dir and --workers applied."""
    if opts.local:
        assert opts.dir is not None
        spec = local_spec(opts.dir)
    else:
        assert opts.host is not None
        spec = resolve_host(opts.host, opts.inventory_dir)
        if opts.dir:
            spec = replace(spec, dir=opts.dir)
    if not spec.dir:
        raise UsageError(f"{spec.name}: no stack dir: set `dir` in its inventory file or --dir")
    if opts.workers is not None:
        spec = replace(spec, workers=opts.workers)
    if opts.known_hosts is not None:
        spec = replace(spec, known_hosts=opts.known_hosts)
    return spec


class Run:
    """One run against one box: its records, its artifacts, its console."""

    def __init__(
        self, opts: Options, stack: StackFile, host: HostSpec, console: Console, redactor: Redactor
    ) -> None:
        self.opts = opts
        self.stack = stack
        self.host = host
        self.console = console
        self.redactor = redactor
        self.run_id = new_run_id()
        self.artifacts = Artifacts(opts.out, self.run_id, redactor)
        self.records: list[CheckRecord] = []
        self.notes: list[str] = []
        self.error: BaseException | None = None
        self.exit_code = ExitCode.PASSED
        self.guard = SignalGuard()
        self.started = time.time()
        self.box: Box | None = None
        self.journal: Journal | None = None
        self.restored = False
        self.scenario_lines: list[dict[str, str]] = []
        self.facts = {**host.requirements, **opts.facts}

    def add(self, record: CheckRecord) -> None:
        self.records.append(record)
        self.console.check(record)

    def require_box(self) -> Box:
        if self.box is None:
            raise RuntimeError("a phase ran before the box was connected")
        return self.box

    def require_matrix(self) -> Matrix:
        if self.stack.matrix is None:
            raise UsageError(f"{self.opts.matrix_file} declares no MATRIX")
        return validate_matrix(self.stack.matrix)

    def journal_note(self, event: str, **details: Any) -> None:
        if self.journal is not None:
            self.journal.note(event, **details)

    def note(self, text: str, style: str = "") -> None:
        self.notes.append(text)
        self.console.line(text, style)

    def execute(self, phases: list[Phase]) -> int:
        self.guard.install()
        try:
            self._connect_and_run(phases)
        except (Interrupted, GateError) as exc:
            self.error = exc
            self.note(f"gate: {exc}", "bold red")
        except Exception as exc:  # a bug in gate: one redacted line, traceback in artifacts
            self.error = exc
            self.artifacts.write_text("traceback.txt", traceback.format_exc())
            self.note(f"gate: internal error: {type(exc).__name__}: {exc}", "bold red")
        finally:
            self.guard.uninstall()
        self.exit_code = self._exit_code()
        self._write_results()
        return self.exit_code

    def _connect_and_run(self, phases: list[Phase]) -> None:
        self.console.phase("connect", f"{self.host.name} ({self.mode})")
        with target_for(self.host, accept_new=self.opts.accept_new_host_key) as target:
            self.box = Box(
                target,
                self.host,
                self.stack.contract,
                self.artifacts.record_event,
                self.guard.checkpoint,
            )
            versions = preflight(self.box)
            self._write_manifest(target.name, versions)
            self.box.install_tool()
            lock = BoxLock(self.box, self.run_id, exclusive=self.mode != "check")
            lock.acquire()
            try:
                self.journal = Journal(self.box, self.run_id, self.mode)
                self.journal.note("start")
                for phase in phases:
                    phase(self)
                self.journal.note("end", verdict=str(worst(r.verdict for r in self.records)))
            finally:
                lock.release()

    @property
    def mode(self) -> str:
        return self.opts.mode

    def _exit_code(self) -> int:
        if isinstance(self.error, Interrupted):
            return self.error.exit_code
        if isinstance(self.error, GateError):
            return self.error.exit_code
        if self.error is not None:
            return ExitCode.FAILED
        if self.guard.first is not None:  # arrived after the last command: still not a pass
            return Interrupted(self.guard.first).exit_code
        verdict = worst(r.verdict for r in self.records)
        if self.opts.strict and self.strict_failures():
            return ExitCode.FAILED
        if not self.records:
            return ExitCode.FAILED
        return {Verdict.FAIL: ExitCode.FAILED, Verdict.INCONCLUSIVE: ExitCode.INCONCLUSIVE}.get(
            verdict, ExitCode.PASSED
        )

    def strict_failures(self) -> list[str]:
        """What --strict refuses: a missing-class skip, or a run that checked nothing."""
        reasons = [
            f"skip of class missing: {r.scenario or r.name}"
            for r in self.records
            if r.verdict is Verdict.SKIP and r.skip_class is SkipClass.MISSING
        ]
        if not any(r.verdict is not Verdict.SKIP for r in self.records):
            reasons.append("no check executed")
        return reasons

    def _write_manifest(self, target: str, versions: Any) -> None:
        self.artifacts.write_json(
            "manifest.json",
            {
                "run_id": self.run_id,
                "gate_version": __version__,
                "gate_git": git_revision(Path(__file__).resolve().parent.parent),
                "mode": self.mode,
                "target": target,
                "host": self.host.name,
                "stack_dir": self.host.dir,
                "stack": versions,
                "options": {k: str(v) for k, v in vars(self.opts).items()},
                "started": self.started,
            },
        )

    def _write_results(self) -> None:
        verdict = self.verdict_word()
        summary = {
            "run_id": self.run_id,
            "verdict": verdict,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "host": self.host.name,
            "error": str(self.error) if self.error else None,
            "strict_failures": self.strict_failures() if self.opts.strict else [],
            "notes": self.notes,
            "scenarios": self.scenario_lines,
            "started": self.started,
            "ended": time.time(),
            "counts": {v.value: sum(r.verdict is v for r in self.records) for v in Verdict},
            "checks": [r.as_dict() for r in self.records],
        }
        self.artifacts.write_summary(summary)
        self.artifacts.write_junit(self.records, f"gate.{self.mode}")
        self.console.final(self.records, verdict, self.exit_code)
        self.console.line(f"results: {self.artifacts.dir}")
        if self.opts.json:
            sys.stdout.write(self.redactor(json.dumps(summary, indent=2, default=str)) + "\n")

    def verdict_word(self) -> str:
        words = {
            ExitCode.PASSED: "passed",
            ExitCode.FAILED: "failed",
            ExitCode.USAGE: "usage error",
            ExitCode.INCONCLUSIVE: "inconclusive",
            ExitCode.DIRTY: "BOX DIRTY",
            ExitCode.LOCKED: "box locked",
        }
        return words.get(self.exit_code, "interrupted")


def preflight(box: Box) -> Any:
    """The box is reachable and gateable: stack dir, tools, control command. Returns versions."""
    directory = quote(box.host.dir)
    found = answered(box.run(f"test -d {directory} && echo yes || echo no", in_dir=False))
    if found.stdout.strip() != "yes":
        raise PreflightError(f"stack dir {box.host.dir} not found on {box.host.name}")
    tools = " ".join(REQUIRED_TOOLS)
    probe = f'for t in {tools}; do command -v "$t" >/dev/null || echo "$t"; done'
    missing = answered(box.run(probe, in_dir=False)).stdout.split()
    if missing:
        raise PreflightError(f"{box.host.name} lacks needed tools: {', '.join(missing)}")
    version = answered(box.control(box.contract.commands.version_json, timeout=30))
    if version.exit_code in (126, 127) or not version.ok:
        why = (version.stderr or version.stdout).strip()[:160]
        raise PreflightError(
            f"control command `{box.host.control}` failed in {box.host.dir}: {why}"
        )
    try:
        return json.loads(version.stdout)
    except ValueError:
        return {"raw": version.stdout.strip()[:200]}


def main(opts: Options, phases: dict[str, list[Phase]], stream: TextIO | None = None) -> int:
    """Validate, run, report; the process exit code."""
    redactor = Redactor()
    console = Console(redactor, stream)
    try:
        validate(opts)
        stack = load_stack_file(opts.matrix_file)
        if opts.mode == "matrix":
            validate_matrix(stack.matrix).select(opts.scenarios)
        host = resolve(opts)
    except UsageError as exc:
        console.line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    run = Run(opts, stack, host, console, redactor)
    return run.execute(phases[opts.mode])
