"""The matrix phase: walk the box through each scenario's config and always put it back.

refuse a dirty box -> validate paths against the box's config (nothing changed yet)
-> baseline (stored on the box, state dirty) -> per scenario: render, apply, wait,
battery, idempotency, secrets kept -> restore and prove it (phases/restore.py)
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jmespath

from gate.box import Box, Kind, answered
from gate.capture import capture
from gate.checks import CheckRecord, Verdict, check_secrets_kept, service_states
from gate.contract import ApiCheck, Config, Context
from gate.errors import BoxDirty, PreflightError, Unreachable
from gate.matrix import Matrix, Scenario, check_paths, resolve_overrides, unmet
from gate.observe import read_api, read_config, read_fingerprints, read_status
from gate.phases.check import battery
from gate.phases.restore import restore_and_prove
from gate.readiness import wait_until
from gate.snapshot import (
    BASELINE_CONFIG,
    Baseline,
    config_sha256,
    read_state,
    store_baseline,
    write_state,
)

if TYPE_CHECKING:
    from gate.runner import Run


def matrix_phase(run: Run) -> None:
    """Every selected scenario, then the restore, whatever happens in between."""
    box = run.require_box()
    matrix = run.require_matrix()
    refuse_dirty(box, run.host.name)
    selected = matrix.select(run.opts.scenarios)
    cfg = read_config(box)
    if not cfg.usable or cfg.value is None:
        raise Unreachable(cfg.error) if cfg.unreachable else PreflightError(cfg.error)
    check_paths(matrix, selected, cfg.value)
    runnable = plan(run, selected)
    if not runnable:
        run.note("no runnable scenario: the box was not touched", "bold yellow")
        return
    baseline = take_baseline(run)
    try:
        for scenario in runnable:
            run_scenario(run, matrix, scenario, baseline)
    finally:
        finish(run, baseline)


def refuse_dirty(box: Box, host: str) -> None:
    state = read_state(box)
    if state.get("state") != "clean":
        raise BoxDirty(
            f"box {host} was left {state.get('state')} by run {state.get('run_id', '?')} "
            f"(phase {state.get('phase', '?')}); its baseline is kept on the box: "
            f"run `invoke gate --host {host} --recover`"
        )


def plan(run: Run, selected: list[Scenario]) -> list[Scenario]:
    """Scenarios whose facts are known; the others become named, classed skips."""
    runnable = []
    for scenario in selected:
        skip = unmet(scenario, run.facts)
        if skip is None:
            runnable.append(scenario)
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
    return runnable


def take_baseline(run: Run) -> Baseline:
    """What the box is now, kept on the box before the first change. The box must be healthy."""
    box = run.require_box()
    run.console.phase("baseline", "config bytes, secret fingerprints, services (kept on the box)")
    code, status = read_status(box)
    prints = read_fingerprints(box)
    for reading in (code, status, prints):
        if reading.unreachable:
            raise Unreachable(reading.error)
    if code.value != 0 or status.value is None:
        raise PreflightError(
            f"the box is not healthy before the run (status exit {code.value}); "
            "gate a healthy box, or see `invoke gate --check`"
        )
    if prints.value is None or not any(prints.value.values()):
        raise PreflightError("no secret matched the contract's patterns: nothing to prove kept")
    running = service_states(status.value, box.contract.status)
    baseline = Baseline(
        run_id=run.run_id,
        config_sha256=config_sha256(box),
        fingerprints=prints.value,
        services=sorted(s for s, st in running.items() if st == box.contract.status.running),
    )
    # Shielded: a signal here must not leave the box marked dirty with no restore to follow;
    # it is raised at the first scenario command, inside the always-restore block.
    with run.guard.shielded():
        store_baseline(box, baseline)
        write_state(box, "dirty", run.run_id, phase="matrix")
        run.journal_note("baseline", config_sha256=baseline.config_sha256)
    return baseline


def finish(run: Run, baseline: Baseline) -> None:
    """Restore unless --keep; the restore is shielded from further signals."""
    if run.opts.keep:
        run.note(
            "--keep: the box was NOT restored; it stays on the last scenario and is marked "
            f"dirty. Put it back with `invoke gate --host {run.host.name} --recover`.",
            "bold yellow",
        )
        return
    with run.guard.shielded():
        restore_and_prove(run, baseline)


def run_scenario(run: Run, matrix: Matrix, scenario: Scenario, baseline: Baseline) -> None:
    """One scenario: render, apply, wait, battery, idempotency, secrets; captures on failure."""
    box = run.require_box()
    run.console.phase(f"scenario {scenario.name}", scenario.note)
    run.journal_note("scenario", scenario=scenario.name)
    records: list[CheckRecord] = []
    cfg = apply_scenario(run, scenario, records)
    if cfg is not None:
        records.append(wait_ready(run, cfg, matrix.ready_timeout))
        records += battery(box, cfg, run.host.workers, observe=run.console.waiting)
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
    box = run.require_box()
    overrides = resolve_overrides(scenario, run.facts)
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
    applied = answered(box.control(box.contract.commands.apply, kind=Kind.MUTATE, timeout=600))
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


def wait_ready(run: Run, cfg: Config, timeout: float) -> CheckRecord:
    """Status 0 and every API expectation holding, polled until the deadline."""
    box = run.require_box()
    ctx = Context(config=cfg, workers=run.host.workers)
    checks = [c for c in box.contract.api_checks if c.applies(cfg)]

    def probe() -> dict[str, Any]:
        code, _status = read_status(box)
        if code.unreachable:
            raise Unreachable(code.error)
        api = read_api(box, cfg)
        failing = [c.name for c in checks if not _holds(api.value, c, ctx)] if api.usable else []
        return {"status": code.value, "api": api.error or "ok", "failing": failing}

    def ready(seen: dict[str, Any]) -> bool:
        return seen["status"] == 0 and seen["api"] == "ok" and not seen["failing"]

    waited = wait_until("ready", probe, ready, timeout=timeout, observe=run.console.waiting)
    verdict = Verdict.PASS if waited.satisfied else Verdict.FAIL
    if waited.inconclusive:
        verdict = Verdict.INCONCLUSIVE
    expected = "status 0 and every API expectation"
    return CheckRecord(
        "ready", verdict, expected, json.dumps(waited.last), waited.describe(), waited.elapsed
    )


def _holds(api: Any, check: ApiCheck, ctx: Context) -> bool:
    return bool(check.expect.holds(jmespath.search(check.expression, api), ctx))


def service_clock(box: Box) -> dict[str, Any]:
    """Each running service's pid and start time: what a restart would change."""
    _code, status = read_status(box)
    if status.value is None:
        raise Unreachable(status.error) if status.unreachable else ValueError(status.error)
    shape = box.contract.status
    services: Mapping[str, Any] = status.value.get(shape.services, {})
    return {
        name: (info.get(shape.pid_field), info.get(shape.started_field))
        for name, info in services.items()
        if info.get(shape.state_field) == shape.running
    }


def idempotency(run: Run, scenario: Scenario) -> list[CheckRecord]:
    """A second apply reports no change AND restarts nothing (pids and start times equal)."""
    box = run.require_box()
    marker = box.contract.commands.no_change_marker
    before = service_clock(box)
    again = answered(box.control(box.contract.commands.apply, kind=Kind.MUTATE, timeout=600))
    after = service_clock(box)
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
    repro = f"invoke gate --host {run.host.name} --scenario {scenario.name}"
    if run.host.local:
        repro = f"invoke gate --local --dir {run.host.dir} --scenario {scenario.name}"
    run.scenario_lines.append({"scenario": scenario.name, "evidence": line, "reproduce": repro})
    run.console.line(f"  {line}")
    run.console.line(f"  reproduce: {repro}")
