"""Read and write the box's `.env` (KEY=value lines, mode 0600) without losing unknown keys."""

from __future__ import annotations

import os
from pathlib import Path


def parse(text: str) -> dict[str, str]:
    """Parse KEY=value lines; blank lines and `#` comments are ignored."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        env[key.strip()] = value.strip()
    return env


def read(path: Path) -> dict[str, str]:
    """Return the .env as a dict; an absent file is an empty dict."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def format_env(env: dict[str, str]) -> str:
    """Render KEY=value lines in insertion order so rewrites stay byte-stable."""
    return "".join(f"{key}={value}\n" for key, value in env.items())


def write_private(path: Path, text: str) -> bool:
    """Atomically write `text` with mode 0600; skip (return False) when the bytes are equal.

    Skipping keeps mtimes and hashes stable across no-op applies.
    """
    try:
        if path.read_text(encoding="utf-8") == text:
            os.chmod(path, 0o600)
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True
