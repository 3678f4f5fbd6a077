"""The `gate` console script: the same flags as `invoke gate`, parsed by argparse.

Signal handlers go in before anything heavy is imported, and a flag argparse cannot parse
exits 2 like every usage error.
"""

from __future__ import annotations

import argparse
import sys

from gate.signals import process_guard


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"gate: {message}\n")
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    from gate.cli.flags import table

    parsed = _Parser(prog="gate", description="Gate a box (see docs/quickstart.md).")
    for flag in table():
        if flag.kind == "bool":
            parsed.add_argument(flag.option, dest=flag.name, action="store_true", help=flag.help)
        elif flag.kind == "repeat":
            parsed.add_argument(
                flag.option, dest=flag.name, action="append", metavar=flag.metavar, help=flag.help
            )
        else:
            parsed.add_argument(flag.option, dest=flag.name, metavar=flag.metavar, help=flag.help)
    return parsed


def main() -> None:
    process_guard()
    if sys.argv[1:2] == ["report"]:  # `gate report RESULTS_DIR`: no box, no flags
        from gate.cli.report_cmd import regenerate

        sys.exit(regenerate(sys.argv[2] if len(sys.argv) == 3 else ""))
    if sys.argv[1:2] == ["e2e"]:  # `gate e2e BRANCH ...`: docs/e2e.md
        from gate.e2e.cli import script_main

        sys.exit(script_main(sys.argv[2:]))
    raw = vars(parser().parse_args())
    from gate.cli import run_cli

    sys.exit(run_cli(raw, program="gate"))


if __name__ == "__main__":  # `python -m gate.cli.script`: how a fleet starts each box's run
    main()
