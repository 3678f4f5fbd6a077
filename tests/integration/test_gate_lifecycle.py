"""`invoke gate --lifecycle` against real boxes: the sample stack locally and over sshd, red
through two of the box's own defect switches, interrupted in the middle, and kvfront.

Green: the real `stackctl restart` gives every supervisord program a new pid; the one-
service change (node.lan_access) recreates the node alone and is reverted byte for byte;
the real backup/restore round trip is shown to have work to do and puts the bytes back.
Red, in one run: `restart_on_every_apply` (an apply also restarts pool: the change's scope
names it) and `restore_does_nothing` (the round trip's bytes stay diverged). After every
run the box is restored and proven: config, env and secret files by hash, status healthy,
no archive left in backups/.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import (
    Box,
    GateRun,
    Running,
    assert_restore_proven,
    assert_restored,
    config_and_secret_hashes,
    run_gate,
    wait_for,
)
from kvfront_box import CONTRACT as KV_CONTRACT
from kvfront_box import Box as KvBox
from kvfront_box import KvBoxes, kv_hashes, leaked

pytestmark = pytest.mark.slow

FLAGS = ("--lifecycle", "--safety-backup", "--scenario", "local-defaults")
RESTARTED = "lifecycle restart: every running service restarted (new pid or start time)"
SCOPE = "lifecycle change: scope: services outside the change kept their pids"
REVERTED = "lifecycle revert: config bytes identical"
DIVERGED = "lifecycle round trip: the box diverged from the archive"
BYTES_BACK = "lifecycle round trip: config bytes equal the archive's"
SECRETS_BACK = "lifecycle round trip: secrets equal the archive's"


def set_defects(box: Box, **switches: object) -> None:
    (box.path / "defects.json").write_text(json.dumps(switches))


def lifecycle_verdicts(run: GateRun) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "lifecycle"}


def archives(box: Box | KvBox) -> list[Path]:
    folder = box.path / "backups"
    return sorted(folder.iterdir()) if folder.exists() else []


def assert_put_back(box: Box, run: GateRun, hashes: dict[str, str]) -> None:
    """Restored and proven: the files by hash, state clean, healthy, no archive left."""
    assert "restore proven" in run.output, run.output
    assert_restore_proven(run)
    assert_restored(box, hashes)
    assert archives(box) == [], "an archive was left in backups/"
    code, status = box.status()
    assert code == 0, status


def test_lifecycle_is_green_on_the_sample_and_the_box_is_put_back(
    make_stack_box: Callable[..., Box], via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    box = make_stack_box()
    hashes, pids = config_and_secret_hashes(box), box.pids()
    run = run_gate(*via(box), *FLAGS, out=tmp_path / "green", timeout=600)
    assert run.code == 0, run.output
    found = lifecycle_verdicts(run)
    assert {n: v for n, v in found.items() if v not in ("pass", "skip")} == {}, found
    for name in (RESTARTED, SCOPE, REVERTED, DIVERGED, BYTES_BACK, SECRETS_BACK):
        assert found[name] == "pass", name
    assert "node recreated" in run.summary["checks"][_index(run, SCOPE)]["evidence"]
    assert found["lifecycle failover: node stopped: recovered within 60s"] == "pass", found
    assert [f["phase"] for f in run.summary["faults"]] == ["lifecycle"]
    commands = [e["command"] for e in run.events]
    assert any(c.endswith("stackctl restart") for c in commands), commands
    assert any(" restore " in c and "backups/" in c for c in commands), commands
    assert "lifecycle: round-trip archive removed: " in run.output
    assert_put_back(box, run, hashes)
    assert box.pids() != pids, "precondition of the restart's evidence: pids are real"
    secrets = [v for k, v in box.env().items() if k.endswith(("_TOKEN", "_PASSWORD"))]
    assert len(secrets) >= 3 and all(len(v) >= 16 for v in secrets)
    written = run.everything_written()
    assert not [v for v in secrets if v in written], "a secret reached gate's output"


def _index(run: GateRun, name: str) -> int:
    return next(i for i, c in enumerate(run.summary["checks"]) if c["name"] == name)


def test_two_defects_are_each_caught_by_their_own_record(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    """Two of the box's defect switches in one run (each alone is red on the fake, and the
    green run above is their positive control): `restart_on_every_apply` (the one-service
    change recreates pool too: the scope names it) and `restore_does_nothing` (the round
    trip, shown to have work to do, keeps the diverged bytes)."""
    box = make_stack_box()
    set_defects(box, restart_on_every_apply=True, restore_does_nothing=True)
    hashes = config_and_secret_hashes(box)
    flags = ["--local", "--dir", str(box.path), *FLAGS]
    run = run_gate(*flags, out=tmp_path / "red", timeout=600)
    assert run.code == 1, run.output
    scope = run.summary["checks"][_index(run, SCOPE)]
    assert scope["verdict"] == "fail"
    assert scope["observed"] == "recreated or stopped: pool", scope
    found = lifecycle_verdicts(run)
    assert found[RESTARTED] == "pass"  # the restart itself was fine
    assert found[DIVERGED] == "pass", "the divergence must be shown before the restore"
    assert found[BYTES_BACK] == "fail", found
    assert found[SECRETS_BACK] == "pass"  # nothing diverged there: the bytes are the proof
    assert found["lifecycle round trip: baseline config applied again"] == "pass"
    assert_put_back(box, run, hashes)


HELD_DOWN = (
    '    print("Stopped")\n',
    '    (box / "run" / "down-held").write_text("stopped")\n'
    '    __import__("time").sleep(3)  # the test signals gate while down runs\n'
    '    print("Stopped")\n',
)


def test_a_sigint_during_the_round_trips_down_restores_and_proves(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    """The box's own `stackctl down` is held for 3 s once the stack is down (a patch of its
    copy of stacklib/cli.py): SIGINT lands there, so the round trip's restore is never sent;
    the repair opened before `down` (`up`) is mended, the archive removed, the box rolled
    back, restored and proven; exit 130."""
    box = make_stack_box()
    source = box.path / "stacklib" / "cli.py"
    text = source.read_text()
    assert text.count(HELD_DOWN[0]) == 1, "the patch point moved"
    source.write_text(text.replace(*HELD_DOWN))
    marker = box.path / "run" / "down-held"
    hashes = config_and_secret_hashes(box)
    running = Running(["--local", "--dir", str(box.path), *FLAGS], tmp_path / "sigint")
    try:
        wait_for("the round trip's down", marker.exists, bool, timeout=300, interval=0.05)
        running.signal(signal.SIGINT)
        run = running.finish(timeout=600)
    finally:
        running.stop()
    assert run.code == 130, run.output
    (safety,) = re.findall(r"safety backup verified: (\S+)", run.output)
    commands = [e["command"] for e in run.events]
    restores = [c for c in commands if " restore " in c and safety not in c]
    assert restores == [], "the round trip's restore was sent after the signal"
    assert run.verdict("repair: stack up after the round trip's down") == "pass"
    assert "lifecycle: round-trip archive removed: " in run.output
    assert_put_back(box, run, hashes)


@pytest.fixture
def make_kv_box(tmp_path: Path) -> Iterator[Callable[..., KvBox]]:
    boxes = KvBoxes(tmp_path)
    yield boxes.make
    boxes.close()


def test_lifecycle_is_green_on_kvfront(
    make_kv_box: Callable[..., KvBox], via: Callable[[KvBox], list[str]], tmp_path: Path
) -> None:
    """kvctl's restart, the front.tls change (the front alone recreated), and kvctl's
    backup/restore round trip; the canary secrets in no output."""
    box = make_kv_box()
    hashes = kv_hashes(box)
    flags = [*via(box), "--matrix", str(KV_CONTRACT), "--lifecycle", "--safety-backup"]
    run = run_gate(*flags, "--scenario", "tls-replica", out=tmp_path / "results", timeout=600)
    assert run.code == 0, run.output
    found = lifecycle_verdicts(run)
    assert {n: v for n, v in found.items() if v not in ("pass", "skip")} == {}, found
    for name in (RESTARTED, SCOPE, REVERTED, DIVERGED, BYTES_BACK, SECRETS_BACK):
        assert found[name] == "pass", name
    assert "lifecycle change: front.tls=true (touches front)" in run.output
    assert found["lifecycle failover: redis stopped: recovered within 30s"] == "pass", found
    assert "restore proven" in run.output
    after = kv_hashes(box)
    assert {p: h for p, h in after.items() if p in hashes} == hashes
    assert archives(box) == []
    assert not leaked(box, run.everything_written())
