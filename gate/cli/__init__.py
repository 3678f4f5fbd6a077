"""From the flags a user typed to a run: the one flag table, validation, `--list`, the exit code.

invoke gate ...   tasks.py -> gate.cli.invoke_task -> run_cli
gate ...          gate.cli.script (argparse from the same table) -> run_cli
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
from gate.engine.engine import TargetFactory, default_target, main
from gate.errors import ExitCode, UsageError
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
        if opts.list_only:
            return list_plan(opts, sys.stdout)
        if opts.compare:
            return compare_runs(opts.compare, sys.stdout)
        detached = check_flags(opts)  # --detach/--attach/--stop first: their lines say more
        validate(opts)
    except UsageError as exc:
        Console(Redactor(), stream).line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    if detached is not None:  # --detach / --attach / --stop: gate/detach/
        from gate.detach.verbs import run_verb

        return run_verb(detached, opts, stream)
    return main(opts, stream, target)
