"""What a change restarted: each running service's identity (pid, start time) before and
after, held to the change's scope and, for a second apply, to nothing at all.

An identity is only evidence when the stack reports a real one (a positive pid, a start
time): a stack that reports none, or 0, or "", cannot show a restart, and the check says
so (a missing-class skip) instead of passing.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from gate.box import Box
from gate.checks import CheckRecord, SkipClass, Verdict, service_entries
from gate.contract import Config
from gate.matrix import Matrix
from gate.observe import read_probe

Clock = dict[str, tuple[Any, ...]]
"""Each running service's identity as the stack reports it: (pid,), (pid, started)..."""

SCOPE = "scope: services outside the change kept their pids"
RESTARTED = "idempotent: no service restarted"
UNOBSERVABLE = "the services probe reports no pid or start time: restarts are not observable"


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


def known(identity: tuple[Any, ...]) -> bool:
    """Whether an identity holds something a restart changes: a pid > 0, a start time."""
    return any(
        (isinstance(v, int | float) and not isinstance(v, bool) and v > 0)
        or (isinstance(v, str) and v.strip() not in ("", "0"))
        for v in identity
    )


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


def _unreadable(name: str, before: Clock | str, after: Clock | str) -> CheckRecord | None:
    if isinstance(before, str) or isinstance(after, str):
        why = before if isinstance(before, str) else after
        return CheckRecord(name, Verdict.FAIL, "pids readable", "unreadable", str(why))
    return None


def _blind(name: str, before: Clock) -> CheckRecord:
    return CheckRecord(name, Verdict.SKIP, evidence=UNOBSERVABLE, skip_class=SkipClass.MISSING)


def _unseen(before: Clock) -> str:
    blind = sorted(s for s, identity in before.items() if not known(identity))
    return f"; no pid or start time reported for: {', '.join(blind)}" if blind else ""


def scope(
    matrix: Matrix, previous: Config, cfg: Config, before: Clock | str, after: Clock | str
) -> list[CheckRecord]:
    """A change recreates only the services the changed paths declare they touch: every
    other service that ran before runs after with the same identity."""
    if (bad := _unreadable(SCOPE, before, after)) is not None:
        return [bad]
    assert isinstance(before, dict) and isinstance(after, dict)
    seen = {s: identity for s, identity in before.items() if known(identity)}
    if not seen:
        return [_blind(SCOPE, before)]
    changed = changed_paths(previous, cfg)
    touched: set[str] = set()
    for path in changed:
        touches = matrix.touches(path)
        if touches is None:
            why = f"{path} changed and declares no touches (on its Axis or Fact)"
            return [_scope_skip(f"{why}: the change's scope is unknown")]
        touched.update(touches)
    kept = sorted(s for s in seen if not any(fnmatchcase(s, t) for t in touched))
    if not kept:
        return [_scope_skip("no running service lies outside the change")]
    moved = [s for s in kept if after.get(s) != seen[s]]
    shown = ", ".join(changed) or "nothing"
    expected = f"{len(kept)} unchanged outside {', '.join(sorted(touched)) or 'nothing'}"
    evidence = f"changed {shown}{_unseen(before)}"
    if moved:
        observed = "recreated or stopped: " + ", ".join(moved)
        return [CheckRecord(SCOPE, Verdict.FAIL, expected, observed, f"{evidence}; {observed}")]
    return [CheckRecord(SCOPE, Verdict.PASS, expected, f"{len(kept)} unchanged", evidence)]


def _scope_skip(why: str) -> CheckRecord:
    return CheckRecord(SCOPE, Verdict.SKIP, evidence=why, skip_class=SkipClass.BY_DESIGN)


def restarted(before: Clock | str, after: Clock | str, fields: list[str]) -> CheckRecord:
    """The restart half of idempotency, naming exactly what was compared."""
    if (bad := _unreadable(RESTARTED, before, after)) is not None:
        return bad
    assert isinstance(before, dict) and isinstance(after, dict)
    seen = {s: identity for s, identity in before.items() if known(identity)}
    if not fields or not seen:
        return _blind(RESTARTED, before)
    moved = sorted(s for s in seen if after.get(s) != seen[s])
    moved += sorted(s for s in set(after) - set(before))  # started by the second apply
    compared = " and ".join(fields)
    evidence = f"{compared} of {len(seen)} services compared before and after the second apply"
    return CheckRecord(
        RESTARTED,
        Verdict.FAIL if moved else Verdict.PASS,
        f"{len(seen)} unchanged",
        "restarted: " + ", ".join(moved) if moved else f"{len(seen)} unchanged",
        evidence + _unseen(before),
    )


RENEWED = "every running service restarted (new pid or start time)"


def renewed(before: Clock | str, after: Clock | str, fields: list[str]) -> CheckRecord:
    """A restart of the whole stack: every service that ran before runs after with a new
    identity; one that kept its own was not restarted, one that is gone did not come back."""
    if (bad := _unreadable(RENEWED, before, after)) is not None:
        return bad
    assert isinstance(before, dict) and isinstance(after, dict)
    seen = {s: identity for s, identity in before.items() if known(identity)}
    if not fields or not seen:
        return _blind(RENEWED, before)
    kept = sorted(s for s in seen if after.get(s) == seen[s])
    gone = sorted(s for s in seen if s not in after)
    compared = " and ".join(fields)
    evidence = f"{compared} of {len(seen)} services compared before and after the restart"
    problems = (["not restarted: " + ", ".join(kept)] if kept else []) + (
        ["not running after: " + ", ".join(gone)] if gone else []
    )
    return CheckRecord(
        RENEWED,
        Verdict.FAIL if problems else Verdict.PASS,
        f"{len(seen)} restarted",
        "; ".join(problems) or f"{len(seen)} restarted",
        evidence + _unseen(before),
    )
