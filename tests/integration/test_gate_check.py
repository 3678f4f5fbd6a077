"""`invoke gate --check` against a real sample-stack box, locally and over a real sshd."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import MUTATING_VERBS, Box, run_gate

pytestmark = pytest.mark.slow


def test_healthy_box_passes_and_changes_nothing(
    stack_box: Box, via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    config_before = (stack_box.path / "config.json").stat().st_mtime_ns
    env_before = (stack_box.path / ".env").stat().st_mtime_ns
    pids_before = stack_box.pids()
    run = run_gate(*via(stack_box), "--check", out=tmp_path / "results")
    assert run.code == 0, run.output
    assert run.summary["counts"]["pass"] >= 15
    assert run.summary["counts"]["fail"] == 0
    kinds = {e["kind"] for e in run.events}
    assert "read" in kinds
    assert "mutate" not in kinds
    stack_commands = [e["command"] for e in run.events if "stackctl" in e["command"]]
    assert stack_commands, "the check never asked the stack anything"
    for command in stack_commands:
        assert not any(verb in f" {command} " for verb in MUTATING_VERBS), command
    assert (stack_box.path / "config.json").stat().st_mtime_ns == config_before
    assert (stack_box.path / ".env").stat().st_mtime_ns == env_before
    assert stack_box.pids() == pids_before
