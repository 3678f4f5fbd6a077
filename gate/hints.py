"""The commands the gate prints as hints (reproduce, recover, keep): runnable as printed.

A hint carries every flag that chose the box and the contract in this run (inventory,
dir, control, known_hosts, matrix, out, facts), so running it reaches the same
box under the same contract, from the same working directory. A fact whose value holds a
credential is never printed: the hint names a shell variable for it and says to set it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from gate.options import Options
from gate.redact import redact

DEFAULTS = {"inventory": Path("inventory"), "matrix": Path("matrix.py"), "out": Path("results")}


def gate_command(opts: Options, *extra: str, matrix: Path | str | None = None) -> str:
    """The command reaching this run's box (as the user ran gate), plus `extra` flags."""
    words = [*opts.program.split(), *_box_flags(opts)]
    contract = Path(matrix) if matrix is not None else opts.matrix_file
    words += _unless_default("--matrix", contract, DEFAULTS["matrix"])
    words += _unless_default("--out", opts.out, DEFAULTS["out"])
    text = shlex.join([*words, *extra])
    secret = sorted(k for k, v in opts.facts.items() if redact(v) != v)
    for key, value in sorted(opts.facts.items()):
        shown = (
            f'"{key}=${{{fact_variable(key)}}}"' if key in secret else shlex.quote(f"{key}={value}")
        )
        text += f" --fact {shown}"
    if secret:
        names = ", ".join(fact_variable(k) for k in secret)
        text += f"  # first set {names} to the value you gave (it holds a credential)"
    return text


def fact_variable(key: str) -> str:
    """The shell variable a hint names for a fact whose value must never be printed."""
    return "GATE_FACT_" + "".join(c if c.isalnum() else "_" for c in key.upper())


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
    if opts.transport:
        words += ["--transport", opts.transport]
    return words


def _unless_default(flag: str, value: Path, default: Path) -> list[str]:
    return [] if value == default else [flag, str(value)]
