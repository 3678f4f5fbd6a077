"""Real kvfront boxes (examples/kvfront) for gate's integration tests.

The box itself is driven by the kvfront stack's own test helpers (tests/daemons/kvbox.py):
they take the *name* of a secret, never its value, so no assertion message can show one.
What this module adds is what gating needs: the repo's kvfront contract, a factory that
installs, applies and always brings boxes down, and the on-disk meaning of "restored".
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Appended, not prepended: tests/daemons has a conftest.py of its own, and `conftest` must
# keep resolving to this folder's.
if str(REPO / "tests" / "daemons") not in sys.path:
    sys.path.append(str(REPO / "tests" / "daemons"))

from kvbox import Box, install, kill_leftovers, wait_for  # noqa: E402

__all__ = ["CONTRACT", "Box", "KvBoxes", "kv_hashes", "leaked", "secret_values", "wait_for"]

CONTRACT = REPO / "examples" / "kvfront" / "matrix.py"
NEEDED = ("nginx", "redis-server", "redis-cli", "webdis", "openssl")
SECRET_KEYS = ("REDIS_PASSWORD", "ADMIN_TOKEN")


def kv_hashes(box: Box) -> dict[str, str]:
    """What "restored" means on disk: config.json, .env, secrets/* and every file apply
    renders under conf/ (they hold the secrets), by sha256."""
    paths = [box.path / "config.json", box.path / ".env"]
    paths += sorted((box.path / "secrets").glob("*")) + sorted((box.path / "conf").glob("*"))
    return {
        str(p.relative_to(box.path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in paths
        if p.is_file()
    }


def secret_values(box: Box) -> dict[str, str]:
    """The box's secrets, read from its .env, for canary searches only (never printed)."""
    lines = (box.path / ".env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    found = {key: env.get(key, "") for key in SECRET_KEYS}
    # A canary that is empty or short would "appear" everywhere or nowhere by accident.
    assert all(len(v) >= 16 for v in found.values()), "precondition: .env holds both secrets"
    return found


def leaked(box: Box, text: str) -> list[str]:
    """The names (never values) of the box's secrets that occur in `text`."""
    return [key for key, value in secret_values(box).items() if value in text]


class KvBoxes:
    """Installs, applies and waits healthy; close() brings every box down and sweeps it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.boxes: list[Box] = []

    def make(self, name: str = "kv", **changes: dict[str, object]) -> Box:
        missing = [b for b in NEEDED if not shutil.which(b, path="/usr/sbin:/usr/bin:/sbin:/bin")]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: run `make sysdeps`", pytrace=False)
        box = Box(self.root / name)
        self.boxes.append(box)
        proc = install(box.path)
        assert proc.returncode == 0, proc.stderr
        if changes:
            box.edit(**changes)
        applied = box.ctl("apply", "-y")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        box.wait_healthy(timeout=30)
        return box

    def close(self) -> None:
        for box in self.boxes:
            if (box.path / "kvctl").exists():
                box.ctl("down")
            kill_leftovers(box.path)
