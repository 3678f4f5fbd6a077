"""Write a run's rendered views next to its artifacts: report.html and summary.md.

Both are pure functions of the run dir, so `invoke report DIR` regenerates them for a run
fetched back from a detached run or written by an older gate. summary.md is also copied to
`--summary-md FILE` and appended to $GITHUB_STEP_SUMMARY when CI sets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gate.report import html, markdown
from gate.report.compare import compare, last_passing
from gate.report.html import Redact
from gate.report.rundir import REPORT, SUMMARY_MD, RunDir, load

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def write_private(path: Path, text: str, *, append: bool = False) -> Path:
    """0600 when created, like every artifact: the page describes a box that holds keys."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "a" if append else "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_report(run_dir: Path, redact: Redact) -> Path:
    """report.html in `run_dir`, rendered from the artifacts there."""
    run = load(run_dir)
    previous = last_passing(run)
    since = compare(previous, run) if previous is not None else None
    page = html.render(run, redact, [html.comparison(since, redact)])
    return write_private(run_dir / REPORT, page)


def write_views(
    run_dir: Path,
    redact: Redact,
    summary_md: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """report.html and summary.md in the run dir; summary.md also to `summary_md` and
    appended to $GITHUB_STEP_SUMMARY (from `env`) when set. The paths written."""
    written = [write_report(run_dir, redact)]
    run: RunDir = load(run_dir)
    text = markdown.render(run, redact)
    written.append(write_private(run_dir / SUMMARY_MD, text))
    if summary_md is not None:
        summary_md.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_private(summary_md, text))
    step = (env or {}).get(STEP_SUMMARY)
    if step:
        written.append(write_private(Path(step), text + "\n", append=True))
    return written
