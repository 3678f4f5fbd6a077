"""The check battery and the waits around it: judge one config's live state on the box.

Readiness is the stack's own: its status command exits 0 and its HTTP probes answer. Once
ready, each probe is read once and settled expectations are asserted on that read (a wrong
value fails in seconds, not at a timeout); expectations the contract marks as converging
get their own declared deadline, and counters must grow within theirs. Every wait keeps
the last value it saw as evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jmespath

from gate.box import Box
from gate.checks import (
    CheckRecord,
    Reading,
    Verdict,
    check_auth_refused,
    check_field,
    check_in_use,
    check_no_unexpected,
    check_services_running,
    check_status_exit,
)
from gate.contract import Check, Config, Increasing
from gate.expect import Context
from gate.observe import Batch, counter, fetch, read_batch, read_in_use, read_probe
from gate.probes import STATUS, Http
from gate.waits import Observer, wait_until

READY_POLL = {"first_interval": 0.02, "max_interval": 0.2, "share": 0.05, "ceiling": 2.0}
"""Readiness polls from 20 ms, doubling to 200 ms; a wait past 4 s then pauses 5% of the
time waited (up to 2 s), so a slow convergence does not run the stack's status command
five times a second: a poll is one cheap call to the box, the status command is not
(docs/performance.md)."""

BLOCK_SLICE_S = 5.0
"""The longest one ask of the stack's blocking status (Status.wait). A signal is raised
before the next command on the box, never during one, so a single ask for the whole
readiness deadline would hold a Ctrl-C, or a CI runner's SIGTERM (and its SIGKILL a few
seconds later, the box left dirty), for that whole deadline; asked slice by slice, a run
unwinds within one slice. A slice ends the moment the stack is ready, so this costs no lag."""

VALUE_POLL = {"first_interval": 0.05, "max_interval": 1.0}
"""Converging values and counters poll from 50 ms, doubling to 1 s: a poll reads one probe
(tens of ms on the box), and a counter that grows once a second is seen within ~0.1 s of
it, not 0.25-0.5 s later (docs/performance.md)."""


class Reads:
    """One battery's probe readings: each probe read at most once unless a wait re-reads it.

    The status command (with its exit code, serving probe `status`) and the probes named
    up front are read together, in one call to the box; a probe first asked for later is
    read alone."""

    def __init__(
        self, box: Box, cfg: Config, probes: Iterable[str] = (), recent: Batch | None = None
    ) -> None:
        """`recent`: the batch of readiness's last poll, read a moment ago: its readings
        (the status command's, and the ready endpoints read with it) are used instead of
        asking the box again. A counter's first value is then its value at readiness."""
        self.box, self.cfg = box, cfg
        taken = recent.readings if recent is not None else {}
        wanted = [box.contract.probe(name) for name in dict.fromkeys(probes)
                  if name != STATUS and name not in taken]  # fmt: skip
        batch = read_batch(box, wanted, cfg, status=recent is None)
        self._readings: dict[str, Reading[Any]] = {**taken, **batch.readings}
        self.seconds: dict[str, float] = {**(recent.seconds if recent else {}), **batch.seconds}
        self.status_code = batch.status_code if recent is None else recent.status_code

    def get(self, name: str) -> Reading[Any]:
        if name not in self._readings:
            self.fresh(name)
        return self._readings[name]

    def fresh(self, name: str) -> Reading[Any]:
        """Read the probe again (a wait polling it)."""
        began = time.monotonic()
        reading = read_probe(self.box, self.box.contract.probe(name), self.cfg)
        self.seconds[name] = time.monotonic() - began
        self._readings[name] = reading
        return reading


def applicable(box: Box, cfg: Config) -> list[Check]:
    """The contract's checks that apply to this config (and whose probe does)."""
    contract = box.contract
    return [c for c in contract.checks if c.applies(cfg) and contract.probe(c.probe).applies(cfg)]


def battery(
    box: Box,
    cfg: Config,
    facts: Mapping[str, str],
    observe: Observer[Any] | None = None,
    recent: Batch | None = None,
) -> list[CheckRecord]:
    """Every check the contract declares, and the built-ins, against one config (`recent`:
    see Reads)."""
    contract = box.contract
    ctx = Context(config=cfg, facts=facts)
    checks = applicable(box, cfg)
    needed = [contract.services.probe, *(c.probe for c in checks)]
    reads = Reads(box, cfg, [*needed, *(c.probe for c in contract.counters)], recent)
    expected = contract.expected_services(cfg)
    services = reads.get(contract.services.probe)
    records = [
        check_services_running(services, expected, contract.services),
        check_no_unexpected(services, expected, contract.services),
        check_status_exit(reads.status_code),
    ]
    records += [_timed(check_field(reads.get(c.probe), c, ctx), reads, c.probe) for c in checks
                if c.converges is None]  # fmt: skip
    # Convergence is a ready stack's values still moving: a stack whose status is not 0 is
    # broken, not converging, and is judged on this read. One clock: windows overlap.
    since = time.monotonic() if reads.status_code.value == 0 else float("-inf")
    records += [converge(reads, c, ctx, since, observe) for c in checks if c.converges]
    records += auth_controls(box, cfg)
    uses = tuple(u for u in contract.secrets.in_use if u.applies(cfg))
    if uses:
        records += check_in_use(read_in_use(box), uses)
    records += [check_counter(reads, c, observe) for c in contract.counters]
    return records


def _timed(record: CheckRecord, reads: Reads, probe: str) -> CheckRecord:
    record.duration = reads.seconds.get(probe, 0.0)
    return record


def auth_controls(box: Box, cfg: Config) -> list[CheckRecord]:
    """For every authenticated HTTP probe: the same request without credentials, and with a
    wrong one, is refused (an endpoint that only looks for the header fails the second)."""
    return [
        check_auth_refused(probe.name, fetch(box, probe, cfg, credential), credential)
        for probe in box.contract.probes
        if isinstance(probe, Http) and probe.auth is not None and probe.applies(cfg)
        for credential in ("none", "wrong")
    ]


def ready_and_battery(
    box: Box,
    cfg: Config,
    facts: Mapping[str, str],
    timeout: float,
    observe: Observer[Any] | None = None,
) -> list[CheckRecord]:
    """Readiness, then (once ready) the battery, which takes what readiness last read (the
    status, the ready endpoints) rather than asking the box again a moment later."""
    ready, last = await_ready(box, cfg, timeout, observe)
    if ready.verdict is not Verdict.PASS:
        return [ready]
    return [ready, *battery(box, cfg, facts, observe, recent=last)]


def wait_ready(
    box: Box, cfg: Config, timeout: float, observe: Observer[Any] | None = None
) -> CheckRecord:
    """The stack's own readiness: status exits 0 and its HTTP probes answer, to a deadline."""
    return await_ready(box, cfg, timeout, observe)[0]


def await_ready(
    box: Box, cfg: Config, timeout: float, observe: Observer[Any] | None = None
) -> tuple[CheckRecord, Batch | None]:
    """wait_ready's record, and the batch of its last poll that read the status command.

    A stack that declares the status command's blocking form (Status.wait) is asked it
    first (in slices of BLOCK_SLICE_S): it answers the moment the stack knows it is
    ready, which no poll interval matches. Its answer is judged like any poll's; if it is
    not ready (a stack whose wait ends early), the ordinary polls go on to the same
    deadline."""
    endpoints = [
        p for p in box.contract.probes if isinstance(p, Http) and p.ready and p.applies(cfg)
    ]
    deadline = time.monotonic() + timeout
    endpoints_up = not endpoints
    block = box.contract.status.wait is not None
    last: Batch | None = None

    def probe() -> dict[str, Any]:
        """One poll, in one call to the box: the endpoints (cheap: boxtool answers them
        itself), with the stack's status command once they have all answered."""
        nonlocal endpoints_up, last, block
        if block:
            block = False
            batch = blocking()
            endpoints_up = answering(batch)
            asked = True
        else:
            batch = read_batch(box, endpoints, cfg, status=endpoints_up)
            if not endpoints_up and answering(batch):
                endpoints_up = True
                batch = read_batch(box, endpoints, cfg)
            asked = endpoints_up
        last = batch if asked else None
        seen: dict[str, Any] = {
            "status": batch.status_code.asked().value if asked else "not asked yet"
        }
        for endpoint in endpoints:
            seen[endpoint.name] = batch.readings[endpoint.name].asked().error or "answering"
        return seen

    def blocking() -> Batch:
        """The blocking status, slice by slice, until it says ready, says not ready before
        its slice ended (a stack whose wait does not block: the polls take over), could not
        be asked, or the deadline passed."""
        while True:
            ask, began = min(BLOCK_SLICE_S, deadline - time.monotonic()), time.monotonic()
            batch = read_batch(box, endpoints, cfg, block_s=ask)
            code, now = batch.status_code, time.monotonic()
            answered_early = now - began < ask / 2
            if code.lost is not None or code.value == 0 or now >= deadline or answered_early:
                return batch

    def answering(batch: Batch) -> bool:
        return all(batch.readings[e.name].asked().usable for e in endpoints)

    waited = wait_until(
        "ready",
        probe,
        lambda seen: seen["status"] == 0 and all(seen[e.name] == "answering" for e in endpoints),
        timeout=timeout,
        observe=observe,
        **READY_POLL,
    )
    verdict = Verdict.PASS if waited.satisfied else Verdict.FAIL
    if waited.inconclusive:
        verdict = Verdict.INCONCLUSIVE
    names = " and ".join(["status exit 0", *(f"{e.name} answering" for e in endpoints)])
    how = waited.describe()
    if box.contract.status.wait is not None:
        how = f"asked the stack's blocking status first; {how}"
    record = CheckRecord("ready", verdict, names, json.dumps(waited.last), how, waited.elapsed)
    return record, last if waited.satisfied else None


def converge(
    reads: Reads, check: Check, ctx: Context, since: float, observe: Observer[Any] | None
) -> CheckRecord:
    """A converging expectation: it may take up to `check.converges` seconds from `since`
    (minus infinity when the stack is not ready: then this read is the verdict)."""
    first = reads.get(check.probe)
    deadline = float(check.converges or 0)
    if not first.usable or _holds(first.value, check, ctx) or since + deadline < time.monotonic():
        return check_field(first, check, ctx)  # held, the probe did not answer, or no time
    waited = wait_until(
        check.name,
        lambda: reads.fresh(check.probe).asked(),
        lambda read: read.usable and _holds(read.value, check, ctx),
        timeout=max(0.01, since + deadline - time.monotonic()),
        observe=observe,
        **VALUE_POLL,
    )
    last: Reading[Any] = waited.last if waited.last is not None else first
    if waited.inconclusive:
        last = Reading(lost=waited.attempts[-1].lost)
    record = check_field(last, check, ctx)
    record.duration = waited.elapsed
    within = f"converging: {'held' if waited.satisfied else 'not held'} after "
    record.evidence = f"{within}{waited.elapsed:.1f}s of {deadline:g}s; {record.evidence}"
    return record


def _holds(value: Any, check: Check, ctx: Context) -> bool:
    return bool(check.expect.holds(jmespath.search(check.expression, value), ctx))


def check_counter(reads: Reads, spec: Increasing, observe: Observer[Any] | None) -> CheckRecord:
    """A counter grows between two reads of its probe within `spec.within` seconds."""
    name = f"{spec.probe}: {spec.name}"
    expected = f"{spec.expression} increases within {spec.within:g}s"
    first = reads.get(spec.probe)
    start = counter(first, spec.expression)
    if start is None:
        verdict = Verdict.INCONCLUSIVE if first.lost is not None else Verdict.FAIL
        why = first.why or f"{spec.expression} is not a number in probe {spec.probe}"
        return CheckRecord(name, verdict, expected, "no first value", why)
    began = time.monotonic()
    waited = wait_until(
        spec.name,
        lambda: counter(reads.fresh(spec.probe).asked(), spec.expression),
        lambda value: value is not None and value > start,
        timeout=spec.within,
        observe=observe,
        **VALUE_POLL,
    )
    duration = time.monotonic() - began
    seen = f"{start:g} -> {waited.last if waited.last is not None else '?'}"
    evidence = f"{seen} after {waited.elapsed:.1f}s ({len(waited.attempts)} reads)"
    if waited.satisfied:
        return CheckRecord(name, Verdict.PASS, expected, seen, evidence, duration)
    verdict = Verdict.INCONCLUSIVE if waited.inconclusive else Verdict.FAIL
    return CheckRecord(name, verdict, expected, seen, "did not increase: " + evidence, duration)
