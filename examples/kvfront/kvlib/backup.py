"""`kvctl backup` / `kvctl restore`: config.json, .env and secrets/ in one tar.gz.

Restore checks the whole archive before it writes anything, and does not apply.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from pathlib import Path

from kvlib import secrets
from kvlib.config import ConfigError, validate

TOP = ("config.json", ".env")


def backup(box: Path) -> tuple[Path, int]:
    """Write backups/kvfront-YYYYmmdd-HHMMSS.tar.gz (0600); (path, number of files)."""
    folder = box / "backups"
    folder.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = folder / f"kvfront-{stamp}.tar.gz", 1
    while path.exists():
        path, n = folder / f"kvfront-{stamp}-{n}.tar.gz", n + 1
    names = [name for name in TOP if (box / name).is_file()]
    sec = box / "secrets"
    if sec.is_dir():
        names += [f"secrets/{p.name}" for p in sorted(sec.iterdir()) if p.is_file()]
    tmp = folder / f".{path.name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name in names:
            tar.add(box / name, arcname=name, recursive=False)
    os.replace(tmp, path)
    return path, len(names)


def read_archive(path: Path) -> dict[str, bytes]:
    """Every member's bytes, after checking the archive is one of ours; ConfigError if not."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for info in tar:
                if info.name == "secrets" and info.isdir():
                    continue
                if not _ours(info):
                    raise ConfigError(f"{path}: unexpected member {info.name!r}")
                data = tar.extractfile(info)
                members[info.name] = data.read() if data else b""
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable tar.gz archive ({type(exc).__name__})") from None
    for name in TOP:
        if name not in members:
            raise ConfigError(f"{path}: {name} missing from the archive")
    try:
        validate(json.loads(members["config.json"]))
    except ValueError:
        raise ConfigError(f"{path}: config.json in the archive is not valid JSON") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    env = {}
    for line in members[".env"].decode(errors="replace").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip()] = value
    secrets.check_env(env)
    return members


def _ours(info: tarfile.TarInfo) -> bool:
    """config.json, .env or secrets/NAME, as regular files."""
    name = info.name
    secret = name.startswith("secrets/") and name[8:] not in ("", ".", "..") and "/" not in name[8:]
    return info.isfile() and (name in TOP or secret)


def restore(box: Path, archive: Path) -> int:
    """Put the archive's files back (secrets/ becomes exactly the archive's); files written."""
    members = read_archive(archive)
    secrets.write_private(box / "config.json", members["config.json"])
    secrets.write_private(box / ".env", members[".env"])
    folder = secrets.secrets_dir(box)
    wanted = {name[8:] for name in members if name.startswith("secrets/")}
    for old in folder.iterdir():
        if old.name not in wanted:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for name in wanted:
        secrets.write_private(folder / name, members[f"secrets/{name}"])
    return len(members)
