"""Two runs side by side: checks whose verdict changed, new skips, timings that moved (apply,
ready, fault detect and recover) and a changed stack version. Pure: two RunDirs in.

`invoke gate --compare RUN_A --compare RUN_B` prints it; report.html has it against the last
passing run on the same box found next to the run (`last_passing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.report.rundir import RunDir, load

MOVED_S = 1.0
"""A timing moved when it changed by more than this many seconds..."""
MOVED_RATIO = 0.5
"""...and by more than this share of the earlier value (noise on short waits is not news)."""

Key = tuple[str, str]
"""(scenario or phase, check name): a check's identity across runs."""


@dataclass(frozen=True)
class Moved:
    what: str
    before: float
    after: float


@dataclass
class Comparison:
    before: str
    after: str
    verdicts: list[tuple[Key, str, str]] = field(default_factory=list)
    new_skips: list[tuple[Key, str]] = field(default_factory=list)
    timings: list[Moved] = field(default_factory=list)
    stack: tuple[Any, Any] | None = None
    """(before, after) when the stack's version changed."""

    @property
    def empty(self) -> bool:
        return not (self.verdicts or self.new_skips or self.timings or self.stack)


def compare(before: RunDir, after: RunDir) -> Comparison:
    result = Comparison(before.run_id, after.run_id)
    old, new = _by_key(before.checks), _by_key(after.checks)
    for key, check in new.items():
        was = old.get(key)
        if was is not None and was["verdict"] != check["verdict"]:
            result.verdicts.append((key, str(was["verdict"]), str(check["verdict"])))
        if check["verdict"] == "skip" and (was is None or was["verdict"] != "skip"):
            result.new_skips.append((key, str(check.get("skip_class"))))
    old_times, new_times = timings(before), timings(after)
    for what, value in new_times.items():
        earlier = old_times.get(what)
        if earlier is not None and _moved(earlier, value):
            result.timings.append(Moved(what, earlier, value))
    stacks = before.manifest.get("stack"), after.manifest.get("stack")
    if stacks[0] != stacks[1]:
        result.stack = stacks
    return result


def _by_key(checks: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(str(c.get("scenario") or c.get("phase")), str(c["name"])): c for c in checks}


def timings(run: RunDir) -> dict[str, float]:
    """What took time that a regression shows in: each apply and readiness wait (by
    scenario or phase), each fault's detection and recovery."""
    found: dict[str, float] = {}
    for check in run.checks:
        name = str(check["name"]).removeprefix("restore: ")
        if name in ("apply succeeded", "ready") and check.get("verdict") == "pass":
            found[f"{check.get('scenario') or check.get('phase')}: {name}"] = float(
                check.get("duration", 0.0)
            )
    for fault in (run.summary or {}).get("faults", []):
        for step in ("detect_s", "recover_s"):
            if isinstance(fault.get(step), int | float):
                found[f"{fault.get('phase')}: {fault.get('fault')}: {step}"] = float(fault[step])
    return found


def _moved(before: float, after: float) -> bool:
    change = abs(after - before)
    return change > MOVED_S and change > MOVED_RATIO * max(before, 1e-9)


def last_passing(run: RunDir) -> RunDir | None:
    """The newest earlier run next to this one that passed against the same box."""
    began = run.started or 0.0
    best: RunDir | None = None
    for other in sorted(run.path.parent.iterdir()) if run.path.parent.is_dir() else []:
        if other == run.path or not (other / "summary.json").is_file():
            continue
        candidate = _quiet_load(other)
        if candidate is None or (candidate.summary or {}).get("exit_code") != 0:
            continue
        started = candidate.started or 0.0
        if (
            same_kind(candidate, run)
            and started < began
            and (best is None or started > (best.started or 0))
        ):
            best = candidate
    return best


def same_kind(one: RunDir, other: RunDir) -> bool:
    """The same box (host, target, stack dir), the same contract and the same mode: a
    `--check` is no reference for a matrix, nor another contract's run for this one."""
    keys = ("host", "target", "stack_dir", "mode")
    contract = [str((r.manifest.get("contract") or {}).get("sha256", "")) for r in (one, other)]
    return contract[0] == contract[1] and all(
        one.manifest.get(k) == other.manifest.get(k) for k in keys
    )


def seconds_last_time(run_dir: Path) -> dict[str, float]:
    """What each scenario took in the last passing run on this run's box ({} if none)."""
    current = _quiet_load(run_dir)
    previous = last_passing(current) if current is not None else None
    return previous.scenario_seconds() if previous is not None else {}


def _quiet_load(path: Path) -> RunDir | None:
    try:
        return load(path)
    except UsageError:  # another run's dir we cannot read is not this run's problem
        return None


def as_text(result: Comparison) -> str:
    """The comparison as plain lines (the console, and the CLI)."""
    lines = [f"compare {result.before} -> {result.after}"]
    if result.empty:
        return lines[0] + ": no verdict, skip, timing or stack version changed\n"
    if result.stack:
        lines.append(f"stack version: {result.stack[0]} -> {result.stack[1]}")
    for (where, name), was, now in result.verdicts:
        lines.append(f"verdict: [{where}] {name}: {was} -> {now}")
    for (where, name), skip_class in result.new_skips:
        lines.append(f"new skip ({skip_class}): [{where}] {name}")
    for moved in result.timings:
        lines.append(f"timing: {moved.what}: {moved.before:.2f}s -> {moved.after:.2f}s")
    return "\n".join(lines) + "\n"
