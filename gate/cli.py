"""From the flags `invoke gate` was given to a run: parse, pick the phases, exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from gate.errors import ExitCode, UsageError
from gate.matrix import describe, validate_matrix
from gate.options import Options, load_stack_file
from gate.phases.check import check_phase
from gate.phases.matrix import matrix_phase
from gate.phases.restore import recover_phase
from gate.redact import Redactor
from gate.report import Console
from gate.runner import Phase, main

PHASES: dict[str, list[Phase]] = {
    "check": [check_phase],
    "matrix": [matrix_phase],
    "recover": [recover_phase],
}


def parse_facts(pairs: list[str]) -> dict[str, str]:
    facts: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--fact takes key=value, not {pair!r}")
        facts[key.strip()] = value.strip()
    return facts


def build_options(
    *,
    host: str,
    local: bool,
    dir: str,
    check: bool,
    list_only: bool,
    scenarios: list[str],
    out: str,
    json: bool,
    workers: int,
    accept_new_host_key: bool,
    keep: bool,
    strict: bool,
    recover: bool,
    matrix: str,
    known_hosts: str,
    facts: list[str],
    inventory: str = "inventory",
) -> Options:
    """Flags as typed strings -> validated-later Options."""
    return Options(
        host=host or None,
        local=local,
        dir=dir or None,
        check=check,
        list_only=list_only,
        scenarios=tuple(scenarios),
        out=Path(out),
        json=json,
        workers=None if workers == -1 else workers,
        accept_new_host_key=accept_new_host_key,
        keep=keep,
        strict=strict,
        recover=recover,
        matrix_file=Path(matrix),
        known_hosts=Path(known_hosts) if known_hosts else None,
        facts=parse_facts(facts),
        inventory_dir=Path(inventory),
    )


def list_plan(opts: Options, stream: TextIO) -> int:
    """`--list`: what a run would check, without touching any box."""
    stack = load_stack_file(opts.matrix_file)
    contract = stack.contract
    lines = [f"stack: {contract.name} ({opts.matrix_file})", "check battery:"]
    lines += [
        "  services: every expected service running",
        "  services: no unexpected service",
        "  status: exit code 0",
    ]
    lines += [
        f"  api: {c.name}  [{c.expression} {type(c.expect).__name__}]" for c in contract.api_checks
    ]
    lines += [f"  api: {c.name}  [{c.expression} increases]" for c in contract.counters]
    lines += ["  posture: env settings match config", "  posture: dashboard scheme matches config"]
    if stack.matrix is not None:
        lines += describe(validate_matrix(stack.matrix), opts.facts)
    stream.write("\n".join(lines) + "\n")
    return ExitCode.PASSED


def run_cli(stream: TextIO | None = None, **flags: object) -> int:
    """The whole command: a usage error is one line and exit 2."""
    try:
        opts = build_options(**flags)  # type: ignore[arg-type]
        if opts.list_only:
            return list_plan(opts, sys.stdout)
    except UsageError as exc:
        Console(Redactor(), stream).line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    return main(opts, PHASES, stream)
