"""Whole gate runs on the scripted double (FakeStack), for tests that look at what a run
leaves behind (report.html, summary.md, junit.xml): a run in milliseconds, its results dir.

test_engine.py has its own copy of the quick contract and the in-process run; the two could
share this module.
"""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakestack import FakeStack

from gate.box import Kind
from gate.cli import run_cli
from gate.engine.run import Run
from gate.options import Flag
from gate.phases import Phase, register, unregister
from gate.testing.double import Reply

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]


def quick_contract(tmp_path: Path) -> Path:
    """The repo's contract and matrix with every wait window cut short (fakestack.quick)."""
    path = tmp_path / "quick_contract.py"
    matrix = str(REPO / "matrix.py")
    path.write_text(
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(UNIT)!r})\n"
        "from fakestack import load_contract, quick\n"
        f"spec = importlib.util.spec_from_file_location('repo_matrix', {matrix!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "CONTRACT = quick(load_contract())\n"
        "MATRIX = module.MATRIX\n"
    )
    return path


@dataclass
class DoubleRun:
    code: int
    console: str
    run_dir: Path


def run_gate(stack: FakeStack, tmp_path: Path, **flags: Any) -> DoubleRun:
    """`invoke gate --local --dir ... FLAGS` in process against `stack`; its results dir."""
    out = tmp_path / "results"
    raw = {
        "local": True,
        "dir": stack.dir,
        "matrix": str(quick_contract(tmp_path)),
        "out": str(out),
        **flags,
    }
    console = io.StringIO()
    before = set(out.iterdir()) if out.exists() else set()
    code = run_cli(raw, console, target=lambda _host, _accept: stack.target)
    made = set(out.iterdir()) - before if out.exists() else set()
    assert len(made) <= 1, made
    return DoubleRun(code, console.getvalue(), made.pop() if made else out / "(no run dir)")


MARK = "echo interrupting-phase-was-here"


class InterruptingPhase(Phase):
    """A mutating phase that receives SIGINT before its one command: an interrupted run."""

    name = "interrupting"
    mutates = True
    flag = Flag("interrupting", "a phase that is interrupted (tests)")

    def run(self, run: Run) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        run.box.run(MARK, kind=Kind.MUTATE)


@contextmanager
def interrupting_phase(stack: FakeStack) -> Iterator[None]:
    """Registers InterruptingPhase (flag --interrupting) for the duration."""
    register(InterruptingPhase())
    stack.target.on(MARK, Reply(0))
    try:
        yield
    finally:
        unregister(InterruptingPhase.name)


def passing(tmp_path: Path) -> DoubleRun:
    return run_gate(FakeStack(), tmp_path, scenario=["main-secure-strict", "local-defaults"])


def failing(tmp_path: Path, defects: dict[str, Any] | None = None, **flags: Any) -> DoubleRun:
    """pool.tier is stuck at "x": the scenario's pool tier check fails and captures."""
    stack = FakeStack(api_overrides={"pool.tier": "x"}, **(defects or {}))
    return run_gate(stack, tmp_path, scenario=["main-secure-strict"], **flags)


def interrupted(tmp_path: Path) -> DoubleRun:
    stack = FakeStack()
    with interrupting_phase(stack):
        return run_gate(stack, tmp_path, interrupting=True, scenario=["local-defaults"])
