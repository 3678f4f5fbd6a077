"""`--list`: what a run would check and which scenarios it would walk, touching no box."""

from __future__ import annotations

from typing import TextIO

from gate.errors import ExitCode
from gate.matrix import describe, validate_matrix
from gate.options import Options, load_contract_file
from gate.phases import Phase, registered


def list_plan(opts: Options, stream: TextIO) -> int:
    """The phases in run order, the check battery, the scenarios and their coverage."""
    stack = load_contract_file(opts.matrix_file)
    contract = stack.contract
    lines = [f"stack: {contract.name} ({opts.matrix_file})"]
    lines.append("phases (in run order): " + ", ".join(_phase(p) for p in registered()))
    lines += ["check battery:"]
    lines += [
        "  services: every expected service running",
        "  services: no unexpected service",
        "  status: exit code 0",
    ]
    for check in contract.api_checks:
        kind = f"converges within {check.converges:g}s" if check.converges else "settled"
        lines.append(
            f"  api: {check.name}  [{check.expression} {type(check.expect).__name__}, {kind}]"
        )
    lines += [f"  api: {c.name}  [{c.expression} increases]" for c in contract.counters]
    lines += ["  posture: env settings match config", "  posture: dashboard scheme matches config"]
    if stack.matrix is not None:
        lines += describe(validate_matrix(stack.matrix), opts.facts)
    stream.write("\n".join(lines) + "\n")
    return ExitCode.PASSED


def _phase(phase: Phase) -> str:
    flag = phase.flag.option if phase.flag else "default"
    return f"{phase.name} ({flag}{', mutates' if phase.mutates else ''})"
