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
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from gate.battery import battery, wait_ready
from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.capture import capture
from gate.checks import CheckRecord, SkipClass, Verdict, check_secrets_kept, service_entries
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
from gate.observe import read_config, read_fingerprints, read_probe
from gate.observed import observers
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
        for scenario in self._runnable:
            previous = run_scenario(run, matrix, scenario, run.baseline, previous)


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
        ready = wait_ready(box, cfg, matrix.ready_timeout, run.console.waiting)
        records.append(ready)
        if ready.verdict is Verdict.PASS:
            records += battery(box, cfg, run.ctx.facts, observe=run.console.waiting)
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
    """Render the baseline config plus overrides on the box and apply it."""
    box = run.box
    overrides = resolve_overrides(scenario, run.ctx.facts)
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


Clock = dict[str, tuple[Any, ...]]
"""Each running service's identity as the stack reports it: (pid,), (pid, started)..."""


def clock_fields(box: Box) -> list[str]:
    """What the contract's services probe reports that a restart changes."""
    spec = box.contract.services
    return [f for f in (spec.pid, spec.started) if f]


def service_clock(box: Box, cfg: Config) -> Clock | str:
    """Each running service's pid (and start time, when reported), or why it is unknown."""
    spec = box.contract.services
    reading = read_probe(box, box.contract.probe(spec.probe), cfg)
    if reading.lost is not None:
        raise reading.lost
    if not reading.usable:
        return reading.error
    try:
        entries = service_entries(reading.value, spec)
    except ValueError as exc:
        return str(exc)
    fields = clock_fields(box)
    return {
        name: tuple(info.get(f) for f in fields)
        for name, info in entries.items()
        if info.get(spec.state) == spec.running
    }


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs between two configs (types included)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return [
            p
            for key in sorted(set(before) | set(after))
            for p in changed_paths(before.get(key), after.get(key), f"{prefix}{key}.")
        ]
    same = type(before) is type(after) and before == after
    return [] if same else [prefix.removesuffix(".")]


SCOPE = "scope: services outside the change kept their pids"
UNOBSERVABLE = "the services probe reports no pid or start time: restarts are not observable"


def observable(clock: Clock) -> bool:
    """Whether any service reported an identity a restart would change."""
    return any(value is not None for identity in clock.values() for value in identity)


def scope(
    matrix: Matrix, previous: Config, cfg: Config, before: Clock | str, after: Clock | str
) -> list[CheckRecord]:
    """A change recreates only the services the changed axes declare they touch."""
    if isinstance(before, str) or isinstance(after, str):
        why = before if isinstance(before, str) else after
        return [CheckRecord(SCOPE, Verdict.FAIL, "pids readable", "unreadable", str(why))]
    if not observable(before):
        return [
            CheckRecord(SCOPE, Verdict.SKIP, evidence=UNOBSERVABLE, skip_class=SkipClass.MISSING)
        ]
    changed = changed_paths(previous, cfg)
    touched: set[str] = set()
    for path in changed:
        touches = matrix.touches(path)
        if touches is None:
            why = f"{path} changed and declares no touches (on its Axis or Fact)"
            return [_scope_skip(f"{why}: the change's scope is unknown")]
        touched.update(touches)
    kept = sorted(
        s for s in set(before) & set(after) if not any(fnmatchcase(s, t) for t in touched)
    )
    if not kept:
        return [_scope_skip("no running service lies outside the change")]
    moved = [s for s in kept if before[s] != after[s]]
    shown = ", ".join(changed) or "nothing"
    expected = f"{len(kept)} unchanged outside {', '.join(sorted(touched)) or 'nothing'}"
    if moved:
        evidence = f"changed {shown}; recreated outside its scope: {', '.join(moved)}"
        return [
            CheckRecord(SCOPE, Verdict.FAIL, expected, "recreated: " + ", ".join(moved), evidence)
        ]
    return [
        CheckRecord(SCOPE, Verdict.PASS, expected, f"{len(kept)} unchanged", f"changed {shown}")
    ]


def _scope_skip(why: str) -> CheckRecord:
    return CheckRecord(SCOPE, Verdict.SKIP, evidence=why, skip_class=SkipClass.BY_DESIGN)


RESTARTED = "idempotent: no service restarted"


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


def restarted(before: Clock | str, after: Clock | str, fields: list[str]) -> CheckRecord:
    """The restart half of idempotency, naming exactly what was compared."""
    if isinstance(before, str) or isinstance(after, str):
        why = before if isinstance(before, str) else after
        return CheckRecord(RESTARTED, Verdict.FAIL, "pids readable", "unreadable", str(why))
    if not fields or not observable(before):
        return CheckRecord(
            RESTARTED, Verdict.SKIP, evidence=UNOBSERVABLE, skip_class=SkipClass.MISSING
        )
    if not before:
        return CheckRecord(RESTARTED, Verdict.FAIL, "", "", "no running service to compare")
    moved = sorted(s for s in set(before) | set(after) if before.get(s) != after.get(s))
    compared = " and ".join(fields)
    return CheckRecord(
        RESTARTED,
        Verdict.FAIL if moved else Verdict.PASS,
        f"{len(before)} unchanged",
        "restarted: " + ", ".join(moved) if moved else f"{len(before)} unchanged",
        f"{compared} of {len(before)} services compared before and after the second apply",
    )


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
