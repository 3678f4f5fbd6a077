"""Driving gate as a user does (`invoke gate ...` in a subprocess) against real boxes.

A `GateRun` is what a user would look at afterwards: the exit code, everything printed,
and the results/<run-id>/ directory. Boxes are the sample stack, installed by the stack's
own test helpers (tests/stack/stackbox.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "stack"))

from stackbox import Box, file_hash, install, kill_leftovers, wait_for  # noqa: E402

from gate.testing.sshd import Sshd, write_inventory  # noqa: E402

__all__ = [
    "REPO",
    "Box",
    "GateRun",
    "file_hash",
    "install",
    "kill_leftovers",
    "wait_for",
    "write_inventory",
]

MUTATING_VERBS = ("apply", " up", " down", "stop", "start", "kill", " rm ", "restart", "restore")


@dataclass
class GateRun:
    """One finished `invoke gate` run."""

    code: int
    output: str
    out_dir: Path

    @property
    def run_dir(self) -> Path:
        runs = sorted(p for p in self.out_dir.iterdir() if p.is_dir())
        assert len(runs) == 1, f"expected one run dir in {self.out_dir}, found {runs}"
        return runs[0]

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "summary.json").read_text()))

    @property
    def events(self) -> list[dict[str, Any]]:
        lines = (self.run_dir / "events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def verdicts(self) -> dict[str, str]:
        """check name (prefixed by scenario when there is one) -> verdict."""
        return {
            (f"{c['scenario']}/" if c["scenario"] else "") + c["name"]: c["verdict"]
            for c in self.summary["checks"]
        }

    def verdict(self, name: str) -> str:
        found = self.verdicts()
        assert name in found, f"no check {name!r}; checks: {sorted(found)}"
        return found[name]

    def everything_written(self) -> str:
        """Console output plus every file in the run dir: what a canary must never be in."""
        texts = [self.output]
        texts += [p.read_text(errors="replace") for p in self.run_dir.rglob("*") if p.is_file()]
        return "\n".join(texts)


def gate_command(*args: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "invoke", "gate", *args, "--out", str(out)]


EXTRA_ENV: dict[str, str] = {}
"""Variables every gate run of a test gets (see the short_lock_grace fixture). Tests never
change os.environ itself: a thread forking meanwhile (the stack tests' reaper) can read a
half-changed environment and fail with EFAULT."""


def gate_env() -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    env.update(EXTRA_ENV)
    return env


def run_gate(*args: str, out: Path, timeout: float = 300) -> GateRun:
    """Run `invoke gate ARGS --out OUT` from the repo root, as a user would."""
    out.mkdir(parents=True, exist_ok=True)
    proc = run_in_repo(gate_command(*args, out=out), timeout)
    return GateRun(proc.returncode, proc.stdout + proc.stderr, out)


def run_in_repo(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command run from the repo root with no stdin and plain output, as CI runs it."""
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=gate_env(),
        check=False,
    )


def start_gate(*args: str, out: Path) -> subprocess.Popen[str]:
    """Start a gate run in the background (for signal tests); output goes to out/console.txt."""
    out.mkdir(parents=True, exist_ok=True)
    console = (out.parent / f"{out.name}-console.txt").open("w")
    return subprocess.Popen(
        gate_command(*args, out=out),
        cwd=REPO,
        stdout=console,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=gate_env(),
        text=True,
    )


def killed_after(flags: list[str], needle: str, out: Path) -> str:
    """Start a run, SIGKILL it once a command containing `needle` ran on the box (what a
    lost link looks like from the box); the dead run's id."""
    proc = start_gate(*flags, out=out)
    try:
        wait_for_event(out, needle)
        proc.kill()
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return GateRun(-signal.SIGKILL, "", out).run_dir.name


