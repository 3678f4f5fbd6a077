"""A run on one time axis: phases, scenarios, changes (applies, injections), waits with their
polls, fault steps and the restore, as lanes of bars and ticks. Pure: RunDir in, data out.

Sources, all on the wall clock the artifacts share: timeline.jsonl (phase starts, wait
polls, from the console), events.jsonl (every command with start and end), summary.json's
check records (finished_at and duration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gate.report.rundir import RunDir

FAULT_STEP = re.compile(r"^(?P<fault>.+): (?P<step>armed|injected|degraded|held|recovered)\b")
VERDICT_ORDER = ("fail", "inconclusive", "pass", "skip")


@dataclass(frozen=True)
class Bar:
    start: float
    end: float
    label: str
    kind: str
    """scenario, phase, change, wait, fault, restore: the CSS class and the test's hook."""
    state: str = ""
    """A verdict (pass, fail, ...) or empty: the bar's colour."""
    detail: str = ""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    kind: str
    state: str = ""


@dataclass
class Lane:
    name: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)


@dataclass
class Timeline:
    start: float
    end: float
    lanes: list[Lane]

    @property
    def span(self) -> float:
        return max(self.end - self.start, 1e-6)


def worst(verdicts: Iterable[str]) -> str:
    seen = set(verdicts)
    return next((v for v in VERDICT_ORDER if v in seen), "")


def build(run: RunDir) -> Timeline:
    """The lanes of one run; an unfinished run ends at its last known instant."""
    phases = _phase_marks(run.marks)
    checks = run.checks
    instants = [m["t"] for m in run.marks] + [e.get("end", 0) for e in run.events]
    instants += [c["finished_at"] for c in checks if "finished_at" in c]
    ended = (run.summary or {}).get("ended")
    start = run.started or min(instants, default=0.0)
    end = float(ended) if isinstance(ended, int | float) else max(instants, default=start)
    lanes = [
        Lane("phases", bars=_phase_bars(phases, end)),
        Lane("scenarios", bars=_scenario_bars(checks, phases, end)),
        _changes(run.events),
        _waits(run.marks),
        _faults(checks),
        Lane("restore", bars=_restore_bars(checks, phases, end)),
    ]
    _failure_ticks(lanes[1], checks)
    return Timeline(start, max(end, start), lanes)


