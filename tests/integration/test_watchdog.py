"""The on-box watchdog: a mutating run's runner killed with SIGKILL (what a lost link looks
like from the box), and the box put back and proven by the lock's holder alone.

Every wait is on the box's own journal; the runner is killed on its own events.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import (
    EXTRA_ENV,
    Box,
    assert_restored,
    config_and_secret_hashes,
    gate_state,
    killed_after,
    run_gate,
    wait_for,
)

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

SCENARIO = ("--scenario", "nano-cache-lan")  # tier, cache and LAN binding: work to undo
APPLIED = "stackctl apply -y"


@pytest.fixture
def watchdog_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """Runs of this test: a 1 s lock grace and the watchdog limit the test is marked with."""
    limit = request.node.get_closest_marker("watchdog_s").args[0]
    EXTRA_ENV.update(GATE_LOCK_GRACE="1", GATE_WATCHDOG_S=str(limit))
    yield
    for name in ("GATE_LOCK_GRACE", "GATE_WATCHDOG_S"):
        EXTRA_ENV.pop(name, None)


def journal(box: Box) -> list[dict[str, Any]]:
    path = box.path / ".gate" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def events_of(box: Box, run_id: str) -> list[str]:
    return [e["event"] for e in journal(box) if e["run_id"] == run_id]


def watchdog_done(box: Box, run_id: str) -> list[str]:
    return wait_for(
        f"the watchdog of run {run_id} ended",
        lambda: events_of(box, run_id),
        lambda events: "lock-lapsed" in events,
        timeout=180,
    )


@pytest.mark.watchdog_s(10)
def test_the_watchdog_restores_a_box_whose_runner_was_killed_mid_scenario(
    make_stack_box: Any, sshd: Sshd, tmp_path: Path, watchdog_after: None
) -> None:
    box = make_stack_box()
    flags = ssh_args(sshd, box, tmp_path / "inventory")
    before = config_and_secret_hashes(box)
    killed = killed_after([*flags, *SCENARIO], APPLIED, tmp_path / "killed")
    assert box.config()["pool"]["tier"] == "nano"  # mid-flight: the scenario is applied

    # within the limit the dead run still holds the box, and the refusal says what comes
    locked = run_gate(*flags, "--check", out=tmp_path / "locked")
    assert locked.code == 75, locked.output
    assert "on-box watchdog restores the box 10s after" in locked.output

    events = watchdog_done(box, killed)
    assert events[-3:] == ["watchdog-start", "watchdog-restored", "lock-lapsed"], events
    assert_restored(box, before)
    assert box.api_state()["pool"]["tier"] == "mini"
    assert box.status()[0] == 0

    after = run_gate(*flags, "--check", out=tmp_path / "after")
    assert after.code == 0, after.output
    assert f"the on-box watchdog restored this box after run {killed}" in after.output


@pytest.mark.watchdog_s(2)
def test_the_watchdog_heals_the_fault_a_killed_run_left_open(
    make_stack_box: Any, tmp_path: Path, watchdog_after: None
) -> None:
    box = make_stack_box()
    before = config_and_secret_hashes(box)
    local = ["--local", "--dir", str(box.path)]
    flags = [*local, "--fault-injection", "--no-backup", "--scenario", "local-defaults"]
    killed = killed_after(flags, "stackctl stop node", tmp_path / "killed")

    events = watchdog_done(box, killed)
    assert "repair-open" in events and "watchdog-mended" in events, events
    assert events[-2:] == ["watchdog-restored", "lock-lapsed"], events
    assert_restored(box, before)
    code, status = box.status()
    assert code == 0 and status["services"]["node"]["state"] == "running", status


@pytest.mark.watchdog_s(3)
def test_a_restore_the_watchdog_cannot_prove_leaves_the_box_dirty_for_recover(
    make_stack_box: Any, tmp_path: Path, watchdog_after: None
) -> None:
    box = make_stack_box()
    before = config_and_secret_hashes(box)
    local = ["--local", "--dir", str(box.path)]
    killed = killed_after([*local, *SCENARIO], APPLIED, tmp_path / "killed")
    kept = box.path / ".gate" / "baseline" / "config.json"
    original = kept.read_bytes()
    kept.write_bytes(original + b"\n")  # valid, applies, but not the baseline's bytes

    events = watchdog_done(box, killed)
    assert events[-2:] == ["watchdog-failed", "lock-lapsed"], events
    assert gate_state(box) == "dirty"

    refused = run_gate(*local, *SCENARIO, out=tmp_path / "refused")
    assert refused.code == 4, refused.output
    assert "the on-box watchdog could not prove its restore" in refused.output
    assert "config bytes differ from the baseline's" in refused.output

    kept.write_bytes(original)
    recovered = run_gate(*local, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert_restored(box, before)