def wait_for_event(out: Path, needle: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the running gate's events.jsonl until a command containing `needle` appears."""

    def latest() -> dict[str, Any] | None:
        for path in out.glob("*/events.jsonl"):
            for line in reversed(path.read_text().splitlines()):
                event = json.loads(line)
                if needle in event["command"]:
                    return dict(event)
        return None

    found = wait_for(f"gate event {needle!r}", latest, lambda e: e is not None, timeout)
    assert found is not None
    return found


def config_and_secret_hashes(box: Box) -> dict[str, str]:
    """What 'restored' means on disk: config.json, .env and the secret files, by hash."""
    paths = [box.path / "config.json", box.path / ".env", *sorted((box.path / "secrets").glob("*"))]
    return {str(p.relative_to(box.path)): file_hash(p) for p in paths if p.is_file()}


def until(deadline_s: float) -> float:
    return time.monotonic() + deadline_s


# --- shared by the tests that signal a run (signals, lifecycle, faults, auth) ---


def gate_state(box: Box) -> str:
    return str(json.loads((box.path / ".gate" / "state.json").read_text())["state"])


def assert_restored(box: Box, before: dict[str, str]) -> None:
    after = config_and_secret_hashes(box)
    changed = {p for p in before if after.get(p) != before[p]}
    assert not changed, f"not restored: {sorted(changed)}"
    assert all(p.startswith("secrets/") for p in set(after) - set(before))
    assert gate_state(box) == "clean"


def assert_restore_proven(run: GateRun) -> None:
    proof = {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "restore"}
    assert proof.get("restore: config bytes identical") == "pass", proof
    assert len(proof) >= 5 and set(proof.values()) == {"pass"}, proof


def commands(out: Path) -> list[str]:
    found = []
    for path in out.glob("*/events.jsonl"):
        found += [json.loads(line)["command"] for line in path.read_text().splitlines()]
    return found


class Running:
    """A gate run in the background, and the moments to signal it."""

    def __init__(self, flags: list[str], out: Path) -> None:
        self.out = out
        self.proc = start_gate(*flags, out=out)

    def after(self, needle: str, count: int = 1, timeout: float = 120) -> None:
        """Wait until the count-th command containing `needle` has finished on the box."""

        def seen() -> tuple[int, Any]:
            return sum(needle in c for c in commands(self.out)), self.proc.poll()

        got = wait_for(
            f"{count}x {needle!r}",
            seen,
            lambda s: s[0] >= count or s[1] is not None,
            timeout,
        )
        assert got[0] >= count, f"the run ended (exit {got[1]}) before {needle!r}: {self.console}"

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 300) -> GateRun:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        return GateRun(code, self.console, self.out)

    @property
    def console(self) -> str:
        return (self.out.parent / f"{self.out.name}-console.txt").read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def lock_lapsed(box: Box, run_id: str) -> bool:
    """The box journaled that the run's lock lapsed (its holder outlived the runner)."""
    journal = box.path / ".gate" / "journal.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    records = [json.loads(line) for line in lines]
    return any(r["run_id"] == run_id and r["event"] == "lock-lapsed" for r in records)


FAILING_CHECK = (  # the sample contract plus one check that always fails
    "import importlib.util\n"
    "import dataclasses\n"
    f"spec = importlib.util.spec_from_file_location('repo_matrix', {str(REPO / 'matrix.py')!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "from gate.contract import STATUS, Check, Equals\n"
    "WRONG = Check('deliberately wrong', STATUS, 'overall', Equals('never'))\n"
    "CONTRACT = dataclasses.replace(module.CONTRACT, checks=(*module.CONTRACT.checks, WRONG))\n"
    "MATRIX = module.MATRIX\n"
)
"""A contract file's text: the run fails (exit 1), so a --safety-backup run rolls back."""


# --- dropping SSH links: the sshd session processes, the listener kept ---


def processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every live process, from /proc."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (proc / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            yield int(proc.name), int(stat.rpartition(")")[2].split()[1]), name


def kill_sessions(server: Sshd) -> list[int]:
    """SIGKILL the sshd session processes: every live link drops, yet the listener still
    accepts new ones (Sshd.drop_links kills the listener too)."""
    parent = {pid: ppid for pid, ppid, _ in processes()}
    sessions = [
        pid
        for pid, _, name in processes()
        if name.startswith("sshd") and pid != server.pid and _below(pid, server.pid, parent)
    ]
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sessions


def _below(pid: int, root: int | None, parent: dict[int, int]) -> bool:
    while pid in parent and pid > 1:
        pid = parent[pid]
        if pid == root:
            return True
    return False
