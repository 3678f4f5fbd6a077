"""The matrix phase: walk the box through each scenario's config.

plan (before the baseline): the scenarios' paths exist in the box's config, the contract
fits each scenario's config, unmet facts become named skips, and every axis no check
observes is said (a missing-class skip: `--strict` fails it). run: per scenario: render,
apply, wait for readiness, the battery, the change's scope, idempotency, secrets kept.
The engine restores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gate.battery import ready_and_battery
from gate.box import APPLY_TIMEOUT, Kind, answered
from gate.capture import capture
from gate.checks import CheckRecord, SkipClass, Verdict, check_secrets_kept
from gate.contract import Config
from gate.fit import fit_contract
from gate.matrix import (
    Matrix,
    Scenario,
    check_paths,
    resolve_overrides,
    unmet,
    validate_matrix,
    with_value,
)
from gate.observe import read_config, read_fingerprints
from gate.observed import observers
from gate.phases.base import Phase
from gate.planner import plan_pairwise
from gate.report.compare import seconds_last_time
from gate.restarts import Clock, clock_fields, restarted, scope, service_clock
from gate.snapshot import BASELINE_CONFIG, Baseline, write_state

if TYPE_CHECKING:
    from gate.engine.run import Run


class MatrixPhase(Phase):
    """The default phase of a mutating run: every selected scenario of the contract's MATRIX."""

    name = "matrix"
    mutates = True

    def __init__(self) -> None:
        self._runnable: list[Scenario] = []

    def plan(self, run: Run) -> bool:
        matrix = validate_matrix(run.ctx.contract_file.matrix)
        selected = select(run, matrix)
        check_paths(matrix, selected, run.config)
        self._runnable = runnable(run, selected)
        for scenario in self._runnable:
            overridden: Config = run.config
            for path, value in resolve_overrides(scenario, run.ctx.facts).items():
                overridden = with_value(overridden, path, value)
            fit_contract(run.box.contract, overridden, f"scenario {scenario.name}", run.ctx.facts)
        report_unobserved(run, matrix)
        return bool(self._runnable)

    def run(self, run: Run) -> None:
        matrix = validate_matrix(run.ctx.contract_file.matrix)
        assert run.baseline is not None
        previous: Config | None = run.config
        names = [s.name for s in self._runnable]  # a terminal shows done/total and time left
        run.console.scenarios(names, seconds_last_time(run.artifacts.dir), matrix.ready_timeout)
        for scenario in self._runnable:
            previous = run_scenario(run, matrix, scenario, run.baseline, previous)


def select(run: Run, matrix: Matrix) -> list[Scenario]:
    """The declared scenarios (--scenario picks), or with --plan pairwise the planned ones
    in the order that restarts fewest services from the box's own config; with --shard,
    this job's share of them."""
    opts = run.ctx.opts
    if opts.plan != "pairwise":
        chosen = matrix.select(opts.scenarios)
    else:
        walk = plan_pairwise(matrix, run.box.contract.expected_services, run.config, run.ctx.facts)
        chosen = list(walk.scenarios)
    return opts.shard.take(chosen) if opts.shard else chosen


def report_unobserved(run: Run, matrix: Matrix) -> None:
    """Each axis no check observes is a missing-class skip, said before anything changes."""
    found = observers(matrix, run.box.contract, run.config, run.ctx.facts)
    run.ledger.observers = found
    for path, names in found.items():
        if names:
            continue
        run.add(
            CheckRecord(
                f"axis {path} observed by a check",
                Verdict.SKIP,
                "a check whose expectation depends on the axis",
                "none",
                f"no check's expected value changes with {path}: a green run proves nothing "
                "about it (declare one; --strict fails this)",
                phase="matrix",
                skip_class=SkipClass.MISSING,
            )
        )


def runnable(run: Run, selected: list[Scenario]) -> list[Scenario]:
    """Scenarios whose facts are known; the others become named, classed skips."""
    result = []
    for scenario in selected:
        skip = unmet(scenario, run.ctx.facts)
        if skip is None:
            result.append(scenario)
            continue
        run.add(
            CheckRecord(
                f"scenario {scenario.name}",
                Verdict.SKIP,
                evidence=skip.reason,
                phase="matrix",
                scenario=scenario.name,
                skip_class=skip.skip_class,
            )
        )
    return result


