"""The matrix phase: walk the box through each scenario's config.

plan (before the baseline): the scenarios' paths exist in the box's config, the contract
fits each scenario's config, unmet facts become named skips. run: per scenario: render,
apply, wait for readiness, the battery, idempotency, secrets kept. The engine restores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jmespath

from gate.battery import battery, wait_ready
from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.capture import capture
from gate.checks import CheckRecord, Verdict, check_secrets_kept, service_states
from gate.contract import Config, fit_contract
from gate.matrix import Matrix, Scenario, check_paths, resolve_overrides, unmet, validate_matrix
from gate.observe import read_config, read_fingerprints, read_status
from gate.phases.base import Phase
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
        selected = matrix.select(run.ctx.opts.scenarios)
        check_paths(matrix, selected, run.config)
        self._runnable = runnable(run, selected)
        for scenario in self._runnable:
            overridden = with_overrides(run.config, resolve_overrides(scenario, run.ctx.facts))
            fit_contract(run.box.contract, overridden, f"scenario {scenario.name}")
        return bool(self._runnable)

    def run(self, run: Run) -> None:
        matrix = validate_matrix(run.ctx.contract_file.matrix)
        assert run.baseline is not None
        for scenario in self._runnable:
            run_scenario(run, matrix, scenario, run.baseline)


def with_overrides(cfg: Config, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The config with dotted-path overrides applied, in memory (as boxtool render does)."""
    result: dict[str, Any] = json.loads(json.dumps(cfg))
    for path, value in overrides.items():
        node = result
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return result


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


def run_scenario(run: Run, matrix: Matrix, scenario: Scenario, baseline: Baseline) -> None:
    """One scenario: render, apply, wait, battery, idempotency, secrets; captures on failure."""
    box = run.box
    run.console.phase(f"scenario {scenario.name}", scenario.note)
    run.journal_note("scenario", scenario=scenario.name)
    write_state(box, "dirty", run.ctx.run_id, phase=f"matrix, scenario {scenario.name}")
    records: list[CheckRecord] = []
    cfg = apply_scenario(run, scenario, records)
    if cfg is not None:
        ready = wait_ready(box, cfg, matrix.ready_timeout, run.console.waiting)
        records.append(ready)
        if ready.verdict is Verdict.PASS:
            records += battery(box, cfg, run.ctx.host.workers, observe=run.console.waiting)
        records += idempotency(run, scenario)
        records.append(check_secrets_kept(baseline.fingerprints, read_fingerprints(box)))
    for record in records:
        record.phase, record.scenario = "matrix", scenario.name
        run.add(record)
    summarise(run, scenario, records)
    if any(r.verdict is Verdict.FAIL for r in records):
        capture(box, run.artifacts, cfg, f"captures/{scenario.name}")


def apply_scenario(run: Run, scenario: Scenario, records: list[CheckRecord]) -> Config | None:
    """Render the baseline config plus overrides on the box and apply it."""
    box = run.box
    overrides = resolve_overrides(scenario, run.ctx.facts)
    rendered = answered(
        box.tool(
            "render",
            BASELINE_CONFIG,
            box.contract.config_file,
            kind=Kind.MUTATE,
            stdin=json.dumps(overrides),
        )
    )
    if not rendered.ok:
        records.append(CheckRecord("config rendered", Verdict.FAIL, "rendered", rendered.stderr))
        return None
    began = time.monotonic()
    applied = answered(
        box.control(box.contract.commands.apply, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT)
    )
    run.artifacts.write_text(
        f"scenarios/{scenario.name}/apply.log", applied.stdout + applied.stderr
    )
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


def service_clock(box: Box) -> dict[str, Any]:
    """Each running service's pid and start time: what a restart would change."""
    _code, status = read_status(box)
    if status.value is None:
        raise status.lost if status.lost is not None else ValueError(status.error)
    shape = box.contract.status
    service_states(status.value, shape)  # a ValueError naming the shape if it is not one
    services: Mapping[str, Any] = jmespath.search(shape.services, status.value)
    return {
        name: (info.get(shape.pid_field), info.get(shape.started_field))
        for name, info in services.items()
        if info.get(shape.state_field) == shape.running
    }


def idempotency(run: Run, scenario: Scenario) -> list[CheckRecord]:
    """A second apply reports no change AND restarts nothing (pids and start times equal)."""
    box = run.box
    marker = box.contract.commands.no_change_marker
    apply = box.contract.commands.apply
    try:
        before = service_clock(box)
        again = answered(box.control(apply, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
        after = service_clock(box)
    except ValueError as exc:
        return [CheckRecord("idempotent: no service restarted", Verdict.FAIL, "", "", str(exc))]
    said = (again.stdout + again.stderr).strip()
    run.artifacts.write_text(f"scenarios/{scenario.name}/apply-again.log", said)
    quiet = again.ok and marker in said
    restarted = sorted(s for s in set(before) | set(after) if before.get(s) != after.get(s))
    if not before:
        return [CheckRecord("idempotent: no service restarted", Verdict.FAIL, "", "", "no pids")]
    return [
        CheckRecord(
            "idempotent: second apply reports no change",
            Verdict.PASS if quiet else Verdict.FAIL,
            repr(marker),
            said.splitlines()[-1][:160] if said else "(nothing)",
            f"exit {again.exit_code}",
        ),
        CheckRecord(
            "idempotent: no service restarted",
            Verdict.FAIL if restarted else Verdict.PASS,
            f"{len(before)} pids unchanged",
            "restarted: " + ", ".join(restarted) if restarted else f"{len(before)} unchanged",
            "pids and start times compared before and after the second apply",
        ),
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
    repro = run.hint("--scenario", scenario.name)
    run.ledger.items.append({"scenario": scenario.name, "evidence": line, "reproduce": repro})
    run.console.line(f"  {line}")
    run.console.line(f"  reproduce: {repro}")
