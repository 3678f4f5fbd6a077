"""Write a run's rendered views next to its artifacts: report.html (and summary.md).

Both are pure functions of the run dir, so `invoke report DIR` regenerates them for a run
fetched back from a detached run or written by an older gate.
"""

from __future__ import annotations

import os
from pathlib import Path

from gate.report import html
from gate.report.html import Redact
from gate.report.rundir import REPORT, load


def write_private(path: Path, text: str) -> Path:
    """0600, like every artifact: the page describes a box that holds real keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_report(run_dir: Path, redact: Redact) -> Path:
    """report.html in `run_dir`, rendered from the artifacts there."""
    run = load(run_dir)
    return write_private(run_dir / REPORT, html.render(run, redact))
