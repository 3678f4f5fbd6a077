"""Find (and end) a box's daemons by what the kernel says about them, not by a pid file.

A process belongs to BOX when it is one of the stack's daemon binaries and either its
command line names a path inside BOX (the nginx master, webdis, redis through its
proc-title-template) or its working directory is inside BOX (nginx workers, whose title names
no path), or when it is the supervisord started with BOX's supervisord.conf. Nothing else is
ever matched: a shell or an editor open on the box is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

# /proc/PID/exe names (redis-server is a Debian symlink to redis-check-rdb)
DAEMON_NAMES = {"nginx", "redis-server", "redis-check-rdb", "webdis"}


def box_processes(box: Path) -> list[int]:
    marker = str(box)
    supd_conf = str(box / "run" / "supervisord.conf")
    mine = {os.getpid(), os.getppid()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        words = args.replace("\0", " ").split()
        names_box = any(_inside(w, marker) for w in words)
        if _exe_name(entry) in DAEMON_NAMES:
            if names_box or _inside(_cwd(entry), marker):
                found.append(int(entry.name))
        elif "supervisor.supervisord" in words and supd_conf in words:
            found.append(int(entry.name))
    return found


def kill_box_processes(box: Path) -> list[int]:
    """SIGKILL every process of the box; returns their pids."""
    pids = box_processes(box)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _exe_name(entry: Path) -> str:
    try:
        return os.path.basename(os.readlink(entry / "exe"))
    except OSError:
        return ""


def _cwd(entry: Path) -> str:
    try:
        return os.readlink(entry / "cwd")
    except OSError:
        return ""


def _inside(path: str, marker: str) -> bool:
    return path == marker or path.startswith(marker + "/")
