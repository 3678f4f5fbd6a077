"""The assertion battery: pure functions from what the box said to verdicts with evidence.

Reading the box happens elsewhere (gate/observe.py); every function here takes a `Reading`
and returns a `CheckRecord`, so each check can be shown red in a unit test. A reading that
could not be taken (link down, timeout) gives an inconclusive verdict, never a pass and
never a failed "no"; a reading the box answered with garbage is a failure that says so.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import jmespath
from jmespath.exceptions import JMESPathError

from gate.contract import Check, InUse, Services
from gate.errors import Unreachable
from gate.expect import Context

T = TypeVar("T")


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    SKIP = "skip"


class SkipClass(enum.StrEnum):
    """Why a check or scenario did not run. `missing` is a real gap; strict mode fails on it."""

    MISSING = "missing"
    BY_DESIGN = "by-design"
    COVERED = "covered"

    @classmethod
    def parse(cls, text: str) -> SkipClass:
        """An unknown class counts as missing: a gap nobody explained is a gap."""
        try:
            return cls(text)
        except ValueError:
            return cls.MISSING


@dataclass
class CheckRecord:
    """One assertion's outcome, with what was expected, what was seen and why."""

    name: str
    verdict: Verdict
    expected: str = ""
    observed: str = ""
    evidence: str = ""
    duration: float = 0.0
    phase: str = "check"
    scenario: str = ""
    skip_class: SkipClass | None = None
    finished_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = str(self.verdict)
        data["skip_class"] = str(self.skip_class) if self.skip_class else None
        return data


@dataclass(frozen=True)
class Reading(Generic[T]):
    """A value read from the box, or why it could not be read.

    `lost` is set when the gate could not ask (the one could-not-ask type, gate.errors.
    Unreachable); `error` when the box answered badly.
    """

    value: T | None = None
    error: str = ""
    lost: Unreachable | None = None
    note: str = ""
    """A caveat every check judging this reading carries in its evidence."""

    @property
    def usable(self) -> bool:
        return not self.error and self.lost is None

    @property
    def why(self) -> str:
        """What went wrong, in words: the box's bad answer, or why it could not be asked."""
        return self.error or (str(self.lost) if self.lost is not None else "")

    def asked(self) -> Reading[T]:
        """This reading, or its Unreachable raised: a wait must see could-not-ask as such."""
        if self.lost is not None:
            raise self.lost
        return self


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def from_reading(name: str, reading: Reading[Any], expected: str) -> CheckRecord | None:
    """The record for a reading that cannot be judged, or None when it can."""
    if reading.lost is not None:
        return CheckRecord(
            name, Verdict.INCONCLUSIVE, expected, "could not ask", f"could not ask: {reading.lost}"
        )
    if reading.error:
        return CheckRecord(name, Verdict.FAIL, expected, _short(reading.error), reading.error)
    return None


def service_entries(data: Any, spec: Services) -> dict[str, Mapping[str, Any]]:
    """Service name -> its entry, from an object keyed by name or a list of named objects.

    A ValueError names the entry that does not fit the shape the contract declared."""
    found = jmespath.search(spec.at, data)
    if isinstance(found, Mapping):
        items = [(f"{spec.at}.{name}", str(name), info) for name, info in found.items()]
    elif isinstance(found, list):
        items = [(f"{spec.at}[{i}]", _named(info, spec), info) for i, info in enumerate(found)]
    else:
        raise ValueError(f"probe {spec.probe} has no services object or list at '{spec.at}'")
    entries: dict[str, Mapping[str, Any]] = {}
    for where, name, info in items:
        if not isinstance(info, Mapping) or not name:
            needs = f"'{spec.state}'" + (
                "" if isinstance(found, Mapping) else f" and '{spec.name}'"
            )
            raise ValueError(
                f"probe {spec.probe} {where} is {type(info).__name__} {_short(info, 40)}, "
                f"not an object with {needs}"
            )
        if name in entries:
            raise ValueError(f"probe {spec.probe} {where} repeats service {name!r}")
        entries[name] = info
    return entries


