"""The check battery and the waits around it: judge one config's live state on the box.

Readiness is the stack's own: its status command exits 0 and its probes answer. Once ready,
settled expectations are asserted once (a wrong value fails in seconds, not at a timeout);
expectations the contract marks as converging get their own declared deadline, and
counters must grow within theirs. Every wait keeps the last value it saw as evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jmespath

from gate.box import Box
from gate.checks import (
    CheckRecord,
    Reading,
    Verdict,
    check_api_field,
    check_no_unexpected,
    check_posture,
    check_scheme,
    check_services_running,
    check_status_exit,
)
from gate.contract import ApiCheck, Config, Context, Increasing
from gate.observe import counter, read_api, read_env, read_scheme, read_status
from gate.readiness import Observer, wait_until

T = TypeVar("T")


def battery(
    box: Box, cfg: Config, workers: int, observe: Observer[Any] | None = None
) -> list[CheckRecord]:
    """Every check the contract declares, against one config."""
    contract = box.contract
    ctx = Context(config=cfg, workers=workers)
    expected = contract.expected_services(cfg)
    want = dict(contract.posture(cfg))
    status, services = judged(
        lambda: read_status(box),
        lambda read: [
            check_services_running(read[1], expected, contract.status),
            check_no_unexpected(read[1], expected, contract.status),
            check_status_exit(read[0]),
        ],
    )
    checks = [c for c in contract.api_checks if c.applies(cfg)]
    api, fields = judged(
        lambda: read_api(box, cfg),
        lambda read: [check_api_field(read, c, ctx) for c in checks if c.converges is None],
    )
    # Convergence is a ready stack's values still moving: a stack whose status is not 0 is
    # broken, not converging, and is judged on this read. One clock: windows overlap.
    since = time.monotonic() if status[0].value == 0 else float("-inf")
    converging = [converge(box, cfg, c, ctx, api, since, observe) for c in checks if c.converges]
    _env, posture = judged(
        lambda: read_env(box, sorted(want)), lambda read: [check_posture(read, want)]
    )
    _scheme, scheme = judged(
        lambda: read_scheme(box, cfg),
        lambda read: [check_scheme(read, contract.dashboard.secure_flag(cfg))],
    )
    counters = [check_counter(box, cfg, c, api, observe) for c in contract.counters]
    return [*services, *fields, *converging, *posture, *scheme, *counters]


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


def wait_ready(
    box: Box, cfg: Config, timeout: float, observe: Observer[Any] | None = None
) -> CheckRecord:
    """The stack's own readiness: status exits 0 and the API answers, polled to a deadline."""

    def probe() -> dict[str, Any]:
        code = read_status(box)[0].asked()
        api = read_api(box, cfg).asked()
        return {"status": code.value, "api": api.error or "answering"}

    waited = wait_until(
        "ready",
        probe,
        lambda seen: seen["status"] == 0 and seen["api"] == "answering",
        timeout=timeout,
        observe=observe,
    )
    verdict = Verdict.PASS if waited.satisfied else Verdict.FAIL
    if waited.inconclusive:
        verdict = Verdict.INCONCLUSIVE
    expected = "status exit 0 and the API answering"
    return CheckRecord(
        "ready", verdict, expected, json.dumps(waited.last), waited.describe(), waited.elapsed
    )


def converge(
    box: Box,
    cfg: Config,
    check: ApiCheck,
    ctx: Context,
    first: Reading[Any],
    since: float,
    observe: Observer[Any] | None,
) -> CheckRecord:
    """A converging expectation: it may take up to `check.converges` seconds from `since`
    (minus infinity when the stack is not ready: then this read is the verdict)."""
    deadline = float(check.converges or 0)
    if not first.usable or _holds(first.value, check, ctx) or since + deadline < time.monotonic():
        return check_api_field(first, check, ctx)  # held, the API did not answer, or no time
    waited = wait_until(
        check.name,
        lambda: read_api(box, cfg).asked(),
        lambda read: read.usable and _holds(read.value, check, ctx),
        timeout=max(0.01, since + deadline - time.monotonic()),
        first_interval=0.25,
        observe=observe,
    )
    last: Reading[Any] = waited.last if waited.last is not None else first
    if waited.inconclusive:
        last = Reading(lost=waited.attempts[-1].lost)
    record = check_api_field(last, check, ctx)
    record.duration = waited.elapsed
    within = f"converging: {'held' if waited.satisfied else 'not held'} after "
    record.evidence = f"{within}{waited.elapsed:.1f}s of {deadline:g}s; {record.evidence}"
    return record


def _holds(api: Any, check: ApiCheck, ctx: Context) -> bool:
    value = jmespath.search(check.expression, api)
    return value is not None and bool(check.expect.holds(value, ctx))


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
        verdict = Verdict.INCONCLUSIVE if first.lost is not None else Verdict.FAIL
        why = first.why or f"{spec.expression} is not a number in the API"
        return CheckRecord(name, verdict, expected, "no first value", why)
    began = time.monotonic()
    waited = wait_until(
        spec.name,
        lambda: counter(read_api(box, cfg).asked(), spec.expression),
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
