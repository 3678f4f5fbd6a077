"""What ships to the box: a wheel of this gate plus a wheelhouse of its dependencies, cached
on the runner so the next --detach of the same gate builds nothing.

The key is gate's version plus a hash of its source (every gate/**/*.py and
pyproject.toml), so a checkout whose code changed under the same version never reuses a
stale wheel or box venv. The wheels are built for the runner's Python: the box's python3
must be the same minor version (wheels with C parts are per Python; checked on the box).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import gate
from gate.errors import GateError, UsageError

COMPLETE = ".complete"


class ShipFailed(GateError):
    """gate could not be built or installed for the box: nothing ran there (exit 3)."""

    exit_code = 3


@dataclass(frozen=True)
class Wheelhouse:
    """A finished wheelhouse on the runner: its dir, the wheels, and whether it was reused."""

    path: Path
    key: str
    reused: bool

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))

    def tar(self) -> bytes:
        """The wheels as one uncompressed tar (they are zip files already)."""
        buffer = BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for wheel in self.wheels:
                archive.add(wheel, arcname=wheel.name)
        return buffer.getvalue()


def source_root() -> Path:
    """The checkout gate runs from (the folder holding pyproject.toml and gate/)."""
    root = Path(gate.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise UsageError(
            f"--detach builds gate for the box from its source checkout, and {root} is not "
            "one: run gate from its repository (`make bootstrap`)"
        )
    return root


def source_key(root: Path) -> str:
    """`<version>-<12 hex>`: the version, and the hash of every file the wheel is made of."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "gate").rglob("*.py"))]
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{gate.__version__}-{digest.hexdigest()[:12]}"


def python_tag() -> str:
    return "py{}.{}".format(*sys.version_info[:2])


def cache_dir() -> Path:
    """GATE_CACHE_DIR, else $XDG_CACHE_HOME/gate, else ~/.cache/gate."""
    if os.environ.get("GATE_CACHE_DIR"):
        return Path(os.environ["GATE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "gate"


def wheelhouse(root: Path, key: str) -> Wheelhouse:
    """The cached wheelhouse for this gate, built once (`pip wheel ROOT -w DIR`)."""
    dest = cache_dir() / "wheelhouse" / f"{key}-{python_tag()}"
    if (dest / COMPLETE).is_file():
        return Wheelhouse(dest, key, reused=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", str(root), "-w", str(tmp)]
    done = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0 or not list(tmp.glob("gate-*.whl")):
        shutil.rmtree(tmp, ignore_errors=True)
        said = [line for line in done.stderr.splitlines() if "is ignored" not in line]
        raise ShipFailed(
            f"cannot build gate's wheelhouse (`pip wheel {root} -w DIR`, exit "
            f"{done.returncode}): {said[-1] if said else 'no gate wheel came out'}"
        )
    (tmp / COMPLETE).write_text(key + "\n")
    shutil.rmtree(dest, ignore_errors=True)  # an incomplete one (a killed build)
    try:
        tmp.rename(dest)
    except OSError:  # another runner finished the same build first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / COMPLETE).is_file():
            raise
    return Wheelhouse(dest, key, reused=False)
