"""`stackctl backup` / `restore`: config.json, .env and secrets/ in one tar.gz, mode 0600.

Restore checks the whole archive (members, types, a valid config.json) before it touches the
box, then swaps the files in; a refused restore changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from stacklib import config, defects


class RestoreRefused(Exception):
    """The archive is missing or malformed; nothing was touched."""


def backup(box: Path) -> Path:
    """Write backups/backup-<time>.tar.gz and return its path."""
    out_dir = box / "backups"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"backup-{stamp}.tar.gz"
    n = 1
    while path.exists():
        n += 1
        path = out_dir / f"backup-{stamp}-{n}.tar.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w:gz") as tar:
        tar.add(box / "config.json", arcname="config.json")
        tar.add(box / ".env", arcname=".env")
        if (box / "secrets").is_dir():
            tar.add(box / "secrets", arcname="secrets")
    return path


def _check_members(tar: tarfile.TarFile) -> None:
    """Only config.json, .env and plain files under secrets/; both top files required."""
    names = set()
    for member in tar.getmembers():
        name = member.name
        top_ok = name in ("config.json", ".env") and member.isfile()
        secret_ok = (name == "secrets" and member.isdir()) or (
            name.startswith("secrets/") and name.count("/") == 1 and member.isfile()
        )
        if not (top_ok or secret_ok) or ".." in name:
            raise RestoreRefused(f"unexpected member in archive: {name!r}")
        names.add(name)
    for required in ("config.json", ".env"):
        if required not in names:
            raise RestoreRefused(f"archive has no {required}")


def _read_archive(archive: Path, into: Path) -> None:
    """Validate and extract `archive` into the empty dir `into`."""
    if not archive.is_file():
        raise RestoreRefused(f"no such backup archive: {archive}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            _check_members(tar)
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise RestoreRefused(f"not a readable backup archive: {archive} ({exc})") from None
    try:
        config.validate(json.loads((into / "config.json").read_text(encoding="utf-8")))
    except (ValueError, config.ConfigError) as exc:
        raise RestoreRefused(f"archive holds an invalid config.json: {exc}") from None


def restore(box: Path, archive: Path) -> None:
    """Put config.json, .env and secrets/ back from a backup archive."""
    with tempfile.TemporaryDirectory(dir=box / "run", prefix="restore-") as tmp:
        staged = Path(tmp)
        _read_archive(archive, staged)
        if defects.load(box).get("restore_does_nothing"):
            return  # the defect: the archive is checked, then nothing is put back
        os.chmod(staged / ".env", 0o600)
        os.replace(staged / "config.json", box / "config.json")
        os.replace(staged / ".env", box / ".env")
        if (staged / "secrets").is_dir():
            old = box / "run" / "secrets.old"
            shutil.rmtree(old, ignore_errors=True)
            if (box / "secrets").exists():
                os.replace(box / "secrets", old)
            os.replace(staged / "secrets", box / "secrets")
            os.chmod(box / "secrets", 0o700)
            shutil.rmtree(old, ignore_errors=True)
