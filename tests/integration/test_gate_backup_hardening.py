"""The safety backup, its rollback and `--recover` when a run ends badly, on real sample boxes.

- SIGKILL a `--safety-backup` run mid-matrix: `--recover` proves the box and removes the
  archive the killed run left (it was only insurance).
- SIGINT or SIGTERM while the backup action runs, or while the rollback's restore runs:
  the run exits with the signal's code, the box is restored and proven, the archive removed.
- A link dropped in the middle of the rollback (over the real sshd): exit 4, the archive
  kept and named, the box dirty; a later `--recover` puts it back and removes the archive.

The backup and the restore are held in flight by a patch of the box's own copy of
stacklib/backup.py: it touches a marker file and waits for the test's go file (a real
signal from the box, no sleeps in the test).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ssh_args
from harness import (
    FAILING_CHECK,
    Box,
    GateRun,
    Running,
    config_and_secret_hashes,
    gate_state,
    kill_sessions,
    lock_lapsed,
    run_gate,
    start_gate,
    wait_for,
)

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

SCENARIO = "nano-cache-lan"  # its restore has work to do
APPLIED = "stackctl apply -y"
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def archives(box: Box) -> list[Path]:
    backups = box.path / "backups"
    return sorted(backups.iterdir()) if backups.is_dir() else []


def hold_in_flight(box: Box, function: str) -> tuple[Path, Path]:
    """Patch the box's stacklib/backup.py so `function` (backup or restore) touches
    run/FUNCTION-started, then waits (at most 120 s) for run/FUNCTION-go: (started, go)."""
    started, go = box.path / "run" / f"{function}-started", box.path / "run" / f"{function}-go"
    source = box.path / "stacklib" / "backup.py"
    text = source.read_text()
    head = f"def {function}(box: Path" + (") -> Path:\n" if function == "backup" else ", ")
    at = text.index(head)
    body = text.index("\n", text.index(":\n", at)) + 1
    wait = (
        f"    (box / 'run' / '{function}-started').touch()\n"
        "    _until = time.monotonic() + 120\n"
        f"    while not (box / 'run' / '{function}-go').exists() and time.monotonic() < _until:\n"
        "        time.sleep(0.02)\n"
    )
    source.write_text(text[:body] + wait + text[body:])
    return started, go


def let_go(go: Path) -> None:
    go.touch()


def assert_proven_and_clean(run: GateRun, box: Box, before: dict[str, str]) -> None:
    assert "restore proven" in run.output, run.output
    proof = {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "restore"}
    assert proof.get("restore: config bytes identical") == "pass", proof
    assert config_and_secret_hashes(box) == before
    assert gate_state(box) == "clean"
    assert box.status()[0] == 0


@pytest.mark.usefixtures("short_lock_grace")  # the killed run's lock lapses 1 s after it
def test_sigkill_mid_matrix_then_recover_proves_the_box_and_removes_the_archive(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    flags = ["--local", "--dir", str(box.path)]
    before = config_and_secret_hashes(box)
    gate = Running([*flags, "--safety-backup", "--scenario", SCENARIO], tmp_path / "killed")
    try:
        gate.after(APPLIED)  # the scenario is applied: the box is mid-flight
        gate.proc.kill()
        assert gate.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        gate.stop()
    killed = GateRun(-signal.SIGKILL, gate.console, gate.out).run_dir.name
    wait_for(f"the lock of {killed} lapsed", lambda: lock_lapsed(box, killed), bool, timeout=60)
    (archive,) = archives(box)
    assert gate_state(box) == "dirty"
    assert box.config()["pool"]["tier"] == "nano"

    recovered = run_gate(*flags, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert f"left a verified safety backup: {archive}" in recovered.output
    assert f"safety backup removed: {archive}" in recovered.output
    assert archives(box) == [], "the killed run's archive outlived a proven recover"
    assert not any(" restore " in e["command"] for e in recovered.events), "rolled back anyway"
    assert_proven_and_clean(recovered, box, before)


@pytest.mark.parametrize(
    ("point", "signum"),
    [("backup", signal.SIGINT), ("restore", signal.SIGTERM)],
    ids=["SIGINT-during-backup", "SIGTERM-during-rollback"],
)  # both signals at both points on the double (tests/unit/test_recovery.py): lean here
def test_a_signal_during_the_backup_or_the_rollback_restores_proves_and_removes_the_archive(
    make_stack_box: Callable[..., Box], tmp_path: Path, point: str, signum: signal.Signals
) -> None:
    box = make_stack_box()
    flags = ["--local", "--dir", str(box.path), "--safety-backup", "--scenario", "local-defaults"]
    if point == "restore":  # a run that fails, so that it rolls back
        contract = tmp_path / "failing_contract.py"
        contract.write_text(FAILING_CHECK)
        flags += ["--matrix", str(contract)]
    before = config_and_secret_hashes(box)
    started, go = hold_in_flight(box, point)
    gate = Running(flags, tmp_path / "results")
    try:
        wait_for(f"the {point} in flight", started.exists, bool, timeout=120)
        gate.signal(signum)
        let_go(go)
        run = gate.finish()
    finally:
        gate.stop()

    assert run.code == EXIT[signum], run.output
    assert run.summary["error"] == f"interrupted by {signum.name}"
    assert run.verdict("safety-backup: archive verified") == "pass"
    assert run.verdict("rollback: config bytes equal the baseline") == "pass"
    for category in ("env", "files"):
        assert run.verdict(f"rollback: secrets ({category}) equal the baseline") == "pass"
    commands = [e["command"] for e in run.events]
    restore = next(i for i, c in enumerate(commands) if " restore " in c and "backups/" in c)
    assert any(c.endswith("stackctl up") for c in commands[restore:]), "rollback cut short"
    if point == "backup":  # the signal came before the matrix: no scenario was rendered
        assert not any("boxtool.py render" in c for c in commands), commands
    assert "safety backup removed: " in run.output
    assert archives(box) == []
    assert_proven_and_clean(run, box, before)


@pytest.mark.usefixtures("short_lock_grace")
def test_a_link_dropped_mid_rollback_is_dirty_keeps_the_archive_and_recover_puts_it_back(
    make_stack_box: Callable[..., Box], sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    box = make_stack_box()
    server = sshd_factory()
    contract = tmp_path / "failing_contract.py"
    contract.write_text(FAILING_CHECK)
    flags = [*ssh_args(server, box, tmp_path / "inventory"), "--matrix", str(contract)]
    before = config_and_secret_hashes(box)
    started, go = hold_in_flight(box, "restore")
    out = tmp_path / "dropped"
    proc = start_gate(*flags, "--safety-backup", "--scenario", "local-defaults", out=out)
    try:
        wait_for("the rollback's restore in flight", started.exists, bool, timeout=180)
        assert kill_sessions(server), "no sshd session to kill"
        let_go(go)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = GateRun(code, (tmp_path / "dropped-console.txt").read_text(), out)

    assert run.code == 4, run.output
    (archive,) = archives(box)
    assert f"archive KEPT at {archive}" in run.output
    assert "restore proven" not in run.output
    assert gate_state(box) == "dirty"

    recovered = run_gate(*flags, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 1, recovered.output  # the contract's wrong check, not dirty
    assert f"safety backup removed: {archive}" in recovered.output
    assert archives(box) == []
    assert_proven_and_clean(recovered, box, before)
