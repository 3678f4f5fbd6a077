"""`make release` on a clone of this repo: a red gate blocks the build and the tag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO, Box

from gate.testing.sshd import write_inventory

pytestmark = pytest.mark.slow


def git(clone: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_red_gate_blocks_the_build_and_the_tag(stack_box: Box, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    write_inventory(clone / "inventory", "release-box", dir=str(stack_box.path))
    assert stack_box.ctl("stop", "worker-2").returncode == 0  # the box the release needs green
    stack_box.wait_exit(1)
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        # the repo's own venv, taken as up to date (-o): a release test must not reinstall it
        ["make", "-o", f"{venv}/.installed", f"VENV={venv}", "release", "RELEASE_TESTS=skip",
         "GATE_HOST=release-box", "GATE_ARGS=--local"],
        cwd=clone, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env={**os.environ, "CI": "true"},
    )  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert "--lifecycle --fault-injection --safety-backup --strict" in done.stdout
    assert "gate: failed (exit 1)" in done.stderr + done.stdout
    assert not (clone / "dist").exists(), "a red gate let the build run"
    assert git(clone, "tag", "--list") == "", "a red gate let the version be tagged"