def run_scenario(
    run: Run, matrix: Matrix, scenario: Scenario, baseline: Baseline, previous: Config | None
) -> Config | None:
    """One scenario: render, apply, wait, battery, scope, idempotency, secrets; captures on
    failure. Returns the config it left applied (None when that is unknown)."""
    box = run.box
    run.console.phase(f"scenario {scenario.name}", scenario.note)
    run.journal_note("scenario", scenario=scenario.name)
    write_state(box, "dirty", run.ctx.run_id, phase=f"matrix, scenario {scenario.name}")
    records: list[CheckRecord] = []
    clock_before = service_clock(box, previous) if previous is not None else None
    cfg = apply_scenario(run, scenario, records)
    if cfg is not None:
        records += ready_and_battery(
            box, cfg, run.ctx.facts, matrix.ready_timeout, run.console.waiting
        )
        settled = service_clock(box, cfg)
        if previous is not None and clock_before is not None:
            records += scope(matrix, previous, cfg, clock_before, settled)
        records += idempotency(run, scenario, cfg, settled)
        records.append(check_secrets_kept(baseline.fingerprints, read_fingerprints(box)))
    for record in records:
        record.phase, record.scenario = "matrix", scenario.name
        run.add(record)
    summarise(run, scenario, records)
    if any(r.verdict is Verdict.FAIL for r in records):
        capture(box, run.artifacts, cfg, f"captures/{scenario.name}")
    return cfg


def apply_scenario(run: Run, scenario: Scenario, records: list[CheckRecord]) -> Config | None:
    """Render the baseline config plus the scenario's overrides on the box and apply it."""
    overrides = resolve_overrides(scenario, run.ctx.facts)
    return apply_overrides(run, overrides, f"scenarios/{scenario.name}/apply.log", records)


def apply_overrides(
    run: Run, overrides: Mapping[str, Any], log: str, records: list[CheckRecord]
) -> Config | None:
    """Render the baseline config plus `overrides` on the box and apply it (its output in
    the artifact `log`); the config it left applied, None when the render or apply failed."""
    box = run.box
    rendered = answered(
        box.tool(
            "render",
            BASELINE_CONFIG,
            box.contract.config.path,
            kind=Kind.MUTATE,
            stdin=json.dumps(overrides),
        )
    )
    if not rendered.ok:
        records.append(CheckRecord("config rendered", Verdict.FAIL, "rendered", rendered.stderr))
        return None
    began = time.monotonic()
    applied = answered(
        box.control(box.contract.actions.apply, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT)
    )
    run.artifacts.write_text(log, applied.stdout + applied.stderr)
    verdict = Verdict.PASS if applied.ok else Verdict.FAIL
    tail = (applied.stdout + applied.stderr).strip().splitlines()[-1:] or [""]
    records.append(
        CheckRecord(
            "apply succeeded",
            verdict,
            "exit 0",
            f"exit {applied.exit_code}",
            tail[0][:200],
            time.monotonic() - began,
        )
    )
    if not applied.ok:
        return None
    cfg = read_config(box)
    return cfg.value if cfg.usable else None


def idempotency(
    run: Run, scenario: Scenario, cfg: Config, before: Clock | str
) -> list[CheckRecord]:
    """A second apply reports no change AND restarts nothing (what the stack reports of each
    service's identity, pid and/or start time, compared before and after)."""
    box = run.box
    marker = box.contract.actions.no_change_marker
    again = answered(
        box.control(box.contract.actions.apply, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT)
    )
    after = service_clock(box, cfg)
    said = (again.stdout + again.stderr).strip()
    run.artifacts.write_text(f"scenarios/{scenario.name}/apply-again.log", said)
    quiet = again.ok and marker in said
    return [
        CheckRecord(
            "idempotent: second apply reports no change",
            Verdict.PASS if quiet else Verdict.FAIL,
            repr(marker),
            said.splitlines()[-1][:160] if said else "(nothing)",
            f"exit {again.exit_code}",
        ),
        restarted(before, after, clock_fields(box)),
    ]


def summarise(run: Run, scenario: Scenario, records: list[CheckRecord]) -> None:
    """The scenario's evidence line and the one-line command that reproduces it alone."""
    counts = {v: sum(r.verdict is v for r in records) for v in Verdict}
    failed = [r.name for r in records if r.verdict is Verdict.FAIL]
    line = (
        f"{scenario.name}: {counts[Verdict.PASS]} passed, {counts[Verdict.FAIL]} failed, "
        f"{counts[Verdict.INCONCLUSIVE]} inconclusive"
        + (f" (failed: {', '.join(failed)})" if failed else "")
    )
    # a planned scenario is not declared: --scenario cannot name it, the plan reruns it
    pairwise = run.ctx.opts.plan == "pairwise"
    repro = run.hint("--plan", "pairwise") if pairwise else run.hint("--scenario", scenario.name)
    run.ledger.items.append({"scenario": scenario.name, "evidence": line, "reproduce": repro})
    run.console.line(f"  {line}")
    run.console.line(f"  reproduce: {repro}")
