"""`invoke gate --readiness` against a real sample-stack box, locally and over a real sshd.

A freshly installed box is fit, and the run changes nothing; then the box is broken the way
an operator would break it (the node's RPC opened to every address, the env file made
world-readable, a backup archive as big as the free disk, an immutable backup dir) and
exactly those four items turn red, each with its fix, while the stack stays healthy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import MUTATING_VERBS, Box, GateRun, config_and_secret_hashes, run_gate

pytestmark = pytest.mark.slow

ITEMS = (
    "box: not left dirty by an earlier run",
    "readiness: healthy (status exit 0, every check green)",
    "readiness: secrets found for the baseline to fingerprint",
    "readiness: disk headroom for a backup",
    "readiness: .env mode 0600 or stricter",
    "readiness: secrets/node.key mode 0600 or stricter",
    "readiness: dashboard-port bound to loopback only",
    "readiness: node-rpc bound to loopback only",
    "readiness: backup dir backups writable",
    "readiness: tools on PATH",
)


def evidence(run: GateRun, name: str) -> str:
    (found,) = [c for c in run.summary["checks"] if c["name"] == name]
    return str(found["evidence"])


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make a dir immutable (chattr +i: not writable, even for root); undone at teardown."""
    if shutil.which("chattr") is None:
        pytest.skip("no chattr on this machine")
    made: list[Path] = []

    def make(path: Path) -> None:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"chattr +i refused here: {done.stderr.decode().strip()}")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_fresh_box_is_fit_and_each_broken_item_is_unfit_with_its_fix(
    make_stack_box: Callable[..., Box],
    via: Callable[[Box], list[str]],
    immutable: Callable[[Path], None],
    tmp_path: Path,
) -> None:
    box = make_stack_box()
    hashes, pids = config_and_secret_hashes(box), box.pids()
    backups = sorted((box.path / "backups").iterdir())

    fit = run_gate(*via(box), "--readiness", out=tmp_path / "fit")
    assert fit.code == 0, fit.output
    assert fit.verdicts() == dict.fromkeys(ITEMS, "pass"), fit.output
    assert "readiness: fit for gating" in fit.output
    assert "mutate" not in {e["kind"] for e in fit.events}
    for command in (e["command"] for e in fit.events if "stackctl" in e["command"]):
        assert not any(verb in f" {command} " for verb in MUTATING_VERBS), command
    assert config_and_secret_hashes(box) == hashes
    assert box.pids() == pids
    assert sorted((box.path / "backups").iterdir()) == backups

    box.edit(node={"lan_access": True})  # the node's RPC now listens on every address
    applied = box.ctl("apply", "-y")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    box.wait_healthy(timeout=60)
    (box.path / ".env").chmod(0o644)
    archive = box.path / "backups" / "backup-20990101-000000.tar.gz"
    space = os.statvfs(box.path / "backups")
    with archive.open("wb") as handle:  # sparse: as big as the free space, taking none of it
        handle.truncate(space.f_bavail * space.f_frsize)
    immutable(box.path / "backups")

    unfit = run_gate(*via(box), "--readiness", out=tmp_path / "unfit")
    assert unfit.code == 1, unfit.output
    failed = sorted(name for name, verdict in unfit.verdicts().items() if verdict == "fail")
    assert failed == [
        "readiness: .env mode 0600 or stricter",
        "readiness: backup dir backups writable",
        "readiness: disk headroom for a backup",
        "readiness: node-rpc bound to loopback only",
    ], unfit.output
    assert "NOT fit for gating: 4 item(s) to fix" in unfit.output
    assert evidence(unfit, "readiness: .env mode 0600 or stricter") == (
        ".env is mode 0644, readable beyond its owner: chmod 600 .env"
    )
    rpc = evidence(unfit, "readiness: node-rpc bound to loopback only")
    assert "listens on 0.0.0.0: bind it to 127.0.0.1 only" in rpc, rpc
    disk = evidence(unfit, "readiness: disk headroom for a backup")
    assert f"newest archive backups/{archive.name}" in disk, disk
    writable = evidence(unfit, "readiness: backup dir backups writable")
    assert writable.startswith("backups is not writable by the user gate logs in as"), writable
    assert unfit.verdict("readiness: healthy (status exit 0, every check green)") == "pass"
    assert "mutate" not in {e["kind"] for e in unfit.events}
    assert (box.path / ".env").stat().st_mode & 0o777 == 0o644, "readiness changed a mode"
    written = fit.everything_written() + unfit.everything_written()
    for key, value in box.env().items():
        if key.endswith(("_TOKEN", "_PASSWORD")):
            assert value not in written, f"{key}'s value left the box"
