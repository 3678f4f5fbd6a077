"""Signals at every point of a matrix run: the box is restored, exactly once, and the run
exits 130 (SIGINT) or 143 (SIGTERM), never 0. SIGKILL leaves a box the next run refuses
(once the dead run's lock lapsed) and `--recover` puts back and proves.

Signals are timed on the run's own events.jsonl (the command just finished), never on sleeps.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import (
    Box,
    GateRun,
    Running,
    assert_restore_proven,
    assert_restored,
    config_and_secret_hashes,
    gate_state,
    install,
    kill_leftovers,
    lock_lapsed,
    run_gate,
    wait_for,
)

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

SCENARIO = "nano-cache-lan"  # changes tier, cache and LAN binding: a restore has work to do
BASELINE_STORED = "cp -p config.json .gate/baseline"
RENDERED = "boxtool.py render"
APPLIED = "stackctl apply -y"
RESTORING = "cp -p .gate/baseline/config.json config.json"
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


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


@pytest.fixture(scope="module")
def shared_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Box]]:
    """One box for the module while runs keep putting it back; a new one after any that did
    not (each run restores, so sharing is itself checked: a box is reused only if its files
    hash as installed, its state is clean and its status healthy)."""
    made: list[tuple[Box, dict[str, str]]] = []

    def reusable(box: Box, installed: dict[str, str]) -> bool:
        state = box.path / ".gate" / "state.json"
        clean = not state.exists() or gate_state(box) == "clean"
        current = config_and_secret_hashes(box)
        same = all(current.get(p) == h for p, h in installed.items())
        return clean and same and box.status()[0] == 0

    def get() -> Box:
        if made and reusable(*made[-1]):
            return made[-1][0]
        box = Box(tmp_path_factory.mktemp("signals") / "box")
        proc = install(box.path, "--python", sys.executable)
        assert proc.returncode == 0, proc.stderr
        made.append((box, {}))
        applied = box.ctl("apply", "-y")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        box.wait_healthy(timeout=60)
        made[-1] = (box, config_and_secret_hashes(box))
        return box

    yield get
    for box, _ in made:
        box.ctl("down")
        kill_leftovers(box.path)


@pytest.fixture
def box(shared_box: Callable[[], Box]) -> Box:
    """A healthy sample-stack box in its installed state (the module's shared one if it is)."""
    return shared_box()


def local(box: Box) -> list[str]:
    return ["--local", "--dir", str(box.path)]


def count(run: GateRun, needle: str) -> int:
    return sum(needle in e["command"] for e in run.events)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["after-baseline", "during-apply", "during-restore"])
def test_a_signal_restores_the_box_once_and_exits_with_the_signal_code(
    point: str,
    signum: signal.Signals,
    box: Box,
    running: Callable[..., Running],
) -> None:
    before = config_and_secret_hashes(box)
    gate = running([*local(box), "--scenario", SCENARIO])
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
    assert_restored(box, before)
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
    assert box.status()[0] == 0
    assert box.api_state()["pool"]["tier"] == "mini"


def test_a_second_sigint_during_the_restore_does_not_cut_it_short(
    box: Box, running: Callable[..., Running]
) -> None:
    before = config_and_secret_hashes(box)
    gate = running([*local(box), "--scenario", SCENARIO])
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
    assert_restored(box, before)
    assert box.status()[0] == 0


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_sigkill_leaves_a_dirty_box_that_is_refused_then_recovered_and_proven(
    transport: str,
    box: Box,
    running: Callable[..., Running],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    short_lock_grace: None,  # the dead run's lock lapses 1 s after its end
) -> None:
    if transport == "local":
        flags = local(box)
    else:
        server: Sshd = request.getfixturevalue("sshd")
        flags = ssh_args(server, box, tmp_path / "inventory")
    before = config_and_secret_hashes(box)
    gate = running([*flags, "--scenario", SCENARIO], "killed")
    gate.after(APPLIED)  # the scenario's config is applied: the box is mid-flight
    gate.proc.kill()
    assert gate.proc.wait(timeout=30) == -signal.SIGKILL
    killed = GateRun(-signal.SIGKILL, gate.console, gate.out).run_dir.name
    # its lock outlives it (a lost link looks the same from the box) until the grace lapses
    wait_for(f"the lock of {killed} lapsed", lambda: lock_lapsed(box, killed), bool, timeout=60)

    assert gate_state(box) == "dirty"
    assert box.config()["pool"]["tier"] == "nano"
    assert (box.path / ".gate" / "baseline" / "config.json").is_file()

    refused = run_gate(*flags, "--scenario", SCENARIO, out=tmp_path / "refused")
    assert refused.code == 4, refused.output  # 75: the dead run's lock outlived its grace
    assert "--recover" in refused.output
    assert not [e for e in refused.events if e["kind"] == "mutate"]
    assert gate_state(box) == "dirty"

    recovered = run_gate(*flags, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert recovered.summary["verdict"] == "passed"
    assert_restore_proven(recovered)
    assert_restored(box, before)
    assert box.api_state()["pool"]["tier"] == "mini"

    again = run_gate(*flags, "--recover", out=tmp_path / "again")
    assert again.code == 2, again.output  # a clean box has nothing to recover
    assert "nothing to recover" in again.output