def _named(info: Any, spec: Services) -> str:
    name = info.get(spec.name) if isinstance(info, Mapping) else None
    return name if isinstance(name, str) else ""


def service_states(data: Any, spec: Services) -> dict[str, str]:
    """Service name -> state as the probe reports it."""
    return {
        name: str(info.get(spec.state, "?")) for name, info in service_entries(data, spec).items()
    }


def _states_or_record(
    name: str, reading: Reading[Any], want: str, spec: Services
) -> dict[str, str] | CheckRecord:
    """The service states, or the record for a reading that cannot be judged."""
    if (early := from_reading(name, reading, want)) is not None:
        return early
    try:
        return service_states(reading.value, spec)
    except ValueError as exc:
        return CheckRecord(name, Verdict.FAIL, want, "unreadable", str(exc))


SERVICES_RUNNING = "services: every expected service running"


def check_services_running(
    reading: Reading[Any], expected: frozenset[str], spec: Services
) -> CheckRecord:
    """Every expected service is present and running, by exact name."""
    name = SERVICES_RUNNING
    want = ", ".join(sorted(expected))
    states = _states_or_record(name, reading, want, spec)
    if isinstance(states, CheckRecord):
        return states
    if not expected:
        return CheckRecord(name, Verdict.FAIL, want, "", "the contract expects no service")
    bad = {s: states.get(s, "absent") for s in sorted(expected) if states.get(s) != spec.running}
    observed = ", ".join(f"{s}={st}" for s, st in sorted(states.items()))
    if bad:
        detail = ", ".join(f"{s} is {st}" for s, st in bad.items())
        return CheckRecord(name, Verdict.FAIL, want, observed, detail)
    return CheckRecord(name, Verdict.PASS, want, observed, f"{len(expected)} running")


def check_no_unexpected(
    reading: Reading[Any], expected: frozenset[str], spec: Services
) -> CheckRecord:
    """No service outside the expected set exists (exact names: node is not node-exporter)."""
    name = "services: no unexpected service"
    want = "only " + ", ".join(sorted(expected))
    states = _states_or_record(name, reading, want, spec)
    if isinstance(states, CheckRecord):
        return states
    if not states:
        return CheckRecord(name, Verdict.FAIL, want, "none", "status listed no service at all")
    present = {s for s, st in states.items() if st not in spec.absent}
    extra = sorted(present - expected)
    observed = ", ".join(sorted(present))
    if extra:
        return CheckRecord(name, Verdict.FAIL, want, observed, "unexpected: " + ", ".join(extra))
    return CheckRecord(name, Verdict.PASS, want, observed, f"{len(present)} present, none extra")


def check_status_exit(exit_code: Reading[int]) -> CheckRecord:
    """The stack's own status verdict: exit code exactly 0."""
    name = "status: exit code 0"
    if (early := from_reading(name, exit_code, "0")) is not None:
        return early
    code = exit_code.value
    verdict = Verdict.PASS if code == 0 else Verdict.FAIL
    return CheckRecord(name, verdict, "0", str(code), f"status exited {code}")


def check_field(reading: Reading[Any], check: Check, ctx: Context) -> CheckRecord:
    """One jmespath expression over a probe's reading against its declared expectation."""
    name = f"{check.probe}: {check.name}"
    expected = f"{check.expression} {check.expect.describe(ctx)}"
    if (early := from_reading(name, reading, expected)) is not None:
        return early
    try:
        observed = jmespath.search(check.expression, reading.value)
    except JMESPathError as exc:
        return CheckRecord(name, Verdict.FAIL, expected, "error", f"jmespath: {exc}")
    verdict = Verdict.PASS if check.expect.holds(observed, ctx) else Verdict.FAIL
    shown = "missing" if observed is None else json.dumps(observed)
    evidence = f"{check.expression} = {shown}"
    if observed is None and verdict is Verdict.FAIL:
        evidence = f"{check.expression}: absent from probe {check.probe}"
    if reading.note:
        evidence += f"; {reading.note}"
    return CheckRecord(name, verdict, expected, shown, evidence)


