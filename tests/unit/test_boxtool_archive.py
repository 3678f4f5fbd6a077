"""boxtool archive on real files: what --safety-backup verifies on the box, read-only."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gate import boxtool

TOKEN = "canary-token-5f2e9a01c7"
WANTED = {"roots": [".", "backups"], "holds": ["config.json", ".env", "secrets"]}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config.json").write_text("{}\n")
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "node.key").write_text("key\n")
    (tmp_path / "backups").mkdir()
    spec = {"env_file": ".env", "config_file": "config.json", "config_format": "json",
            "env_keys": ["*_TOKEN"], "files": [], "config_paths": [], "in_use": []}  # fmt: skip
    (tmp_path / ".gate").mkdir()
    (tmp_path / ".gate" / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATE_SPEC", str(tmp_path / ".gate" / "spec.json"))
    return tmp_path


def tar(path: Path, *names: str) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name in names:
            archive.add(name, arcname=f"./{name}" if name == ".env" else name)
    return path


def listing() -> list[tuple[str, float]]:
    found = [p for p in Path(".").rglob("*") if p.parts[0] != ".gate"]
    return sorted((str(p), p.lstat().st_mtime) for p in found)


def facts(capsys: pytest.CaptureFixture[str], path: str, wanted: Any = WANTED) -> Any:
    before = listing()
    assert boxtool.main(["archive", path, json.dumps(wanted)]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert listing() == before, "archive wrote something outside .gate/"
    return json.loads(out)


def test_a_complete_tar_gz_in_the_backup_dir_lacks_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tar(stack / "backups" / "b.tar.gz", "config.json", ".env", "secrets")
    found = facts(capsys, str(stack / "backups" / "b.tar.gz"))
    assert (found["kind"], found["format"], found["lacks"]) == ("file", "tar", [])
    assert found["inside"] == [".", "backups"]
    assert found["members"] == 3


def test_a_zip_without_the_env_file_lacks_it(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with zipfile.ZipFile(stack / "backups" / "b.zip", "w") as archive:
        archive.write("config.json")
        archive.write("secrets/node.key")
    found = facts(capsys, "backups/b.zip")
    assert (found["format"], found["lacks"]) == ("zip", [".env"])


def test_a_link_a_non_archive_and_a_missing_path_are_said(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tar(stack / "backups" / "b.tar.gz", "config.json", ".env")
    os.symlink(real, stack / "backups" / "latest.tar.gz")
    assert facts(capsys, "backups/latest.tar.gz")["kind"] == "link"
    assert "not a readable" in facts(capsys, "config.json")["error"]
    assert facts(capsys, "backups/none.tar.gz")["kind"] == "missing"


def test_an_archive_outside_the_roots_is_inside_none(
    stack: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tar(tmp_path_factory.mktemp("other") / "b.tar.gz", "config.json", ".env")
    assert facts(capsys, str(elsewhere))["inside"] == []
    os.symlink(elsewhere.parent, stack / "linked")  # a dir link out of the stack dir
    assert facts(capsys, "linked/b.tar.gz")["inside"] == []
