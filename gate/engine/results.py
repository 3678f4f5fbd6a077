"""What a run leaves behind: manifest.json first, then summary.json, junit.xml, the last line."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import __version__
from gate.artifacts import git_revision
from gate.report.stream import ReaderGone
from gate.report.write import write_views

if TYPE_CHECKING:
    from gate.engine.run import Run

STARTED = "started"


def write_manifest(run: Run, target: str, versions: Any) -> None:
    """What was under test, written once the box answered (versions scrubbed on the box)."""
    ctx = run.ctx
    run.artifacts.write_json(
        "manifest.json",
        {
            "run_id": ctx.run_id,
            "gate_version": __version__,
            "gate_git": git_revision(Path(__file__).resolve().parents[2]),
            "mode": ctx.opts.mode,
            "phases": [p.name for p in ctx.phases],
            "target": target,
            "transport": "local" if ctx.host.local else ctx.host.transport,
            "host": ctx.host.name,
            "stack_dir": ctx.host.dir,
            "stack": versions,
            "contract": ctx.contract_file.identity,
            "options": {k: str(v) for k, v in vars(ctx.opts).items()},
            STARTED: run.started,
        },
    )


def write_results(run: Run, exit_code: int) -> None:
    """summary.json, junit.xml, the console's closing lines, and --json on stdout."""
    ctx, ledger = run.ctx, run.ledger
    word = ledger.word(exit_code)
    summary = {
        "run_id": ctx.run_id,
        "verdict": word,
        "exit_code": exit_code,
        "mode": ctx.opts.mode,
        "phases": [p.name for p in ctx.phases],
        "host": ctx.host.name,
        "error": str(ledger.error) if ledger.error else None,
        "strict_failures": ledger.strict_failures() if ctx.opts.strict else [],
        "notes": ledger.notes,
        "scenarios": ledger.items,
        "axes_observed_by": ledger.observers,
        "unobserved_axes": [axis for axis, names in ledger.observers.items() if not names],
        "faults": ledger.faults,
        STARTED: run.started,
        "ended": time.time(),
        "counts": ledger.counts(),
        "reproduce": _reproduce(run),
        "checks": [r.as_dict() for r in ledger.records],
    }
    run.artifacts.write_summary(summary)
    run.artifacts.write_junit(ledger.records, f"gate.{ctx.opts.mode}")
    views = _views(run)
    run.console.final(ledger.records, word, exit_code)
    run.console.line(f"results: {run.artifacts.dir}")
    if views:
        run.console.line(f"report: {views[0]}")
    if ctx.opts.json:
        text = run.artifacts.redact(json.dumps(summary, indent=2, default=str))
        ReaderGone(sys.stdout).write(text + "\n")  # a reader gone: results/ has it


def _reproduce(run: Run) -> str:
    """The command that runs this run again: its phases' flags and its scenarios."""
    opts = run.ctx.opts
    words = [p.flag.option for p in run.ctx.phases if p.flag is not None]
    words += [w for name in opts.scenarios for w in ("--scenario", name)]
    words += ["--plan", opts.plan] if opts.plan != "declared" else []
    return run.hint(*words)


def _views(run: Run) -> list[Path]:
    """report.html and summary.md (gate/report/), rendered from what was just written; a
    view, so a bug in drawing it is said on the console and never changes the verdict."""
    try:
        return write_views(run.artifacts.dir, run.artifacts.redact, run.ctx.opts.summary_md,
                           os.environ)  # fmt: skip
    except Exception as exc:  # the verdict is already on disk: say it, carry on
        run.console.line(f"gate: report not written: {type(exc).__name__}: {exc}", "yellow")
        return []
