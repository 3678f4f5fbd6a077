"""`--list`: what a run would check and which scenarios it would walk, touching no box."""

from __future__ import annotations

from typing import TextIO

from gate.contract import Fault, StackContract
from gate.errors import ExitCode
from gate.fit import check_declarations
from gate.matrix import Matrix, Scenario, describe, validate_matrix
from gate.observed import observers
from gate.options import Options, load_contract_file
from gate.phases import Phase, registered
from gate.planner import pairwise_rows, plan_lines, to_scenarios
from gate.probes import Http
from gate.shards import shard_lines


def list_plan(opts: Options, stream: TextIO) -> int:
    """The phases in run order, the check battery, the scenarios, their coverage, and which
    checks observe each axis."""
    stack = load_contract_file(opts.matrix_file)
    contract = stack.contract
    check_declarations(contract, opts.matrix_file)
    lines = [f"stack: {contract.name} ({opts.matrix_file})"]
    lines.append("phases (in run order): " + ", ".join(_phase(p) for p in registered()))
    lines += ["check battery:", *battery_lines(contract)]
    lines += fault_lines(contract)
    if stack.matrix is not None:
        matrix = validate_matrix(stack.matrix)
        lines += describe(matrix, opts.facts)
        lines += plan_lines(matrix, contract.expected_services)
        if opts.shard is not None:
            plan = matrix.scenarios if opts.plan != "pairwise" else planned(matrix)
            lines += shard_lines(plan, opts.shard.count, opts.shard)
        lines.append("axes observed by (checks whose expectation follows the axis):")
        facts = {**contract.facts, **opts.facts}
        for path, names in observers(matrix, contract, None, facts).items():
            lines.append(f"  {path:<24} {', '.join(names) if names else 'UNOBSERVED'}")
    stream.write("\n".join(lines) + "\n")
    return ExitCode.PASSED


def battery_lines(contract: StackContract) -> list[str]:
    """The built-ins, then each declared check with its probe and expectation."""
    lines = [
        "  services: every expected service running",
        "  services: no unexpected service",
        "  status: exit code 0",
    ]
    for check in contract.checks:
        kind = f"converges within {check.converges:g}s" if check.converges else "settled"
        expect = type(check.expect).__name__
        lines.append(f"  {check.probe}: {check.name}  [{check.expression} {expect}, {kind}]")
    lines += [f"  {c.probe}: {c.name}  [{c.expression} increases]" for c in contract.counters]
    lines += [
        f"  auth: {p.name} refuses a request without credentials"
        for p in contract.probes
        if isinstance(p, Http) and p.auth is not None
    ]
    lines += [f"  secrets: {u.secret} in use in {u.file}" for u in contract.secrets.in_use]
    return lines


def fault_lines(contract: StackContract) -> list[str]:
    """What --fault-injection would inject, the lifecycle's failover, and the auth guard."""
    lines = ["faults (--fault-injection, in order):"] if contract.faults else []
    lines += [f"  {_fault(fault)}" for fault in contract.faults]
    if contract.failover is not None:
        lines.append(f"failover (--lifecycle): {_fault(contract.failover)}")
    guard = contract.auth_guard
    if guard is not None:
        lines.append(
            f"auth guard (--auth-fail-closed): {guard.service} refuses to start with "
            f"{guard.secret} blank, saying /{guard.refusal}/"
        )
    return lines


def _fault(fault: Fault) -> str:
    shows = [] if fault.status_exit is None else [f"status exit {fault.status_exit}"]
    shows += [f"{c.probe}: {c.name}" for c in fault.degraded]
    return (
        f"{fault.name}: {fault.inject} {fault.service} -> {', '.join(shows)}  "
        f"[within {fault.detect_s:g}s, held {fault.hold_s:g}s, "
        f"recovered within {fault.recover_s:g}s]"
    )


def _phase(phase: Phase) -> str:
    flag = phase.flag.option if phase.flag else "default"
    kind = ", destructive" if phase.destructive else ", mutates" if phase.mutates else ""
    return f"{phase.name} ({flag}{kind})"


def planned(matrix: Matrix) -> list[Scenario]:
    """The pairwise plan's scenarios (their names do not depend on any box)."""
    return to_scenarios(matrix, pairwise_rows(matrix))