def check_auth_refused(probe: str, answer: Reading[Any], credential: str = "none") -> CheckRecord:
    """The positive control of an authenticated endpoint: without credentials, or with a
    wrong one, it refuses."""
    asked = "without credentials" if credential == "none" else "with a wrong credential"
    name = f"auth: {probe} refuses a request {asked}"
    want = "HTTP 401 or 403"
    if (early := from_reading(name, answer, want)) is not None:
        return early
    reply: Mapping[str, Any] = answer.value or {}
    if reply.get("error"):
        return CheckRecord(name, Verdict.FAIL, want, "no answer", str(reply["error"]))
    code = reply.get("code")
    verdict = Verdict.PASS if code in (401, 403) else Verdict.FAIL
    evidence = "refused" if verdict is Verdict.PASS else f"NOT refused: answered {asked}"
    return CheckRecord(name, verdict, want, f"HTTP {code}", evidence)


def check_in_use(
    answers: Reading[list[dict[str, Any]]], uses: tuple[InUse, ...]
) -> list[CheckRecord]:
    """Each declared secret is present in its rendered file (compared on the box)."""
    records = []
    by_use = {(a.get("secret"), a.get("file")): a for a in answers.value or []}
    for use in uses:
        name = f"secrets: {use.secret} in use in {use.file}"
        if (early := from_reading(name, answers, "present")) is not None:
            records.append(early)
            continue
        found = by_use.get((use.secret, use.file), {})
        present = found.get("present")
        shown = {True: "present", False: "absent", None: "file unreadable"}.get(present, "?")
        verdict = Verdict.PASS if present is True else Verdict.FAIL
        why = "compared on the box as a whole token"
        if not found.get("secret_set"):
            why = f"{use.secret} is missing or empty in the env file"
        records.append(CheckRecord(name, verdict, "present", shown, why))
    return records


def check_secrets_present(prints: Reading[Mapping[str, Mapping[str, str]]]) -> CheckRecord:
    """The contract's secret patterns matched something: an empty set proves nothing."""
    name = "secrets: fingerprinted on the box"
    if (early := from_reading(name, prints, ">= 1 secret")) is not None:
        return early
    assert prints.value is not None
    counts = {category: len(items) for category, items in prints.value.items()}
    total = sum(counts.values())
    observed = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
    if total == 0:
        detail = "no secret matched the contract's patterns; an empty set cannot prove 'kept'"
        return CheckRecord(name, Verdict.FAIL, ">= 1 secret", observed, detail)
    return CheckRecord(name, Verdict.PASS, ">= 1 secret", observed, f"{total} fingerprints")


def check_secrets_kept(
    baseline: Mapping[str, Mapping[str, str]], now: Reading[Mapping[str, Mapping[str, str]]]
) -> CheckRecord:
    """Every baseline secret is still there with the same fingerprint."""
    name = "secrets: kept (fingerprints equal the baseline)"
    total = sum(len(items) for items in baseline.values())
    if (early := from_reading(name, now, f"{total} unchanged")) is not None:
        return early
    assert now.value is not None
    if total == 0:
        return CheckRecord(name, Verdict.FAIL, "", "", "the baseline holds no secret to compare")
    changed = [
        f"{category}:{key} {'changed' if key in now.value.get(category, {}) else 'removed'}"
        for category, items in sorted(baseline.items())
        for key, digest in sorted(items.items())
        if now.value.get(category, {}).get(key) != digest
    ]
    added = [
        f"{category}:{key}"
        for category, items in sorted(now.value.items())
        for key in sorted(items)
        if key not in baseline.get(category, {})
    ]
    note = f"new since the baseline (left in place): {', '.join(added)}" if added else ""
    if changed:
        return CheckRecord(name, Verdict.FAIL, f"{total} unchanged", "; ".join(changed), note)
    return CheckRecord(name, Verdict.PASS, f"{total} unchanged", f"{total} unchanged", note)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The run's verdict: any fail beats inconclusive beats pass; skips alone pass."""
    seen = set(verdicts)
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        if verdict in seen:
            return verdict
    return Verdict.PASS
