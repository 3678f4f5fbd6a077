"""The check phase: read the box's live state and judge it, changing nothing.

`battery` is shared with the matrix phase, which runs it for every scenario's config.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from gate.box import Box
from gate.capture import capture
from gate.checks import (
    CheckRecord,
    Reading,
    Verdict,
    check_api_field,
    check_no_unexpected,
    check_posture,
    check_scheme,
    check_secrets_present,
    check_services_running,
    check_status_exit,
)
from gate.contract import Config, Context, Increasing
from gate.errors import PreflightError, Unreachable
from gate.observe import (
    counter,
    read_api,
    read_config,
    read_env,
    read_fingerprints,
    read_scheme,
    read_status,
)
from gate.readiness import Observer, wait_until
from gate.snapshot import config_sha256, read_state

if TYPE_CHECKING:
    from gate.runner import Run

T = TypeVar("T")


def battery(
    box: Box, cfg: Config, workers: int, observe: Observer[Any] | None = None
) -> list[CheckRecord]:
    """Every check the contract declares, against one config."""
    contract = box.contract
    ctx = Context(config=cfg, workers=workers)
    expected = contract.expected_services(cfg)
    want = dict(contract.posture(cfg))
    _status, services = judged(
        lambda: read_status(box),
        lambda read: [
            check_services_running(read[1], expected, contract.status),
            check_no_unexpected(read[1], expected, contract.status),
            check_status_exit(read[0]),
        ],
    )
    api, fields = judged(
        lambda: read_api(box, cfg),
        lambda read: [check_api_field(read, c, ctx) for c in contract.api_checks if c.applies(cfg)],
    )
    _env, posture = judged(
        lambda: read_env(box, sorted(want)), lambda read: [check_posture(read, want)]
    )
    _scheme, scheme = judged(
        lambda: read_scheme(box, cfg),
        lambda read: [check_scheme(read, contract.dashboard.secure_flag(cfg))],
    )
    counters = [check_counter(box, cfg, c, api, observe) for c in contract.counters]
    return [*services, *fields, *posture, *scheme, *counters]


def judged(
    read: Callable[[], T], judge: Callable[[T], list[CheckRecord]]
) -> tuple[T, list[CheckRecord]]:
    """Read once, judge the reading, and charge the read's time to the checks it fed."""
    start = time.monotonic()
    reading = read()
    seconds = time.monotonic() - start
    records = judge(reading)
    for record in records:
        record.duration = seconds / max(1, len(records))
    return reading, records


def check_counter(
    box: Box,
    cfg: Config,
    spec: Increasing,
    first: Reading[Any],
    observe: Observer[Any] | None,
) -> CheckRecord:
    """A counter grows between two reads of the API within `spec.within` seconds."""
    name = f"api: {spec.name}"
    expected = f"{spec.expression} increases within {spec.within:g}s"
    start = counter(first, spec.expression)
    if start is None:
        verdict = Verdict.INCONCLUSIVE if first.unreachable else Verdict.FAIL
        why = first.error or f"{spec.expression} is not a number in the API"
        return CheckRecord(name, verdict, expected, "no first value", why)
    began = time.monotonic()
    waited = wait_until(
        spec.name,
        lambda: counter(read_api(box, cfg), spec.expression),
        lambda value: value is not None and value > start,
        timeout=spec.within,
        first_interval=0.25,
        observe=observe,
    )
    duration = time.monotonic() - began
    seen = f"{start:g} -> {waited.last if waited.last is not None else '?'}"
    evidence = f"{seen} after {waited.elapsed:.1f}s ({len(waited.attempts)} reads)"
    if waited.satisfied:
        return CheckRecord(name, Verdict.PASS, expected, seen, evidence, duration)
    verdict = Verdict.INCONCLUSIVE if waited.inconclusive else Verdict.FAIL
    return CheckRecord(name, verdict, expected, seen, "did not increase: " + evidence, duration)


def check_phase(run: Run) -> None:
    """`--check`: the box's live state against its own config; nothing is changed."""
    box = run.require_box()
    run.console.phase("baseline", "config hash and secret fingerprints, computed on the box")
    state = read_state(box)
    run.add(check_clean_state(state, run.host.name))
    cfg = read_config(box)
    if not cfg.usable or cfg.value is None:
        raise Unreachable(cfg.error) if cfg.unreachable else PreflightError(cfg.error)
    prints = read_fingerprints(box)
    run.add(check_secrets_present(prints))
    run.journal_note("baseline", config_sha256=config_sha256(box), secrets=_count(prints))
    run.console.phase("check", f"{box.contract.name} as configured")
    records = battery(box, cfg.value, run.host.workers, observe=run.console.waiting)
    for record in records:
        run.add(record)
    if any(r.verdict is Verdict.FAIL for r in records):
        capture(box, run.artifacts, cfg.value, "captures/check")


def _count(prints: Reading[Any]) -> int:
    return sum(len(v) for v in (prints.value or {}).values())


def check_clean_state(state: Mapping[str, Any], host: str) -> CheckRecord:
    """No earlier run left the box mid-flight (its on-box state says clean)."""
    name = "box: not left dirty by an earlier run"
    if state.get("state") == "clean":
        return CheckRecord(name, Verdict.PASS, "clean", "clean", "on-box state is clean")
    evidence = (
        f"run {state.get('run_id', '?')} left it {state.get('state')} in phase "
        f"{state.get('phase', '?')}; run `invoke gate --host {host} --recover`"
    )
    return CheckRecord(name, Verdict.FAIL, "clean", str(state.get("state")), evidence)
