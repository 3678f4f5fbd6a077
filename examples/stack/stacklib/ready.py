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


def announce(box: Path, name: str) -> None:
    """Mark `name` ready (atomically: a reader never sees half a pid)."""
    mark = box / "run" / f"{name}.ready"
    partial = mark.with_name(f".{mark.name}.{os.getpid()}")
    partial.write_text(str(os.getpid()), encoding="utf-8")
    partial.replace(mark)


def announced(box: Path, name: str) -> bool:
    """Whether the process that marked `name` ready is still alive."""
    try:
        pid = int((box / "run" / f"{name}.ready").read_text(encoding="utf-8"))
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True
