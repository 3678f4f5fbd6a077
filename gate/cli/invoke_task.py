"""The `invoke gate` task, generated from the flag table, and invoke's parse errors as ours.

invoke reads a task's flags from its function signature, so the signature is built from
the table: every valued flag is a string (typed by gate, so `--fact abc` is our usage
line), booleans default False, repeatable flags are iterable. invoke exits 1 on a flag it
cannot parse; gate documents 2 for every usage error, so `exit_2_on_parse_errors` turns
invoke's ParseError into one `gate:` line and exit 2.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from invoke.context import Context
from invoke.exceptions import ParseError
from invoke.program import Program
from invoke.tasks import task

from gate.cli import run_cli
from gate.cli.flags import table
from gate.errors import ExitCode

DOC = "Gate a box: --check, the config matrix with its phases (default), or --recover."


def gate_task() -> Any:
    """The invoke task object for `invoke gate`."""
    flags = table()
    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for flag in flags:
        default: object = False if flag.kind == "bool" else None if flag.kind == "repeat" else ""
        params.append(inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=default))

    def gate(c: Context, **raw: Any) -> None:
        sys.exit(run_cli(raw))

    gate.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    gate.__doc__ = DOC
    iterable = [f.name for f in flags if f.kind == "repeat"]
    return task(iterable=iterable, help={f.name: f.help for f in flags})(gate)


def exit_2_on_parse_errors() -> None:
    """Make invoke's own flag parsing end like every other usage error: one line, exit 2."""
    original = Program.parse_tasks
    if getattr(original, "_gate", False):
        return

    def parse_tasks(self: Program) -> None:
        try:
            original(self)
        except ParseError as exc:
            print(f"gate: {exc}", file=sys.stderr)
            sys.exit(ExitCode.USAGE)

    parse_tasks._gate = True  # type: ignore[attr-defined]
    Program.parse_tasks = parse_tasks  # type: ignore[method-assign]
