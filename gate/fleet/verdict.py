"""One verdict for a fleet: each box's exit code, the worst of them, the table: pure, no I/O.

Severity, worst first (docs/fleets.md):

    4 dirty > 130/143/129 interrupted (and any other code, e.g. a box's gate process
    killed by a signal) > 2 usage (a box refused at preflight: no stack dir, host key)
    > 3 inconclusive > 75 locked > 1 failed > 0 passed

A box left dirty needs a person at once; an interrupted fleet was stopped on purpose; a
box that cannot be gated needs its inventory or box fixed; an undecided box may pass on a
retry, a locked one surely will later; a failed box is a definite red. Each of them keeps
the fleet from passing, and the table shows every box whatever the fleet's code is.
Usage errors in the flags or the fleet itself (exit 2) are caught before any box starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gate.engine.ledger import Ledger
from gate.errors import ExitCode

SEVERITY: tuple[int, ...] = (
    ExitCode.DIRTY,
    ExitCode.SIGINT,
    ExitCode.SIGTERM,
    ExitCode.SIGHUP,
    ExitCode.USAGE,
    ExitCode.INCONCLUSIVE,
    ExitCode.LOCKED,
    ExitCode.FAILED,
    ExitCode.PASSED,
)
"""Exit codes, worst first; a code not listed ranks just below DIRTY."""

COUNTED = ("pass", "fail", "inconclusive", "skip")
FAILING_SHOWN = 10


def rank(code: int) -> float:
    """Higher is worse."""
    if code in SEVERITY:
        return float(len(SEVERITY) - SEVERITY.index(code))
    return len(SEVERITY) - 0.5  # just below DIRTY, above the interrupts


def worst(codes: Iterable[int]) -> int:
    """The fleet's exit code; a fleet that ran no box never passes."""
    listed = list(codes)
    if not listed:
        return ExitCode.FAILED
    return max(listed, key=rank)


def process_code(returncode: int) -> int:
    """A child's return code as a shell shows it: killed by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class BoxResult:
    """What one box's run ended with, read from its summary.json when it wrote one."""

    label: str
    entry: str
    exit_code: int
    duration_s: float
    results: str | None = None
    """The box's results/<fleet>/<box>/<run-id>/ dir; None when its run wrote none."""
    console: str | None = None
    verdict: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    run_id: str | None = None
    error: str | None = None
    failing: tuple[str, ...] = ()
    """Names of the checks that failed or were inconclusive (the first FAILING_SHOWN)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": self.label,
            "host": self.entry,
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "counts": dict(self.counts),
            "duration_s": round(self.duration_s, 3),
            "results": self.results,
            "console": self.console,
            "run_id": self.run_id,
            "error": self.error,
            "failing": list(self.failing),
        }


def box_result(
    label: str,
    entry: str,
    returncode: int,
    duration_s: float,
    summary: Mapping[str, Any] | None,
    error: str | None = None,
    results: str | None = None,
    console: str | None = None,
) -> BoxResult:
    """One box's row. Its exit code is the process's (it is what the box's run said);
    its words and counts come from its summary.json, or say it wrote none."""
    code = process_code(returncode)
    if summary is None:
        why = f"killed by signal {-returncode}" if returncode < 0 else f"exit {code}"
        error = error or f"no summary.json: its gate run ended ({why}) before writing one"
        return BoxResult(label, entry, code, duration_s, results, console,
                         verdict=Ledger.word(code), error=error)  # fmt: skip
    counts = summary.get("counts") or {}
    failing = tuple(
        (f"{c.get('scenario')}/" if c.get("scenario") else "") + str(c.get("name"))
        for c in summary.get("checks") or []
        if c.get("verdict") in ("fail", "inconclusive")
    )
    return BoxResult(
        label,
        entry,
        code,
        duration_s,
        results,
        console,
        verdict=str(summary.get("verdict") or Ledger.word(code)),
        counts={k: int(counts.get(k, 0)) for k in COUNTED},
        run_id=summary.get("run_id"),
        error=summary.get("error"),
        failing=failing[:FAILING_SHOWN],
    )


def fleet_summary(
    fleet_id: str, source: str, mode: str, boxes: Sequence[BoxResult], times: tuple[float, float]
) -> dict[str, Any]:
    """The fleet's summary.json: its verdict and exit code, and every box's row."""
    code = worst(b.exit_code for b in boxes)
    return {
        "fleet_run_id": fleet_id,
        "fleet": source,
        "mode": mode,
        "verdict": Ledger.word(code),
        "exit_code": code,
        "severity": list(SEVERITY),
        "started": times[0],
        "ended": times[1],
        "boxes": [b.as_dict() for b in boxes],
    }


HEADERS = ("box", "verdict", "exit", "pass", "fail", "inconcl.", "skip", "duration", "results")


def table_rows(boxes: Sequence[BoxResult]) -> list[tuple[str, ...]]:
    rows = []
    for box in boxes:
        counts = [str(box.counts.get(k, "-")) for k in COUNTED]
        rows.append((box.label, box.verdict, str(box.exit_code), *counts,
                     f"{box.duration_s:.1f}s", box.results or box.console or "-"))  # fmt: skip
    return rows


def table_lines(boxes: Sequence[BoxResult]) -> list[str]:
    """The per-box table for the console, plain aligned columns (CI logs keep it)."""
    rows = [HEADERS, *table_rows(boxes)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def markdown(summary: Mapping[str, Any], boxes: Sequence[BoxResult]) -> str:
    """summary.md for the fleet: the verdict, the table, what did not pass on which box."""
    lines = [
        f"## gate fleet: {summary['verdict']} (exit {summary['exit_code']})",
        "",
        f"{len(boxes)} boxes ({summary['fleet']}), mode {summary['mode']}, "
        f"fleet run `{summary['fleet_run_id']}`",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(boxes)]
    notes = [b for b in boxes if b.failing or (b.error and b.exit_code)]
    if notes:
        lines += ["", "What did not pass:"]
    for box in notes:
        said = [*box.failing] or [box.error or ""]
        lines += [f"- **{_cell(box.label)}**: " + "; ".join(_cell(s) for s in said)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
