"""`invoke gate --safety-backup` against a real sample-stack box, locally and over sshd.

With the matrix (one scenario) the real `stackctl backup` is verified on the box (a regular
tar.gz in backups/ holding config.json and .env) and removed when the run passes. Then the
box's own copy of stacklib/backup.py is patched to leave the env file out (the defect the
issue names): the run refuses with exit 2, says why in one line, runs no scenario, and the
box is left as it was (config, env, secrets, the running services and their pids).
A run that fails rolls back from the archive on the real box; with the box's restore
broken the rollback fails: exit 4, the archive kept, the stack brought up anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import FAILING_CHECK, Box, config_and_secret_hashes, run_gate

pytestmark = pytest.mark.slow

SCENARIO = ("--scenario", "local-defaults")


def test_a_verified_backup_passes_and_is_removed_and_one_without_env_is_refused(
    make_stack_box: Callable[..., Box],
    via: Callable[[Box], list[str]],
    tmp_path: Path,
) -> None:
    box = make_stack_box()
    backups = box.path / "backups"
    before = sorted(backups.iterdir()) if backups.exists() else []

    passed = run_gate(*via(box), "--safety-backup", *SCENARIO, out=tmp_path / "green")
    assert passed.code == 0, passed.output
    assert passed.verdict("safety-backup: archive verified") == "pass"
    assert "restore proven" in passed.output
    assert "safety backup removed: " in passed.output
    after = sorted(backups.iterdir()) if backups.exists() else []
    assert after == before, "the archive was left behind"
    (backup,) = [e for e in passed.events if e["command"].endswith("stackctl backup")]
    assert backup["kind"] == "mutate", backup

    source = box.path / "stacklib" / "backup.py"
    text = source.read_text()
    omitted = text.replace('        tar.add(box / ".env", arcname=".env")\n', "")
    assert omitted != text, "the patch found nothing to remove"
    source.write_text(omitted)
    hashes, pids = config_and_secret_hashes(box), box.pids()

    refused = run_gate(*via(box), "--safety-backup", *SCENARIO, out=tmp_path / "red")
    assert refused.code == 2, refused.output
    (line,) = [ln for ln in refused.output.splitlines() if "destructive phases refused" in ln]
    assert "lacks .env" in line, line
    assert refused.verdict("safety-backup: archive verified") == "fail"
    assert not any(c["scenario"] == "local-defaults" for c in refused.summary["checks"])
    assert "restore proven" in refused.output
    assert config_and_secret_hashes(box) == hashes
    assert box.pids() == pids
    code, status = box.status()
    assert code == 0, status


def test_a_failed_run_rolls_back_from_the_archive_and_a_failing_restore_keeps_it(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    """A contract with one check that always fails: the run fails (exit 1), so gate rolls
    back (down, restore ARCHIVE, up), proves config bytes and every secret category, then
    restores as ever and removes the archive. With the box's restore broken the rollback
    fails: exit 4, the archive kept and named, the stack brought up anyway."""
    box = make_stack_box()
    contract = tmp_path / "failing_contract.py"
    contract.write_text(FAILING_CHECK)
    flags = ["--local", "--dir", str(box.path), "--matrix", str(contract), "--safety-backup"]
    hashes = config_and_secret_hashes(box)

    failed = run_gate(*flags, *SCENARIO, out=tmp_path / "rolled")
    assert failed.code == 1, failed.output
    for category in ("env", "files"):
        assert failed.verdict(f"rollback: secrets ({category}) equal the baseline") == "pass"
    assert failed.verdict("rollback: config bytes equal the baseline") == "pass"
    commands = [e["command"] for e in failed.events]
    assert any(c.endswith("stackctl down") for c in commands), commands
    assert any(" restore " in c and "backups/" in c for c in commands), commands
    assert "restore proven" in failed.output
    assert "safety backup removed: " in failed.output
    assert config_and_secret_hashes(box) == hashes
    assert list((box.path / "backups").iterdir()) == []

    source = box.path / "stacklib" / "backup.py"
    source.write_text(
        source.read_text().replace(
            "def restore(box: Path, archive: Path) -> None:\n",
            "def restore(box: Path, archive: Path) -> None:\n"
            "    raise RuntimeError('restore broken by the test')\n",
        )
    )
    dirty = run_gate(*flags, *SCENARIO, out=tmp_path / "dirty")
    assert dirty.code == 4, dirty.output
    (kept,) = list((box.path / "backups").iterdir())
    assert f"archive KEPT at {kept}" in dirty.output
    box.wait_healthy(timeout=60)  # brought up anyway: it settles on its own
    assert config_and_secret_hashes(box) == hashes
    recovered = run_gate(*flags[:5], "--recover", out=tmp_path / "rec")
    assert recovered.code == 1, recovered.output  # the wrong check fails there too, not dirty
    assert "restore proven" in recovered.output
