"""CPU time of a process tree, from /proc: what gate's polls cost on the box.

Every command gate sends runs below one process on the box: the sshd serving the session
(over SSH) or the gate process itself (local). A command that ended was reaped by its
parent, so its CPU moved into the parent's `cutime`/`cstime`; a command still running
counts with its own `utime`/`stime`. Summing both over the live tree, before and after a
window, gives the CPU the tree spent in it, whatever ran and ended in between.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat this module reads (times in clock ticks)."""

    pid: int
    ppid: int
    own: int
    """utime + stime: the process itself."""
    reaped: int
    """cutime + cstime: its children that ended and were waited for."""


def parse_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line. The command name may hold spaces and parentheses,
    so the fields are counted from the last `)`."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # after `) `: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    #              utime stime cutime cstime ...
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return ProcStat(pid, ppid, utime + stime, cutime + cstime)


def tree_ticks(stats: Mapping[int, ProcStat], root: int, *, with_root_own: bool) -> int:
    """CPU ticks of `root`'s tree: every descendant's own and reaped ticks, the root's
    reaped ticks, and its own ticks only when `with_root_own` (the gate process measuring
    its local children leaves its own Python work out). 0 when the root is gone."""
    if root not in stats:
        return 0
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    ticks = stats[root].reaped + (stats[root].own if with_root_own else 0)
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        ticks += stats[pid].own + stats[pid].reaped
        pending.extend(children.get(pid, []))
    return ticks


def snapshot(proc: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat now; one that ends while being read is left out."""
    found: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        found[stat.pid] = stat
    return found


def tree_cpu_seconds(root: int, *, with_root_own: bool) -> float:
    """The CPU seconds `root`'s tree has used so far (see `tree_ticks`)."""
    return tree_ticks(snapshot(), root, with_root_own=with_root_own) / CLOCK_TICKS
