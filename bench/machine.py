"""What every bench prints above its figures: when, on what, and how busy the machine was."""

from __future__ import annotations

import datetime
import os
import platform


def stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> str:
    """Cores, architecture, Python, kernel and the load average at this moment (a noisy
    machine shows here: compare ratios within one run rather than figures across runs)."""
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load average unknown"
    return (
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, {load}"
    )
