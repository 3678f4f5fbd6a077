"""One conversation with a box: every command run in the stack dir, timed out, scrubbed and
journaled, and classed by what it may change.

The class of a command is what `--check` is held to: a check run issues no `MUTATE`
command, and the tests prove it from this journal.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from gate.contract import StackContract
from gate.inventory import HostSpec
from gate.result import Outcome, Result
from gate.target import Target, quote

GATE_DIR = ".gate"
TOOL_TIMEOUT = 124  # boxtool exec's exit code when it killed a command at its deadline
TOOL_TIMEOUT_MARK = "boxtool: timed out after"
BOXTOOL = f"{GATE_DIR}/boxtool.py"
APPLY_TIMEOUT = 600.0
"""The deadline of the stack's apply, the longest command gate sends (boxtool exec kills it
there on the box)."""


class Kind(enum.StrEnum):
    """What a command may change on the box."""

    READ = "read"
    BOOKKEEPING = "bookkeeping"  # writes only under .gate/
    MUTATE = "mutate"  # changes the stack: config, env, services


@dataclass(frozen=True)
class Event:
    """One command as it is journaled: redacted text, class, outcome and timing."""

    command: str
    kind: Kind
    result: Result


Recorder = Callable[[Event], None]


class Box:
    """Runs commands on one box's stack dir through a Target."""

    def __init__(
        self,
        target: Target,
        host: HostSpec,
        contract: StackContract,
        record: Recorder,
        checkpoint: Callable[[], None] = lambda: None,
        run_id: str = "",
    ) -> None:
        self.target = target
        self.checkpoint = checkpoint
        self.host = host
        self.contract = contract
        self._record = record
        self._tool_ready = False
        self.spec_path = f"{GATE_DIR}/spec-{run_id}.json" if run_id else f"{GATE_DIR}/spec.json"
        """This run's boxtool spec: its own file, so no other run can change it."""
        self._generation = target.generation
        self.reconnected: Callable[[], None] = lambda: None
        """Called after a dropped link is re-established, before the next command is sent."""

    def run(
        self,
        command: str,
        *,
        kind: Kind = Kind.READ,
        timeout: float = 30.0,
        stdin: str | None = None,
        scrub: bool = True,
        in_dir: bool = True,
        env_from: list[str] | None = None,
        journal: bool = True,
    ) -> Result:
        """Run `command` in the stack dir; its output is scrubbed on the box once boxtool is up.

        A pending signal is raised before the command is sent, never while it runs.
        `env_from` (VAR=ENV_KEY) sets variables from the env file on the box (boxtool exec).
        """
        self.checkpoint()
        self._ensure_link()
        sent = command
        if scrub and self._tool_ready and stdin is None:
            sent = f"{self.boxtool} exec {timeout:g} {quote(command, *(env_from or []))}"
        if in_dir:
            sent = f"cd {quote(self.host.dir)} && {sent}"
        result = _tool_timeout(self.target.run(sent, timeout=timeout + 5, stdin=stdin), timeout)
        if journal:
            self._record(Event(command, kind, result))
        return result

    def batch(self, calls: Sequence[Sequence[str]], *, timeout: float = 30.0) -> list[Result]:
        """Independent boxtool reads in one call (`boxtool batch`): one python start and one
        round trip for all. Each read comes back, and is journaled, as if it ran alone; a
        batch that fails as a whole fails every read alike."""
        argvs = [list(call) for call in calls]
        whole = self.run(
            f"{self.boxtool} batch",
            timeout=timeout * max(1, len(argvs)),
            stdin=json.dumps(argvs),
            scrub=False,
            journal=False,
        )
        results = [
            _tool_timeout(result, float(call[1]) if call[0] == "exec" else timeout)
            for call, result in zip(argvs, _split(whole, argvs, self.boxtool), strict=True)
        ]
        for result in results:
            self._record(Event(result.command, Kind.READ, result))
        return results

    def _ensure_link(self) -> None:
        """Reconnect now if the link dropped, so the lock re-proves itself before any command."""
        self.target.open()
        if self.target.generation != self._generation:
            self._generation = self.target.generation
            self.reconnected()

    def control(self, verb: str, *, kind: Kind = Kind.READ, timeout: float = 60.0) -> Result:
        """The stack's control command, e.g. `apply -y`."""
        return self.run(f"{self.control_command} {verb}", kind=kind, timeout=timeout)

    @property
    def control_command(self) -> str:
        """The inventory's (or --control's) control command, else the contract's."""
        return self.host.control or self.contract.control

    def tool(
        self, *args: str, kind: Kind = Kind.READ, stdin: str | None = None, timeout: float = 30.0
    ) -> Result:
        """boxtool on the box: it does its own scrubbing."""
        return self.run(
            f"{self.boxtool} {quote(*args)}",
            kind=kind,
            timeout=timeout,
            stdin=stdin,
            scrub=False,
        )

    def tool_json(self, *args: str, timeout: float = 30.0) -> Any:
        """boxtool's JSON answer; Unreachable if the link failed, ValueError if garbage."""
        result = answered(self.tool(*args, timeout=timeout))
        if not result.ok:
            raise ValueError(f"boxtool {args[0]} exited {result.exit_code}: {result.stderr[-200:]}")
        return json.loads(result.stdout)

    def write_file(self, path: str, text: str, *, kind: Kind, mode: str = "600") -> Result:
        """Write a file on the box through stdin, never through the command line."""
        tmp = f"{path}.gate-tmp"
        command = f"umask 077 && cat > {quote(tmp)} && chmod {mode} {quote(tmp)}"
        return self.run(
            f"{command} && mv -f {quote(tmp)} {quote(path)}", kind=kind, stdin=text, scrub=False
        )

    def remove_spec(self) -> None:
        """Take this run's spec off the box when it ends (bookkeeping, best effort)."""
        self.run(f"rm -f {quote(self.spec_path)}", kind=Kind.BOOKKEEPING, scrub=False)

    @property
    def boxtool(self) -> str:
        """How to call boxtool on the box for this run (its spec named, never a secret)."""
        return f"GATE_SPEC={quote(self.spec_path)} python3 {BOXTOOL}"

    def install_tool(self) -> None:
        """Upload boxtool and its non-secret spec into .gate/ (mode 0700)."""
        answered(self.run(f"mkdir -p {GATE_DIR} && chmod 700 {GATE_DIR}", kind=Kind.BOOKKEEPING))
        source = resources.files("gate").joinpath("boxtool.py").read_text(encoding="utf-8")
        answered(self.write_file(BOXTOOL, source, kind=Kind.BOOKKEEPING))
        spec = json.dumps(self.spec(), indent=2)
        answered(self.write_file(self.spec_path, spec, kind=Kind.BOOKKEEPING))
        self._tool_ready = True

    def spec(self) -> dict[str, Any]:
        """boxtool's inputs from the contract: where the config and secrets are (no secret)."""
        secrets = self.contract.secrets
        return {
            "env_file": self.contract.env_file,
            "config_file": self.contract.config.path,
            "config_format": self.contract.config.format,
            "env_keys": list(secrets.env_keys),
            "files": list(secrets.files),
            "config_paths": list(secrets.config_paths),
            "in_use": [{"secret": u.secret, "file": u.file} for u in secrets.in_use],
        }


