"""Secrets a box owns: .env tokens, secrets/node.key and the dashboard's self-signed cert.

Minted once when missing and never rotated: rotating them would silently lock out every client
that holds the old value. An existing key is kept even when its value is empty (the proxy then
refuses to start, which is the point of its fail-closed check).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from pathlib import Path

from stacklib.config import SECRET_KEYS


def mint_missing(env: dict[str, str], rotate: tuple[str, ...] = ()) -> list[str]:
    """Add a fresh token for every absent secret key (and for keys in `rotate`); return names."""
    minted = []
    for key in SECRET_KEYS:
        if key not in env or key in rotate:
            env[key] = secrets.token_urlsafe(24)
            minted.append(key)
    return minted


def secrets_dir(box: Path) -> Path:
    """BOX/secrets with mode 0700."""
    path = box / "secrets"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def ensure_node_key(box: Path) -> bool:
    """Mint secrets/node.key once (the node's identity); True when it was created now."""
    key = secrets_dir(box) / "node.key"
    if key.exists():
        return False
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return True


def ensure_dashboard_cert(box: Path) -> bool:
    """Mint a self-signed cert for 127.0.0.1 with openssl once; True when created now."""
    sdir = secrets_dir(box)
    crt, key = sdir / "dashboard.crt", sdir / "dashboard.key"
    if crt.exists() and key.exists():
        return False
    cmd = [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout", str(key), "-out", str(crt),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"openssl could not mint the dashboard certificate: {proc.stderr[-200:]}"
        )
    os.chmod(key, 0o600)
    os.chmod(crt, 0o600)
    return True


def digest(value: str | bytes) -> str:
    """A short one-way digest, so settings hashes notice secret changes without holding them."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:16]
