"""Signals at every point of a matrix run: the box is restored, exactly once, and the run
exits 130 (SIGINT) or 143 (SIGTERM), never 0. SIGKILL leaves a box the next run refuses
and `--recover` puts back and proves.

Signals are timed on the run's own events.jsonl (the command just finished), never on sleeps.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import Box, GateRun, config_and_secret_hashes, run_gate, start_gate, wait_for
from sshd import Sshd

pytestmark = pytest.mark.slow

SCENARIO = "nano-cache-lan"  # changes tier, cache and LAN binding: a restore has work to do
BASELINE_STORED = "cp -p config.json .gate/baseline"
RENDERED = "boxtool.py render"
APPLIED = "stackctl apply -y"
RESTORING = "cp -p .gate/baseline/config.json config.json"
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


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


@pytest.fixture
def running(tmp_path: Path) -> Any:
    started: list[Running] = []

    def start(flags: list[str], name: str = "results") -> Running:
        run = Running(flags, tmp_path / name)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()


def local(box: Box) -> list[str]:
    return ["--local", "--dir", str(box.path)]


def count(run: GateRun, needle: str) -> int:
    return sum(needle in e["command"] for e in run.events)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["after-baseline", "during-apply", "during-restore"])
def test_a_signal_restores_the_box_once_and_exits_with_the_signal_code(
    point: str,
    signum: signal.Signals,
    stack_box: Box,
    running: Callable[..., Running],
) -> None:
    before = config_and_secret_hashes(stack_box)
    gate = running([*local(stack_box), "--scenario", SCENARIO])
    needle = {"after-baseline": BASELINE_STORED, "during-apply": RENDERED}.get(point, RESTORING)
    gate.after(needle)
    gate.signal(signum)
    run = gate.finish()

    assert run.code == EXIT[signum], run.output
    assert run.summary["exit_code"] == EXIT[signum]
    assert run.summary["verdict"] == "interrupted"
    assert run.summary["error"] == f"interrupted by {signum.name}"
    assert count(run, RESTORING) == 1, "the restore must run exactly once"
    assert_restore_proven(run)
    assert_restored(stack_box, before)
    applies = count(run, APPLIED)
    scenario_checks = [c for c in run.summary["checks"] if c["scenario"] == SCENARIO]
    if point == "after-baseline":  # stopped before the scenario applied anything
        assert applies == 1, "only the restore's apply"
        assert scenario_checks == []
    elif point == "during-apply":  # the apply in flight finished, nothing after it ran
        assert applies == 2, "the scenario's apply and the restore's"
        assert scenario_checks == []
    else:  # the scenario had finished; the restore was not cut short
        assert applies == 3, "apply, the idempotency apply, the restore's apply"
        assert {c["verdict"] for c in scenario_checks} == {"pass"}
    assert stack_box.status()[0] == 0
    assert stack_box.api_state()["pool"]["tier"] == "mini"


def test_a_second_sigint_during_the_restore_does_not_cut_it_short(
    stack_box: Box, running: Callable[..., Running]
) -> None:
    before = config_and_secret_hashes(stack_box)
    gate = running([*local(stack_box), "--scenario", SCENARIO])
    gate.after(RENDERED)
    gate.signal(signal.SIGINT)
    gate.after(RESTORING)
    gate.signal(signal.SIGINT)  # the impatient second Ctrl-C, mid-restore
    gate.after(APPLIED, count=2)  # and a third while the restore waits for status 0
    gate.signal(signal.SIGINT)
    run = gate.finish()

    assert run.code == 130, run.output
    assert count(run, RESTORING) == 1
    assert_restore_proven(run)
    assert_restored(stack_box, before)
    assert stack_box.status()[0] == 0


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_sigkill_leaves_a_dirty_box_that_is_refused_then_recovered_and_proven(
    transport: str,
    stack_box: Box,
    running: Callable[..., Running],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    if transport == "local":
        flags = local(stack_box)
    else:
        server: Sshd = request.getfixturevalue("sshd")
        flags = ssh_args(server, stack_box, tmp_path / "inventory")
    before = config_and_secret_hashes(stack_box)
    gate = running([*flags, "--scenario", SCENARIO], "killed")
    gate.after(APPLIED)  # the scenario's config is applied: the box is mid-flight
    gate.proc.kill()
    assert gate.proc.wait(timeout=30) == -signal.SIGKILL

    assert gate_state(stack_box) == "dirty"
    assert stack_box.config()["pool"]["tier"] == "nano"
    assert (stack_box.path / ".gate" / "baseline" / "config.json").is_file()

    refused = run_gate(*flags, "--scenario", SCENARIO, out=tmp_path / "refused")
    assert refused.code == 4, refused.output  # 75 would mean the dead run's lock outlived it
    assert "--recover" in refused.output
    assert not [e for e in refused.events if e["kind"] == "mutate"]
    assert gate_state(stack_box) == "dirty"

    recovered = run_gate(*flags, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert recovered.summary["verdict"] == "passed"
    assert_restore_proven(recovered)
    assert_restored(stack_box, before)
    assert stack_box.api_state()["pool"]["tier"] == "mini"

    again = run_gate(*flags, "--recover", out=tmp_path / "again")
    assert again.code == 2, again.output  # a clean box has nothing to recover
    assert "nothing to recover" in again.output