def answered(result: Result) -> Result:
    """The result, or Unreachable when the box could not be asked."""
    if result.lost is not None:
        raise result.lost
    return result


def _tool_timeout(result: Result, timeout: float) -> Result:
    """boxtool exec's own timeout (exit 124 and its mark) is could-not-ask, as a link's is."""
    if result.exit_code == TOOL_TIMEOUT and TOOL_TIMEOUT_MARK in result.stderr:
        return replace(
            result,
            outcome=Outcome.UNREACHABLE,
            exit_code=None,
            reason=f"timeout after {timeout:g}s",
        )
    return result


def _split(whole: Result, calls: list[list[str]], boxtool: str) -> list[Result]:
    """A batch's answer as one Result per read, named as the read would be when sent alone."""
    names = [call[2] if call[0] == "exec" else f"{boxtool} {quote(*call)}" for call in calls]
    answers: Any = None
    if whole.ok:
        with contextlib.suppress(ValueError):
            answers = json.loads(whole.stdout)
    if not (isinstance(answers, list) and len(answers) == len(calls)):
        if whole.lost is not None:
            return [replace(whole, command=name, stdout="") for name in names]
        why = f"boxtool batch answered no list of {len(calls)}: {whole.stderr[-200:]}"
        code = whole.exit_code or 1
        return [Result(name, Outcome.FAILED, code, "", why, whole.duration) for name in names]
    return [_answer(name, answer) for name, answer in zip(names, answers, strict=True)]


def _answer(name: str, answer: Any) -> Result:
    code = answer.get("exit") if isinstance(answer, dict) else None
    if not isinstance(code, int):
        return Result(name, Outcome.FAILED, 1, "", f"boxtool batch: no exit code for {name}", 0.0)
    return Result(
        command=name,
        outcome=Outcome.OK if code == 0 else Outcome.FAILED,
        exit_code=code,
        stdout=str(answer.get("stdout", "")),
        stderr=str(answer.get("stderr", "")),
        duration=float(answer.get("seconds", 0.0)),
    )
