"""The user's config matrix: axes, scenarios, requirements; validated, expanded, covered.

    Matrix(axes=(Axis("pool.tier", ("mini", "main", "nano")), ...),
           scenarios=(Scenario("main-secure", {"pool.tier": "main", ...}), ...))

Values are JSON-typed: `True` is a boolean and "8000" stays a string. The first value of
each axis is the stack's default, used when planning coverage without a box. A value may
be a `Fact`, filled from the inventory's [requirements] or `--fact`; a scenario whose
requirement is unmet becomes a named skip with a class instead of running.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gate.checks import SkipClass
from gate.contract import Config, lookup
from gate.errors import UsageError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
JSON_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Fact:
    """A value only the box's owner knows (an endpoint, a spare data dir): a requirement."""

    name: str
    skip: str = "missing"
    why: str = ""
    touches: tuple[str, ...] | None = None
    """The services a change of the path this fact fills may recreate (as Axis.touches)."""


@dataclass(frozen=True)
class Axis:
    """A dotted config path and the values users run it with; the first is the default."""

    path: str
    values: tuple[Any, ...]
    touches: tuple[str, ...] | None = None
    """The services a change of this axis may recreate (names or globs, "worker-*"); every
    other one must keep its pid. None: not declared (its changes are held to no scope)."""


@dataclass(frozen=True)
class Scenario:
    """A named set of overrides, and the facts it needs."""

    name: str
    overrides: Mapping[str, Any]
    note: str = ""

    def facts(self) -> list[Fact]:
        return [v for v in self.overrides.values() if isinstance(v, Fact)]


@dataclass(frozen=True)
class Skip:
    """Why a scenario will not run, and the class of that gap."""

    scenario: str
    skip_class: SkipClass
    reason: str


@dataclass(frozen=True)
class Matrix:
    axes: tuple[Axis, ...]
    scenarios: tuple[Scenario, ...]
    ready_timeout: float = 120.0

    def axis(self, path: str) -> Axis | None:
        return next((a for a in self.axes if a.path == path), None)

    def touches(self, path: str) -> tuple[str, ...] | None:
        """What a change of `path` may recreate: its axis's or its fact's declaration."""
        axis = self.axis(path)
        if axis is not None:
            return axis.touches
        facts = [
            s.overrides[path] for s in self.scenarios if isinstance(s.overrides.get(path), Fact)
        ]
        declared = [f.touches for f in facts if f.touches is not None]
        return declared[0] if declared else None

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        known = ", ".join(s.name for s in self.scenarios)
        raise UsageError(f"unknown scenario {name!r}; known: {known}")

    def select(self, names: tuple[str, ...]) -> list[Scenario]:
        return [self.scenario(n) for n in names] if names else list(self.scenarios)


def validate_matrix(matrix: object) -> Matrix:
    """A malformed matrix is a usage error, one line, before anything touches a box."""
    if not isinstance(matrix, Matrix):
        raise UsageError("matrix.py: MATRIX must be a gate.matrix.Matrix")
    paths = [a.path for a in matrix.axes]
    if len(set(paths)) != len(paths):
        raise UsageError("matrix.py: an axis is declared twice")
    for axis in matrix.axes:
        _validate_axis(axis)
    names = [s.name for s in matrix.scenarios]
    if not names:
        raise UsageError("matrix.py: the matrix declares no scenario")
    if len(set(names)) != len(names):
        raise UsageError("matrix.py: a scenario name is used twice")
    for scenario in matrix.scenarios:
        _validate_scenario(scenario, matrix)
    return matrix


def _validate_axis(axis: Axis) -> None:
    if not axis.values:
        raise UsageError(f"matrix.py: axis {axis.path} has no values")
    for value in axis.values:
        if not isinstance(value, JSON_SCALARS):
            raise UsageError(f"matrix.py: axis {axis.path} value {value!r} is not a JSON scalar")
    if len({_typed(v) for v in axis.values}) != len(axis.values):
        raise UsageError(f"matrix.py: axis {axis.path} repeats a value")


def _typed(value: Any) -> tuple[str, Any]:
    """A key that tells True from 1 and "8000" from 8000."""
    return (type(value).__name__, value)


def _validate_scenario(scenario: Scenario, matrix: Matrix) -> None:
    if not NAME.match(scenario.name):
        raise UsageError(f"matrix.py: scenario name {scenario.name!r} must match {NAME.pattern}")
    for path, value in scenario.overrides.items():
        if isinstance(value, Fact):
            continue
        axis = matrix.axis(path)
        if axis is not None and _typed(value) not in {_typed(v) for v in axis.values}:
            allowed = ", ".join(repr(v) for v in axis.values)
            raise UsageError(
                f"scenario {scenario.name}: {path}={value!r} is outside the axis ({allowed})"
            )


