"""From the flags a user typed to a run: the one flag table, validation, `--list`, the exit code.

invoke gate ...   tasks.py -> gate.cli.invoke_task -> run_cli
gate ...          gate.cli.script (argparse from the same table) -> run_cli
--host a,b / GROUP  several boxes: gate.fleet runs one child gate per box, in parallel
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TextIO

from gate.cli.flags import options_from
from gate.cli.listing import list_plan
from gate.cli.report_cmd import compare_runs
from gate.cli.validation import validate
from gate.detach.checks import check_flags
from gate.engine.engine import TargetFactory, default_target, main, prepare
from gate.errors import ExitCode, UsageError
from gate.fleet.hosts import Fleet, plan_fleet
from gate.fleet.runner import run_fleet
from gate.options import Options
from gate.redact import Redactor
from gate.report import Console


def run_cli(
    raw: Mapping[str, Any],
    stream: TextIO | None = None,
    target: TargetFactory = default_target,
    program: str = "invoke gate",
) -> int:
    """The whole command: a usage error is one line and exit 2."""
    try:
        opts = replace(options_from(raw), program=program)
        fleet = plan_fleet(opts) if not opts.compare else None
        if opts.list_only:
            if fleet is not None:
                sys.stdout.write("\n".join(fleet_lines(fleet)) + "\n")
            return list_plan(opts, sys.stdout)
        if opts.compare:
            return compare_runs(opts.compare, sys.stdout)
        detached = check_flags(opts)  # --detach/--attach/--stop first: their lines say more
        validate(opts)
        if fleet is not None:
            check_fleet(opts, fleet)
    except UsageError as exc:
        Console(Redactor(), stream).line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    if fleet is not None:  # each box's child gate gets the same flags (--detach too)
        return run_fleet(opts, raw, fleet, stream)
    if detached is not None:  # --detach / --attach / --stop: gate/detach/
        from gate.detach.verbs import run_verb

        return run_verb(detached, opts, stream)
    return main(opts, stream, target)


def fleet_lines(fleet: Fleet) -> list[str]:
    """`--list` with several boxes: which would run, in parallel, each its own run."""
    lines = [f"fleet ({fleet.source}): {len(fleet.boxes)} boxes would run in parallel:"]
    return lines + [f"  {box.label:<16} {box.where}" for box in fleet.boxes]


def check_fleet(opts: Options, fleet: Fleet) -> None:
    """Every box's run is checked as if it ran alone, before any of them starts."""
    for box in fleet.boxes:
        prepare(replace(opts, host=box.entry))