def _phase_marks(marks: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    return [
        (float(m["t"]), str(m.get("name", "")), str(m.get("detail", "")))
        for m in marks
        if m.get("kind") == "phase" and isinstance(m.get("t"), int | float)
    ]


def _phase_bars(phases: list[tuple[float, str, str]], end: float) -> list[Bar]:
    """Each phase from its start to the next one's (scenarios are folded into `matrix`)."""
    bars: list[Bar] = []
    for i, (at, name, detail) in enumerate(phases):
        until = phases[i + 1][0] if i + 1 < len(phases) else end
        label = "matrix" if name.startswith("scenario ") else name
        if bars and bars[-1].label == label:
            bars[-1] = Bar(bars[-1].start, until, label, "phase", detail=bars[-1].detail)
        else:
            bars.append(Bar(at, until, label, "phase", detail=detail))
    return bars


def _scenario_bars(
    checks: list[dict[str, Any]], phases: list[tuple[float, str, str]], end: float
) -> list[Bar]:
    """One bar per scenario: from its phase mark (else its first record) to the next phase
    (else its last record); coloured by its worst verdict."""
    starts = {name.removeprefix("scenario "): i for i, (_, name, _) in enumerate(phases)}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        if check.get("phase") == "matrix" and check.get("scenario"):
            by_name.setdefault(str(check["scenario"]), []).append(check)
    bars = []
    for name, records in by_name.items():
        first = min(r["finished_at"] - r.get("duration", 0.0) for r in records)
        last = max(r["finished_at"] for r in records)
        if name in starts:
            i = starts[name]
            first = phases[i][0]
            last = phases[i + 1][0] if i + 1 < len(phases) else max(last, end)
        state = worst(str(r["verdict"]) for r in records)
        counts = {v: sum(r["verdict"] == v for r in records) for v in VERDICT_ORDER}
        detail = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        bars.append(Bar(first, last, name, "scenario", state, detail))
    return bars


def _changes(events: list[dict[str, Any]]) -> Lane:
    """Every command that changed the stack (applies, injections, heals, the restore)."""
    lane = Lane("changes")
    for event in events:
        if event.get("kind") != "mutate" or "start" not in event:
            continue
        state = {"ok": "pass", "failed": "fail", "unreachable": "inconclusive"}.get(
            str(event.get("status")), ""
        )
        command = str(event.get("command", ""))
        detail = f"exit {event.get('exit')} after {event.get('duration', 0):.2f}s: {command}"
        lane.bars.append(
            Bar(float(event["start"]), float(event["end"]), _verb(command), "change", state, detail)
        )
    return lane


def _verb(command: str) -> str:
    """A short name for a command: the words after the control program, else its start."""
    words = [w for w in command.split() if not w.startswith("-") and "/" not in w]
    return " ".join(words[:3])[:40] or command[:40]


def _waits(marks: list[dict[str, Any]]) -> Lane:
    """A wait is a run of polls of one name; a bar from its first to its last poll, a tick
    per poll (red when it could not ask, green when it saw the signal)."""
    lane = Lane("waits")
    polls = [m for m in marks if m.get("kind") == "poll" and isinstance(m.get("t"), int | float)]
    group: list[dict[str, Any]] = []
    for poll in [*polls, None]:
        if group and (poll is None or _new_wait(group[-1], poll)):
            last = group[-1]
            state = "inconclusive" if last.get("lost") else "pass" if last.get("ready") else "fail"
            detail = f"{len(group)} polls; last seen {last.get('seen', '')}"
            lane.bars.append(
                Bar(group[0]["t"], last["t"], str(last.get("name")), "wait", state, detail)
            )
            group = []
        if poll is not None:
            group.append(poll)
            state = "inconclusive" if poll.get("lost") else "pass" if poll.get("ready") else ""
            lane.ticks.append(Tick(poll["t"], str(poll.get("seen", "")), "poll", state))
    return lane


def _new_wait(previous: dict[str, Any], poll: dict[str, Any]) -> bool:
    return (
        poll.get("name") != previous.get("name")
        or bool(previous.get("ready"))
        or float(poll.get("remaining", 0)) > float(previous.get("remaining", 0))
    )


def _faults(checks: list[dict[str, Any]]) -> Lane:
    """Each fault's steps as bars: armed, injected, degraded (detect), held, recovered."""
    lane = Lane("faults")
    for check in checks:
        found = FAULT_STEP.match(str(check.get("name", "")))
        if not found or check.get("phase") in ("matrix", "restore", "baseline"):
            continue
        end = float(check["finished_at"])
        start = end - float(check.get("duration", 0.0))
        step = found["step"]
        label = f"{found['fault']}: {step}"
        lane.bars.append(
            Bar(start, end, label, "fault", str(check["verdict"]), str(check.get("evidence", "")))
        )
        if step == "degraded":
            lane.ticks.append(Tick(start, f"{found['fault']}: injected", "inject"))
    return lane


def _restore_bars(
    checks: list[dict[str, Any]], phases: list[tuple[float, str, str]], end: float
) -> list[Bar]:
    records = [c for c in checks if c.get("phase") == "restore"]
    marks = [at for at, name, _ in phases if name in ("restore", "rollback")]
    if not records and not marks:
        return []
    first = min(marks) if marks else min(r["finished_at"] - r.get("duration", 0) for r in records)
    last = max([r["finished_at"] for r in records], default=end)
    state = worst(str(r["verdict"]) for r in records)
    return [Bar(first, last, "restore", "restore", state, f"{len(records)} checks")]


def _failure_ticks(lane: Lane, checks: list[dict[str, Any]]) -> None:
    for check in checks:
        if check.get("verdict") in ("fail", "inconclusive") and "finished_at" in check:
            where = f"[{check.get('scenario') or check.get('phase')}] "
            lane.ticks.append(
                Tick(
                    float(check["finished_at"]),
                    where + str(check["name"]),
                    "check",
                    str(check["verdict"]),
                )
            )