def check_paths(matrix: Matrix, scenarios: list[Scenario], cfg: Config) -> None:
    """Every overridden path exists in the box's config (read before any change)."""
    for scenario in scenarios:
        for path in scenario.overrides:
            try:
                lookup(cfg, path)
            except KeyError:
                raise UsageError(
                    f"scenario {scenario.name}: the config has no path {path}"
                ) from None
    for axis in matrix.axes:
        try:
            lookup(cfg, axis.path)
        except KeyError:
            raise UsageError(f"matrix.py: axis {axis.path} is not a path of the config") from None


def with_value(base: Config, path: str, value: Any) -> dict[str, Any]:
    """A copy of `base` with the dotted `path` set (created where `base` lacks it), in memory
    as boxtool render does it on the box."""
    result: dict[str, Any] = copy.deepcopy(dict(base))
    node = result
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return result


def unmet(scenario: Scenario, facts: Mapping[str, str]) -> Skip | None:
    """The skip for a scenario whose facts are not all known, else None."""
    for fact in scenario.facts():
        if not facts.get(fact.name):
            reason = fact.why or f"needs the fact {fact.name} (inventory [requirements] or --fact)"
            return Skip(scenario.name, SkipClass.parse(fact.skip), reason)
    return None


def resolve_overrides(scenario: Scenario, facts: Mapping[str, str]) -> dict[str, Any]:
    """Overrides with every Fact replaced by its value."""
    return {p: facts[v.name] if isinstance(v, Fact) else v for p, v in scenario.overrides.items()}


def assignment(matrix: Matrix, scenario: Scenario, base: Config | None = None) -> dict[str, Any]:
    """Each axis's value in a scenario: overridden, else the base config's, else the default."""
    values: dict[str, Any] = {}
    for axis in matrix.axes:
        if axis.path in scenario.overrides and not isinstance(scenario.overrides[axis.path], Fact):
            values[axis.path] = scenario.overrides[axis.path]
        elif base is not None:
            values[axis.path] = lookup(base, axis.path)
        else:
            values[axis.path] = axis.values[0]
    return values


@dataclass
class Coverage:
    """Which values of each axis some runnable scenario exercises, and the pair share."""

    per_axis: dict[str, list[tuple[Any, list[str]]]] = field(default_factory=dict)
    pairs_covered: int = 0
    pairs_total: int = 0

    @property
    def uncovered(self) -> list[str]:
        return [f"{p}={v!r}" for p, rows in self.per_axis.items() for v, who in rows if not who]

    @property
    def pair_share(self) -> float:
        return self.pairs_covered / self.pairs_total if self.pairs_total else 1.0


def coverage(matrix: Matrix, scenarios: list[Scenario], base: Config | None = None) -> Coverage:
    """Coverage over the given (runnable) scenarios."""
    assignments = {s.name: assignment(matrix, s, base) for s in scenarios}
    result = Coverage()
    for axis in matrix.axes:
        result.per_axis[axis.path] = [
            (v, [n for n, a in assignments.items() if _typed(a[axis.path]) == _typed(v)])
            for v in axis.values
        ]
    seen = {
        frozenset({(p, _typed(v)) for p, v in pair})
        for a in assignments.values()
        for pair in itertools.combinations(a.items(), 2)
    }
    for left, right in itertools.combinations(matrix.axes, 2):
        for lv, rv in itertools.product(left.values, right.values):
            result.pairs_total += 1
            key = frozenset({(left.path, _typed(lv)), (right.path, _typed(rv))})
            result.pairs_covered += key in seen
    return result


def describe(matrix: Matrix, facts: Mapping[str, str]) -> list[str]:
    """The `--list` text: scenarios (with skips), axes, coverage."""
    lines = ["scenarios:"]
    runnable = []
    for scenario in matrix.scenarios:
        skip = unmet(scenario, facts)
        shown = ", ".join(f"{p}={_show(v)}" for p, v in scenario.overrides.items()) or "(baseline)"
        status = f"  SKIP ({skip.skip_class}: {skip.reason})" if skip else ""
        lines.append(f"  {scenario.name:<24} {shown}{status}")
        if skip is None:
            runnable.append(scenario)
    cover = coverage(matrix, runnable)
    lines.append("axes (value: runnable scenarios that set it):")
    for path, rows in cover.per_axis.items():
        shown = "; ".join(f"{v!r}: {len(who)}" for v, who in rows)
        lines.append(f"  {path:<20} {shown}")
    lines.append(
        f"pairs covered: {cover.pairs_covered}/{cover.pairs_total} ({cover.pair_share:.0%})"
    )
    if cover.uncovered:
        lines.append("NOT COVERED: " + ", ".join(cover.uncovered))
    return lines


def _show(value: Any) -> str:
    return f"<fact {value.name}>" if isinstance(value, Fact) else repr(value)
