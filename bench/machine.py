"""What every bench prints above its figures: when, on what, and how busy the machine was."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass, field


def load() -> str:
    """The 1, 5 and 15 minute load averages now."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Started:
    """Taken when a bench starts: its time and the load then; `machine()` adds the load at
    the end (a noisy machine shows here: compare ratios within one run, not across runs)."""

    stamp: str = field(default_factory=_now)
    load: str = field(default_factory=load)

    def machine(self) -> str:
        return (
            f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}; "
            f"load average {self.load} at the start, {load()} at the end"
        )
