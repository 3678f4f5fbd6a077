"""`gate e2e BRANCH ...` and `invoke e2e BRANCH ...`: the flags, checked before any box is
reached (one `gate:` line, exit 2).

The box flags are gate's own (gate/cli/flags.py, validated by gate/cli/validation.py);
e2e adds --mode, --keep (keep the dedicated checkout) and takes --scenario for targeted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, TextIO

from gate.errors import ExitCode, UsageError
from gate.redact import Redactor
from gate.report import Console

GATE_FLAGS = (
    "host", "local", "dir", "control", "inventory", "matrix", "out", "known_hosts",
    "transport", "accept_new_host_key", "strict", "scenario", "fact",
)  # fmt: skip
"""The gate flags e2e passes through (help texts come from gate's flag table)."""
MODE_HELP = (
    "check: --check (reads only); targeted (default): the matrix's first declared scenario, "
    "or the --scenario names; matrix: every declared scenario"
)
KEEP_HELP = "keep the dedicated checkout on the box (its stack is stopped, the canonical restored)"


def e2e_flag_help() -> dict[str, str]:
    """`invoke --help e2e`: gate's own help for the flags it passes through, and e2e's."""
    from gate.cli.flags import table

    texts = {flag.name: flag.help for flag in table() if flag.name in GATE_FLAGS}
    return {**texts, "mode": MODE_HELP, "keep": KEEP_HELP}


def run_e2e(
    branch: str,
    raw: Mapping[str, Any],
    *,
    mode: str = "targeted",
    keep: bool = False,
    program: str = "invoke gate",
    stream: TextIO | None = None,
) -> int:
    """The whole command: a usage error is one line and exit 2."""
    from gate.cli.flags import options_from
    from gate.cli.validation import validate
    from gate.e2e.wrapper import E2EOptions, main
    from gate.options import Options

    try:
        opts = options_from({k: v for k, v in raw.items() if k in GATE_FLAGS})
        validate(opts)
        values = {f.name: getattr(opts, f.name) for f in fields(Options)}
        values["program"] = program
        request = E2EOptions(**values, branch=branch, e2e_mode=mode, keep_checkout=keep)
    except UsageError as exc:
        Console(Redactor(), stream).line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    return main(request, stream)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"gate: {message}\n")
        sys.exit(ExitCode.USAGE)


def parser() -> argparse.ArgumentParser:
    from gate.cli.flags import table

    parsed = _Parser(prog="gate e2e", description="Gate a branch of the stack (docs/e2e.md).")
    parsed.add_argument("branch", help="a branch (or origin/ branch, or tag) of the stack's repo")
    parsed.add_argument("--mode", default="targeted", help=MODE_HELP)
    parsed.add_argument("--keep", action="store_true", help=KEEP_HELP)
    for flag in table():
        if flag.name not in GATE_FLAGS:
            continue
        if flag.kind == "bool":
            parsed.add_argument(flag.option, dest=flag.name, action="store_true", help=flag.help)
        elif flag.kind == "repeat":
            parsed.add_argument(flag.option, dest=flag.name, action="append", help=flag.help)
        else:
            parsed.add_argument(flag.option, dest=flag.name, metavar=flag.metavar, help=flag.help)
    return parsed


def script_main(argv: Sequence[str]) -> int:
    """`gate e2e ARGV`."""
    raw = vars(parser().parse_args(list(argv)))
    branch, mode, keep = raw.pop("branch"), raw.pop("mode"), raw.pop("keep")
    return run_e2e(branch, raw, mode=mode, keep=keep, program="gate")
