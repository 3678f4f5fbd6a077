"""The commands that read runs and touch no box: `invoke report RESULTS_DIR` (and `gate
report RESULTS_DIR`) renders report.html and summary.md again from a run's artifacts (a run
fetched back from a detached run, or written by an older gate); `--compare RUN_A --compare
RUN_B` prints what changed between two runs. A dir that is not a run: one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from gate.errors import ExitCode, UsageError
from gate.redact import Redactor
from gate.report.compare import as_text, compare
from gate.report.rundir import load
from gate.report.write import write_views


def regenerate(results_dir: str, stream: TextIO | None = None) -> int:
    out = stream or sys.stdout
    if not results_dir:
        print("gate: report needs a results dir: invoke report results/RUN-ID", file=sys.stderr)
        return ExitCode.USAGE
    try:
        written = write_views(Path(results_dir), Redactor())
    except UsageError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for path in written:
        print(f"wrote {path}", file=out)
    return ExitCode.PASSED


def compare_runs(runs: tuple[str, ...], stream: TextIO) -> int:
    """What changed from the first run to the second; UsageError unless exactly two runs."""
    if len(runs) != 2:
        raise UsageError(
            f"--compare takes two runs (--compare RUN_A --compare RUN_B), got {len(runs)}"
        )
    before, after = (load(Path(run)) for run in runs)
    stream.write(Redactor()(as_text(compare(before, after))))
    return ExitCode.PASSED
