"""The commands the gate prints as hints (reproduce, recover, keep): runnable as printed.

A hint carries every flag that chose the box and the contract in this run (inventory,
dir, control, known_hosts, matrix, out, workers, facts), so running it reaches the same
box under the same contract, from the same working directory.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from gate.options import Options

DEFAULTS = {"inventory": Path("inventory"), "matrix": Path("matrix.py"), "out": Path("results")}


def gate_command(opts: Options, *extra: str, matrix: Path | str | None = None) -> str:
    """The command reaching this run's box (as the user ran gate), plus `extra` flags."""
    words = [*opts.program.split(), *_box_flags(opts)]
    contract = Path(matrix) if matrix is not None else opts.matrix_file
    words += _unless_default("--matrix", contract, DEFAULTS["matrix"])
    words += _unless_default("--out", opts.out, DEFAULTS["out"])
    if opts.workers is not None:
        words += ["--workers", str(opts.workers)]
    for key, value in sorted(opts.facts.items()):
        words += ["--fact", f"{key}={value}"]
    return shlex.join([*words, *extra])


def _box_flags(opts: Options) -> list[str]:
    words = ["--local"] if opts.local else []
    if opts.host:
        words += ["--host", opts.host]
        words += _unless_default("--inventory", opts.inventory_dir, DEFAULTS["inventory"])
    if opts.dir:
        words += ["--dir", opts.dir]
    if opts.control:
        words += ["--control", opts.control]
    if opts.known_hosts is not None:
        words += ["--known-hosts", str(opts.known_hosts)]
    return words


def _unless_default(flag: str, value: Path, default: Path) -> list[str]:
    return [] if value == default else [flag, str(value)]
