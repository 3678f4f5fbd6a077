"""One fault, exercised end to end: armed, injected, detected, held, healed, recovered.

`exercise(run, fault, phase)` is what `--fault-injection` runs for each declared fault and
what `--lifecycle` runs for the contract's failover (docs/fault-injection.md):

1. armed: the stack is ready and every `armed` check holds (the positive control: the
   behaviour the fault must switch off is on). Not armed: a FAIL record and no injection.
2. a repair holding the heal is opened (journaled on the box) BEFORE the injection, so an
   interrupt, an error or a lost link still heals it (the engine's mend_all, `--recover`).
3. inject through the contract's actions: stop, pause (kill with STOP) or remove.
4. degraded: the status command exits `status_exit` and every `degraded` check holds,
   polled until `detect_s`.
5. held: sampled again and again for `hold_s`; every sample must hold (the first that does
   not is named).
6. heal (mend the repair), then recovered: ready and `armed` holds again within
   `recover_s`.

Each step leaves one record whose evidence names what was read; the three timings (detect,
hold, recover) go to summary.json's `faults`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gate.battery import Reads, wait_ready
from gate.box import APPLY_TIMEOUT, Kind, answered
from gate.checks import CheckRecord, Verdict, check_field
from gate.contract import Actions, Check, Config, Fault, StackContract
from gate.errors import Unreachable
from gate.expect import Context
from gate.repairs import Repair, Step, control, mend, open_repair
from gate.target import quote
from gate.waits import sample_throughout, wait_until

if TYPE_CHECKING:
    from gate.engine.run import Run

HOLD_INTERVAL_S = 0.5
"""The longest pause between two samples of a hold (shorter windows sample faster)."""
MIN_HOLD_SAMPLES = 3
"""A hold is sampled at least this often, past hold_s if one read is slow (a frozen
service's probe waits out its timeout): one or two reads are not "throughout"."""


@dataclass
class FaultTimings:
    """What summary.json keeps of one exercised fault (seconds; None: the step never ended)."""

    phase: str
    fault: str
    service: str
    inject: str
    verdict: str = str(Verdict.FAIL)
    detect_s: float | None = None
    hold_s: float | None = None
    hold_samples: int = 0
    recover_s: float | None = None
    injected: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    """One read of the stack while (or before) a fault: the status exit and each check."""

    at: float
    status: int | None
    want_status: int | None
    records: list[CheckRecord] = field(default_factory=list)
    lost: Unreachable | None = None

    @property
    def holds(self) -> bool:
        status_ok = self.want_status is None or self.status == self.want_status
        return status_ok and all(r.verdict is Verdict.PASS for r in self.records)

    def describe(self) -> str:
        """What was read, e.g. `status exit 1; api: proxy.admitting = false`."""
        if self.lost is not None:
            return f"could not ask: {self.lost}"
        parts = [] if self.want_status is None else [f"status exit {self.status}"]
        parts += [f"{r.name.split(': ', 1)[0]}: {r.evidence}" for r in self.records]
        return "; ".join(parts)

    def broken(self) -> str:
        """What did not hold in this sample."""
        parts = []
        if self.want_status is not None and self.status != self.want_status:
            parts.append(f"status exited {self.status}, not {self.want_status}")
        parts += [
            f"{r.name}: {r.evidence} (expected {r.expected})"
            for r in self.records
            if r.verdict is not Verdict.PASS
        ]
        return "; ".join(parts)


# --- what a fault does, in actions --------------------------------------------------------


def fill(template: str, **values: str) -> str:
    """An action template with `{service}`/`{signal}` filled (quoted for the shell)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", quote(value))
    return template


def inject_verb(actions: Actions, fault: Fault) -> str:
    """The control verb that breaks the service (gate/fit.py refused a missing action)."""
    template = {"stop": actions.stop, "pause": actions.kill, "remove": actions.remove}
    chosen = template[fault.inject]
    assert chosen is not None
    return fill(chosen, service=fault.service, signal="STOP")


def heal_steps(actions: Actions, fault: Fault) -> tuple[Step, ...]:
    """What undoes the injection: start, SIGCONT, or up."""
    template = {"stop": actions.start, "pause": actions.kill, "remove": actions.up}
    chosen = template[fault.inject]
    assert chosen is not None
    return (control(fill(chosen, service=fault.service, signal="CONT")),)


def lacking_action(actions: Actions, fault: Fault) -> str:
    """The Actions field a fault needs and the contract does not give ("" when none)."""
    needs = {
        "stop": (("stop", True), ("start", True)),
        "pause": (("kill", True),),
        "remove": (("remove", True), ("up", False)),
    }
    for name, takes_service in needs[fault.inject]:
        template = getattr(actions, name)
        if template is None:
            return f"Actions.{name}"
        if takes_service and "{service}" not in template:
            return f"Actions.{name} with {{service}}"
        if fault.inject == "pause" and "{signal}" not in template:
            return "Actions.kill with {signal}"
    return ""


def cannot_have(fault: Fault, expected: frozenset[str], cfg: Config) -> str:
    """Why this config cannot have the fault ("" when it can): a by-design skip."""
    if fault.service not in expected:
        return f"this config does not run {fault.service} (runs {', '.join(sorted(expected))})"
    if not fault.applies(cfg):
        return "the fault's `applies` says this config cannot have it"
    return ""


def declared_faults(contract: StackContract) -> list[Fault]:
    """Every Fault the contract declares: its faults and its failover."""
    return [*contract.faults, *([contract.failover] if contract.failover else [])]


# --- reading the stack --------------------------------------------------------------------


def applicable(contract: StackContract, checks: Sequence[Check], cfg: Config) -> list[Check]:
    return [c for c in checks if c.applies(cfg) and contract.probe(c.probe).applies(cfg)]


def take(run: Run, checks: Sequence[Check], want_status: int | None, since: float) -> Sample:
    """One sample: the status command (its exit code), then one read per check's probe."""
    ctx = Context(config=run.config, facts=run.ctx.facts)
    reads = Reads(run.box, run.config)
    at = time.monotonic() - since
    code = reads.status_code
    if code.lost is not None:
        return Sample(at, None, want_status, lost=code.lost)
    sample = Sample(at, code.value, want_status)
    for check in checks:
        reading = reads.get(check.probe)
        if reading.lost is not None:
            sample.lost = reading.lost
            return sample
        sample.records.append(check_field(reading, check, ctx))
    return sample


def poll(
    run: Run, name: str, checks: Sequence[Check], want_status: int | None, timeout: float
) -> tuple[Sample | None, float, int]:
    """Sample until one holds or `timeout`; (last sample, seconds waited, samples)."""
    since = time.monotonic()

    def probe() -> Sample:
        sample = take(run, checks, want_status, since)
        if sample.lost is not None:
            raise sample.lost
        return sample

    waited = wait_until(
        name, probe, lambda s: s.holds, timeout=timeout, first_interval=0.1, max_interval=1.0
    )
    last = waited.last
    if waited.inconclusive:
        last = Sample(waited.elapsed, None, want_status, lost=waited.attempts[-1].lost)
    return last, waited.elapsed, len(waited.attempts)


# --- the steps ----------------------------------------------------------------------------


class Exercise:
    """One fault's run: the records it adds and the timings it keeps."""

    def __init__(self, run: Run, fault: Fault, phase: str, prefix: str = "") -> None:
        self.run, self.fault, self.phase, self.prefix = run, fault, phase, prefix
        contract = run.box.contract
        self.armed = applicable(contract, fault.armed, run.config)
        self.degraded = applicable(contract, fault.degraded, run.config)
        self.timings = FaultTimings(phase, fault.name, fault.service, fault.inject)
        self.verdicts: list[Verdict] = []

    def add(
        self, step: str, verdict: Verdict, expected: str, observed: str, evidence: str, took: float
    ) -> None:
        self.verdicts.append(verdict)
        self.run.add(
            CheckRecord(
                f"{self.prefix}{self.fault.name}: {step}",
                verdict,
                expected,
                observed,
                evidence,
                took,
                phase=self.phase,
            )
        )

    def expected(self, checks: Sequence[Check], status: int | None) -> str:
        ctx = Context(config=self.run.config, facts=self.run.ctx.facts)
        parts = [] if status is None else [f"status exits {status}"]
        parts += [f"{c.probe}: {c.expression} {c.expect.describe(ctx)}" for c in checks]
        return " and ".join(parts)

    # 1. armed ------------------------------------------------------------------------------
    def arm(self) -> bool:
        """Ready, and every armed check holds, within recover_s (the positive control)."""
        began = time.monotonic()
        ready = wait_ready(self.run.box, self.run.config, self.fault.recover_s)
        want = self.expected(self.armed, 0)
        if ready.verdict is not Verdict.PASS:
            why = f"not ready, fault NOT injected: {ready.evidence}"
            self.add("armed", ready.verdict, want, ready.observed, why, ready.duration)
            return False
        left = max(0.1, self.fault.recover_s - (time.monotonic() - began))
        last, _, _ = poll(self.run, "armed", self.armed, 0, left)
        verdict = verdict_of(last)
        seen = last.describe() if last else "nothing read"
        why = seen if verdict is Verdict.PASS else f"not armed, fault NOT injected: {seen}"
        if verdict is Verdict.PASS and (vacuous := self.degraded_already()):
            verdict, why = Verdict.FAIL, vacuous
        self.add("armed", verdict, want, seen, why, time.monotonic() - began)
        return verdict is Verdict.PASS

    def degraded_already(self) -> str:
        """Why detecting the degraded state would prove nothing ("" when it would not): the
        config leaves nothing to assert, or it already holds on the healthy stack."""
        fault = self.fault
        if not self.degraded and fault.status_exit is None:
            return (
                "under this config no degraded check applies and no status exit is set: "
                "the fault would assert nothing; NOT injected"
            )
        if fault.status_exit not in (None, 0):
            return ""  # ready means status 0: the degraded state cannot hold yet
        before = take(self.run, self.degraded, fault.status_exit, time.monotonic())
        if before.lost is not None:
            raise before.lost
        if before.holds:
            return (
                "the degraded state already holds before the fault, so seeing it proves "
                f"nothing; NOT injected: {before.describe()}"
            )
        return ""

    # 2-3. open the repair, then inject -----------------------------------------------------
    def inject(self) -> tuple[bool, float]:
        """Open the heal's repair, then break the service; (done, monotonic time of it)."""
        actions, fault = self.run.box.contract.actions, self.fault
        key = f"{self.phase}:{fault.name}"
        what = f"{fault.name}: heal {fault.service}"
        open_repair(self.run, Repair(key, what, heal_steps(actions, fault)))
        verb = inject_verb(actions, fault)
        at = time.monotonic()
        done = answered(self.run.box.control(verb, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
        self.timings.injected = True
        if not done.ok:
            said = (done.stderr or done.stdout).strip()[-160:]
            self.add("injected", Verdict.FAIL, f"`{verb}` exits 0", f"exit {done.exit_code}",
                     f"`{verb}` exited {done.exit_code}: {said}", 0.0)  # fmt: skip
        return done.ok, at

    # 4. degraded within detect_s -------------------------------------------------------------
    def detect(self, injected_at: float) -> bool:
        fault = self.fault
        want = self.expected(self.degraded, fault.status_exit)
        last, waited, count = poll(self.run, "degraded", self.degraded, fault.status_exit,
                                   fault.detect_s)  # fmt: skip
        verdict = verdict_of(last)
        seen = last.describe() if last else "nothing read"
        took = time.monotonic() - injected_at
        if verdict is Verdict.PASS:
            self.timings.detect_s = round(took, 3)
            why = f"degraded {took:.1f}s after the injection ({count} samples): {seen}"
        else:
            broke = last.broken() if last and last.lost is None else seen
            why = f"not degraded within {fault.detect_s:g}s ({count} samples); {broke}"
        self.add(f"degraded within {fault.detect_s:g}s", verdict, want, seen, why, waited)
        return verdict is Verdict.PASS

    # 5. held for hold_s ----------------------------------------------------------------------
    def hold(self) -> None:
        fault = self.fault
        want = self.expected(self.degraded, fault.status_exit)
        since = time.monotonic()
        samples = sample_throughout(
            lambda: take(self.run, self.degraded, fault.status_exit, since),
            lambda sample: sample.holds,
            lambda sample: sample.at,
            fault.hold_s,
            min_samples=MIN_HOLD_SAMPLES,
            max_interval=HOLD_INTERVAL_S,
        )
        last = samples[-1]
        self.timings.hold_samples = len(samples)
        took = time.monotonic() - since
        if last.holds:
            self.timings.hold_s = round(last.at, 3)
            verdict, why = (
                Verdict.PASS,
                (f"{len(samples)} samples over {last.at:.1f}s all held; last: {last.describe()}"),
            )
        elif last.lost is not None:
            verdict, why = Verdict.INCONCLUSIVE, f"sample {len(samples)}: {last.describe()}"
        else:
            verdict = Verdict.FAIL
            why = (
                f"sample {len(samples)} of the hold, {last.at:.1f}s in, broke it: "
                f"{last.broken()} (samples 1-{len(samples) - 1} held)"
            )
        self.add(f"held {fault.hold_s:g}s", verdict, want, last.describe(), why, took)

    # 6. heal, then recovered within recover_s ------------------------------------------------
    def heal_and_recover(self) -> None:
        fault = self.fault
        key = f"{self.phase}:{fault.name}"
        began = time.monotonic()
        with self.run.guard.shielded():
            failures = mend(self.run, key)
        want = "the heal exits 0, then ready and " + self.expected(self.armed, 0)
        if failures:
            self.add(f"recovered within {fault.recover_s:g}s", Verdict.FAIL, want,
                     "heal failed", "; ".join(failures), time.monotonic() - began)  # fmt: skip
            return
        ready = wait_ready(self.run.box, self.run.config, fault.recover_s)
        if ready.verdict is not Verdict.PASS:
            why = f"not ready {fault.recover_s:g}s after the heal: {ready.evidence}"
            took = time.monotonic() - began
            self.add(f"recovered within {fault.recover_s:g}s", ready.verdict, want,
                     ready.observed, why, took)  # fmt: skip
            return
        left = max(0.1, fault.recover_s - (time.monotonic() - began))
        last, _, _ = poll(self.run, "recovered", self.armed, 0, left)
        took = time.monotonic() - began
        verdict = verdict_of(last)
        seen = last.describe() if last else "nothing read"
        if verdict is Verdict.PASS:
            self.timings.recover_s = round(took, 3)
            why = f"recovered {took:.1f}s after the heal: {seen}"
        else:
            why = f"not recovered {fault.recover_s:g}s after the heal; last: {seen}"
        self.add(f"recovered within {fault.recover_s:g}s", verdict, want, seen, why, took)


def verdict_of(sample: Sample | None) -> Verdict:
    if sample is None:
        return Verdict.FAIL
    if sample.lost is not None:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS if sample.holds else Verdict.FAIL


def exercise(run: Run, fault: Fault, phase: str, *, prefix: str = "") -> FaultTimings:
    """Exercise one fault (module docstring); its records (named `PREFIXFAULT: STEP`) go to
    the run, its timings are returned and kept in the ledger for summary.json. The heal
    runs on every path: here, or (signal, error, lost link) by the engine's mend_all or
    `--recover`."""
    job = Exercise(run, fault, phase, prefix)
    run.console.line(f"{phase}: {fault.name} ({fault.inject} {fault.service})")
    try:
        if job.arm():
            ok, at = job.inject()
            if ok and job.detect(at):
                job.hold()
            job.heal_and_recover()
    finally:
        job.timings.verdict = str(worst_of(job.verdicts))
        run.ledger.faults.append(job.timings.as_dict())
        run.artifacts.write_text(
            f"{phase}/{fault.name.replace(' ', '-')}.json",
            json.dumps(job.timings.as_dict(), indent=2),
        )
    return job.timings


def worst_of(verdicts: Sequence[Verdict]) -> Verdict:
    if not verdicts:
        return Verdict.INCONCLUSIVE
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS
