"""The box's secrets: `.env` (only secrets, KEY=value, 0600) and the front's TLS pair.

Each is minted when missing and never rotated: apply keeps every value it finds.
"""

from __future__ import annotations

import os
import re
import secrets as pysecrets
import shutil
import subprocess
from pathlib import Path

from kvlib.config import ConfigError

# REDIS_PASSWORD: redis `requirepass` (and the replica's `masterauth`, webdis' `redis_auth`).
# ADMIN_TOKEN: the bearer token of the front's /admin/ API (nginx map file).
SECRET_KEYS = ("REDIS_PASSWORD", "ADMIN_TOKEN")
# Values are written into redis.conf, webdis.json and an nginx map: no quotes, spaces or `$`.
VALUE = re.compile(r"[A-Za-z0-9._~+/=-]{16,256}")
CERT = "front.crt"
KEY = "front.key"


def read_env(box: Path) -> dict[str, str]:
    """KEY=value pairs of BOX/.env ({} when absent); comments and blank lines are skipped."""
    path = box / ".env"
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(".env: not UTF-8 text") from None
    env = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value
    return env


def check_env(env: dict[str, str]) -> None:
    """Refuse a present but unusable secret (never naming its value)."""
    for key in SECRET_KEYS:
        if key not in env:
            continue
        if env[key] == "":
            raise ConfigError(f".env: {key} is empty (delete the line and apply mints one)")
        if not VALUE.fullmatch(env[key]):
            raise ConfigError(
                f".env: {key} must be 16..256 characters of A-Z a-z 0-9 . _ ~ + / = -"
            )


def ensure_env(box: Path) -> dict[str, str]:
    """Append a freshly minted value for every missing secret; existing lines stay as they are."""
    path = box / ".env"
    env = read_env(box)
    missing = [k for k in SECRET_KEYS if k not in env]
    if not missing:
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return env
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    for key in missing:
        env[key] = pysecrets.token_urlsafe(32)
        text += f"{key}={env[key]}\n"
    write_private(path, text)
    return env


def write_private(path: Path, text: str | bytes) -> bool:
    """Write atomically with mode 0600, only when the bytes differ; True when written."""
    data = text.encode() if isinstance(text, str) else text
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def secrets_dir(box: Path) -> Path:
    path = box / "secrets"
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_cert(box: Path) -> None:
    """Mint the front's self-signed pair (P-256, for 127.0.0.1 and localhost) unless present."""
    folder = secrets_dir(box)
    if (folder / CERT).exists() and (folder / KEY).exists():
        return
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("openssl not found (apt-get install openssl)")
    tmp_key, tmp_crt = folder / f".{KEY}.tmp", folder / f".{CERT}.tmp"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "3650", "-subj", "/CN=kvfront",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(tmp_key), "-out", str(tmp_crt)],
        check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30,
    )  # fmt: skip
    for tmp in (tmp_key, tmp_crt):
        tmp.chmod(0o600)
    os.replace(tmp_key, folder / KEY)
    os.replace(tmp_crt, folder / CERT)
