"""Each service's "I am ready" mark, which `stackctl status --wait` (status.wait) polls.

A service writes its pid to run/<name>.ready at the moment it logs its ready line. A mark
counts only while that pid is alive, so a mark left by the process a restart replaced is
stale by construction, with no clock to compare. The marks are a cheap hint; the verdict
is always status.collect's, run once every service is marked (and now and then anyway,
so a service that never marks only makes the wait slower, never wrong).
"""

from __future__ import annotations

import os
from pathlib import Path


def mark(box: Path, name: str) -> str:
    """Where `name`'s mark is (a str: the wait reads it fifty times a second)."""
    return os.path.join(box, "run", f"{name}.ready")


def announce(box: Path, name: str) -> None:
    """Mark `name` ready (atomically: a reader never sees half a pid)."""
    partial = f"{mark(box, name)}.{os.getpid()}"
    Path(partial).write_text(str(os.getpid()), encoding="utf-8")
    os.replace(partial, mark(box, name))


def announced(path: str) -> bool:
    """Whether the process that wrote the mark at `path` is still alive."""
    try:
        with open(path, "rb") as handle:
            os.kill(int(handle.read()), 0)
    except (OSError, ValueError):
        return False
    return True
