"""`invoke report RESULTS_DIR` (and `gate report RESULTS_DIR`): report.html and summary.md
rendered again from a run's artifacts, e.g. for a run fetched back from a detached run or
written by an older gate. Touches no box; a dir that is not a run is one line, exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from gate.errors import ExitCode, UsageError
from gate.redact import Redactor
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
