"""Matrix planning: a small scenario set covering every pair of axis values, and an order for
any scenario set that restarts few services between consecutive scenarios. Pure, no I/O.

Requirements: a value that every declared scenario setting it pairs with a `Fact` (the
sample's node.mode="remote" needs remote_node_url) is *conditional*: a planned scenario with
that value carries the same Fact overrides. When the run lacks one of those facts, the value
is left out of generation (its pairs cannot be run, so planning them would only make skips);
the pair coverage then says what is missing instead of the plan pretending.

Restart cost from config A to config B: the services of B (the contract's expected services
of B) matched by the `touches` of every path whose value differs (axes and fact paths); a
path with no declared touches counts every service of B (its scope is unknown).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from gate.contract import lookup
from gate.matrix import Fact, Matrix, Scenario, coverage, with_value

SEED = 10
"""The fixed seed of the candidate shuffles: the same matrix always gets the same plan."""

STEPS = 300
"""Local-search moves tried per row removed before the larger plan is kept."""

TRIES = 1
"""Shuffled candidates per uncovered pair for each new row."""

EXHAUSTIVE = 4096
"""The most candidate columns horizontal growth searches in full (2 values x 12 rows)."""

Assignment = dict[str, Any]
Pair = tuple[tuple[str, str], tuple[str, str]]
Services = Callable[[Mapping[str, Any]], frozenset[str]]
"""A planning config (path -> value, facts as their Fact) -> the services it runs."""


def _key(value: Any) -> str:
    """A hashable key that tells True from 1 and "8000" from 8000 (as gate.matrix does)."""
    return f"{type(value).__name__}:{value!r}"


def requirements(matrix: Matrix) -> dict[tuple[str, str], dict[str, Fact]]:
    """(axis, value key) -> the Fact overrides every declared scenario setting it carries."""
    found: dict[tuple[str, str], dict[str, Fact]] = {}
    for axis in matrix.axes:
        for value in axis.values:
            setters = [
                s
                for s in matrix.scenarios
                if axis.path in s.overrides and _key(s.overrides[axis.path]) == _key(value)
            ]
            common = _common_facts(setters)
            if common:
                found[(axis.path, _key(value))] = common
    return found


def _common_facts(scenarios: list[Scenario]) -> dict[str, Fact]:
    if not scenarios:
        return {}
    first = {p: v for p, v in scenarios[0].overrides.items() if isinstance(v, Fact)}
    return {p: f for p, f in first.items() if all(s.overrides.get(p) == f for s in scenarios)}


def allowed_values(matrix: Matrix, facts: Mapping[str, str] | None) -> dict[str, list[Any]]:
    """Each axis's values the run can exercise: all when `facts` is None (no run to ask)."""
    needs = requirements(matrix)
    allowed: dict[str, list[Any]] = {}
    for axis in matrix.axes:
        kept = [
            v
            for v in axis.values
            if facts is None
            or all(facts.get(f.name) for f in needs.get((axis.path, _key(v)), {}).values())
        ]
        allowed[axis.path] = kept or [axis.values[0]]
    return allowed


def all_pairs(matrix: Matrix) -> set[Pair]:
    """Every pair of values of two different axes."""
    pairs: set[Pair] = set()
    for left, right in itertools.combinations(matrix.axes, 2):
        for lv, rv in itertools.product(left.values, right.values):
            pairs.add(((left.path, _key(lv)), (right.path, _key(rv))))
    return pairs


def pairs_of(matrix: Matrix, row: Mapping[str, Any]) -> set[Pair]:
    """The value pairs one full axis assignment covers."""
    paths = [a.path for a in matrix.axes]
    return {((a, _key(row[a])), (b, _key(row[b]))) for a, b in itertools.combinations(paths, 2)}


def pair_coverage(matrix: Matrix, rows: Sequence[Mapping[str, Any]]) -> float:
    """The share of all value pairs that some row covers (1.0 = every pair)."""
    total = all_pairs(matrix)
    seen: set[Pair] = set()
    for row in rows:
        seen |= pairs_of(matrix, row)
    return len(seen & total) / len(total) if total else 1.0


def lower_bound(matrix: Matrix) -> int:
    """No pairwise set is smaller than the product of the two largest axes."""
    sizes = sorted((len(a.values) for a in matrix.axes), reverse=True)
    return sizes[0] * sizes[1] if len(sizes) > 1 else (sizes[0] if sizes else 0)


def pairwise_rows(matrix: Matrix, facts: Mapping[str, str] | None = None) -> list[Assignment]:
    """A deterministic all-pairs set: the smaller of an IPOG build (the two largest axes'
    product, then each axis added by horizontal growth and vertical extension) and an
    AETG-style greedy (each row the best of one candidate per uncovered pair)."""
    allowed = allowed_values(matrix, facts)
    ipog, aetg = _ipog(matrix, allowed), _aetg(matrix, allowed)
    return _shrink(matrix, allowed, ipog if len(ipog) <= len(aetg) else aetg)


def _shrink(
    matrix: Matrix, allowed: Mapping[str, list[Any]], rows: list[Assignment]
) -> list[Assignment]:
    """Drop the last row and repair the lost pairs by a seeded local search, while that
    finds a full cover within STEPS moves (greedy builds often end one row over)."""
    target = _targets(matrix, allowed)
    floor = max(1, lower_bound(matrix))
    while len(rows) > floor:
        smaller = _repair(matrix, [dict(r) for r in rows[:-1]], target)
        if smaller is None:
            break
        rows = smaller
    return rows


def _repair(matrix: Matrix, rows: list[Assignment], target: set[Pair]) -> list[Assignment] | None:
    """Each move writes one uncovered pair into the row where that loses fewest pairs."""
    shuffler = random.Random(SEED)
    for _ in range(STEPS):
        missing = sorted(target - _covered(matrix, rows))
        if not missing:
            return rows
        (a, ka), (b, kb) = shuffler.choice(missing)
        value = {a: _value(matrix, a, ka), b: _value(matrix, b, kb)}
        moves = [{**row, **value} for row in rows]
        costs = [
            len(target - _covered(matrix, [*rows[:i], move, *rows[i + 1 :]]))
            for i, move in enumerate(moves)
        ]
        low = min(costs)
        pick = shuffler.choice([i for i, c in enumerate(costs) if c == low])
        rows[pick] = moves[pick]
    return None


def _covered(matrix: Matrix, rows: Sequence[Mapping[str, Any]]) -> set[Pair]:
    found: set[Pair] = set()
    for row in rows:
        found |= pairs_of(matrix, row)
    return found


def _value(matrix: Matrix, path: str, key: str) -> Any:
    axis = matrix.axis(path)
    assert axis is not None
    return next(v for v in axis.values if _key(v) == key)


def _targets(matrix: Matrix, allowed: Mapping[str, list[Any]]) -> set[Pair]:
    keys = {path: {_key(v) for v in values} for path, values in allowed.items()}
    return {p for p in all_pairs(matrix) if all(k in keys[path] for path, k in p)}


def _aetg(matrix: Matrix, allowed: Mapping[str, list[Any]]) -> list[Assignment]:
    """Candidates: one per uncovered pair, each filling the other axes in an order shuffled
    by a fixed-seed generator (AETG's random candidates, made repeatable)."""
    shuffler = random.Random(SEED)
    target = _targets(matrix, allowed)
    rows: list[Assignment] = []
    while target:
        candidates = []
        for seed in sorted(target) * TRIES:
            order = list(matrix.axes)
            shuffler.shuffle(order)
            candidates.append(_fill(matrix, order, allowed, seed, target))
        best = max(candidates, key=lambda r: len(pairs_of(matrix, r) & target))
        rows.append(best)
        target -= pairs_of(matrix, best)
    return rows


def _ipog(matrix: Matrix, allowed: Mapping[str, list[Any]]) -> list[Assignment]:
    order = [a.path for a in sorted(matrix.axes, key=lambda a: -len(allowed[a.path]))]
    if len(order) < 2:
        return [{order[0]: v} for v in allowed[order[0]]] if order else []
    first, second = allowed[order[0]], allowed[order[1]]
    rows: list[dict[str, Any]] = [
        {order[0]: a, order[1]: b} for a, b in itertools.product(first, second)
    ]
    target = _targets(matrix, allowed)
    by_key = {(p, _key(v)): v for p, vs in allowed.items() for v in vs}
    for index, path in enumerate(order[2:], start=2):
        done = order[:index]
        open_ = {p for p in target if _joins(p, path, done)}
        _grow(rows, path, done, allowed[path], open_)
        _extend(rows, path, open_, by_key)
    return [{a.path: r.get(a.path, allowed[a.path][0]) for a in matrix.axes} for r in rows]


def _joins(pair: Pair, path: str, done: Sequence[str]) -> bool:
    """Whether a pair links the axis being added to one already placed."""
    axes = {pair[0][0], pair[1][0]}
    return path in axes and axes <= {path, *done}


def _row_pairs(row: Mapping[str, Any], path: str, value: Any, done: Sequence[str]) -> set[Pair]:
    mine = (path, _key(value))
    found: set[Pair] = set()
    for other in done:
        if other in row:
            theirs = (other, _key(row[other]))
            found |= {(mine, theirs), (theirs, mine)}
    return found


def _grow(
    rows: list[dict[str, Any]], path: str, done: Sequence[str], values: list[Any], open_: set[Pair]
) -> None:
    """Horizontal growth: the column of the new axis covering most open pairs, searched in
    full when there are at most EXHAUSTIVE columns (greedy row by row can miss the only
    column that fits), else each row takes the value covering most."""
    if len(values) ** len(rows) <= EXHAUSTIVE:
        best_column = max(
            itertools.product(values, repeat=len(rows)),
            key=lambda column: len(_column_pairs(rows, path, column, done) & open_),
        )
        open_ -= _column_pairs(rows, path, best_column, done)
        for row, value in zip(rows, best_column, strict=True):
            row[path] = value
        return
    for row in rows:
        best = max(
            values,
            key=lambda v: (len(_row_pairs(row, path, v, done) & open_), _open(path, v, open_)),
        )
        row[path] = best
        open_ -= _row_pairs(row, path, best, done)


def _column_pairs(
    rows: Sequence[Mapping[str, Any]], path: str, column: Sequence[Any], done: Sequence[str]
) -> set[Pair]:
    found: set[Pair] = set()
    for row, value in zip(rows, column, strict=True):
        found |= _row_pairs(row, path, value, done)
    return found


def _extend(
    rows: list[dict[str, Any]], path: str, open_: set[Pair], by_key: Mapping[tuple[str, str], Any]
) -> None:
    """Vertical extension: each pair still open goes in a row with a free cell, or a new row."""
    for pair in sorted(open_):
        (a, ka), (b, kb) = pair
        mine, other = ((a, ka), (b, kb)) if a == path else ((b, kb), (a, ka))
        fit = next((r for r in rows if _key(r.get(path)) == mine[1] and other[0] not in r), None)
        if fit is None:
            rows.append({path: by_key[mine], other[0]: by_key[other]})
        else:
            fit[other[0]] = by_key[other]
    open_.clear()


def _fill(
    matrix: Matrix,
    order: Sequence[Any],
    allowed: Mapping[str, list[Any]],
    seed: Pair,
    target: set[Pair],
) -> Assignment:
    """One row holding the seed pair; every other axis takes the value covering most."""
    by_key = {(p, _key(v)): v for p, vs in allowed.items() for v in vs}
    row: Assignment = {path: by_key[(path, k)] for path, k in seed}
    for axis in order:
        if axis.path in row:
            continue
        row[axis.path] = max(
            allowed[axis.path],
            key=lambda v: (_gain(axis.path, v, row, target), _open(axis.path, v, target)),
        )
    return {a.path: row[a.path] for a in matrix.axes}


def _open(path: str, value: Any, target: set[Pair]) -> int:
    """How many uncovered pairs hold this value: the tie-break that keeps values balanced."""
    mine = (path, _key(value))
    return sum(mine in pair for pair in target)


def _gain(path: str, value: Any, row: Mapping[str, Any], target: set[Pair]) -> int:
    mine = (path, _key(value))
    return sum(
        (mine, other) in target or (other, mine) in target
        for other in ((p, _key(v)) for p, v in row.items())
    )


def to_scenarios(matrix: Matrix, rows: Sequence[Assignment]) -> list[Scenario]:
    """Planned rows as scenarios `pairwise-01`...; each carries its values' Fact overrides."""
    needs = requirements(matrix)
    planned = []
    for index, row in enumerate(rows, start=1):
        overrides: dict[str, Any] = dict(row)
        for path, value in row.items():
            overrides.update(needs.get((path, _key(value)), {}))
        planned.append(Scenario(f"pairwise-{index:02d}", overrides, note="planned (pairwise)"))
    return planned


def planning_config(matrix: Matrix, scenario: Scenario, start: Mapping[str, Any]) -> Assignment:
    """What a scenario sets, over `start` (the box's own axis values): axes and fact paths."""
    config = dict(start)
    config.update(scenario.overrides)
    for path in [p for p in config if p not in scenario.overrides and _is_fact_path(matrix, p)]:
        del config[path]
    return config


def _is_fact_path(matrix: Matrix, path: str) -> bool:
    return matrix.axis(path) is None


def restart_cost(
    matrix: Matrix, before: Mapping[str, Any], after: Mapping[str, Any], services: Services
) -> int:
    """Services of `after` a move from `before` recreates (see the module docstring)."""
    changed = [p for p in set(before) | set(after) if _key(before.get(p)) != _key(after.get(p))]
    running = services(after)
    hit: set[str] = set()
    for path in changed:
        touches = matrix.touches(path)
        hit |= (
            set(running)
            if touches is None
            else {s for s in running if any(fnmatchcase(s, t) for t in touches)}
        )
    return len(hit)


@dataclass(frozen=True)
class Walk:
    """A scenario order and the services it restarts in all (from the start config on)."""

    scenarios: tuple[Scenario, ...]
    restarts: int


def walk_cost(
    matrix: Matrix, scenarios: Sequence[Scenario], start: Mapping[str, Any], services: Services
) -> Walk:
    """The restarts of walking `scenarios` in the given order from `start`."""
    total, here = 0, dict(start)
    for scenario in scenarios:
        there = planning_config(matrix, scenario, start)
        total += restart_cost(matrix, here, there, services)
        here = there
    return Walk(tuple(scenarios), total)


def restart_order(
    matrix: Matrix, scenarios: Sequence[Scenario], start: Mapping[str, Any], services: Services
) -> Walk:
    """Greedy nearest neighbour from the box's own config (ties: the given order), kept
    only when it restarts no more than the given order: never worse than declared."""
    left, here, chosen = list(scenarios), dict(start), []
    while left:
        nearest = min(
            left,
            key=lambda s: restart_cost(matrix, here, planning_config(matrix, s, start), services),
        )
        chosen.append(nearest)
        left.remove(nearest)
        here = planning_config(matrix, nearest, start)
    greedy = walk_cost(matrix, chosen, start, services)
    given = walk_cost(matrix, scenarios, start, services)
    return greedy if greedy.restarts <= given.restarts else given


def default_start(matrix: Matrix) -> Assignment:
    """The axes' defaults (each first value): the start when no box is asked."""
    return {a.path: a.values[0] for a in matrix.axes}


def declared_names(matrix: Matrix) -> frozenset[str]:
    """Every literal service name the matrix's touches declare (globs left out)."""
    names = {t for a in matrix.axes for t in (a.touches or ())}
    names |= {t for s in matrix.scenarios for f in s.facts() for t in (f.touches or ())}
    return frozenset(n for n in names if not any(c in n for c in "*?["))


def services_from(
    expected: Callable[[Any], frozenset[str]], base: Mapping[str, Any], fallback: frozenset[str]
) -> Services:
    """The contract's expected services of a planning config laid over `base` (the box's
    config); `fallback` when the config is too partial to ask (no box: `--list`)."""

    def services(config: Mapping[str, Any]) -> frozenset[str]:
        full: Any = dict(base)
        for path, value in config.items():
            if not isinstance(value, Fact):
                full = with_value(full, path, value)
        try:
            return frozenset(expected(full))
        except (KeyError, TypeError, ValueError):
            return fallback

    return services


def plan_pairwise(
    matrix: Matrix,
    expected: Callable[[Any], frozenset[str]],
    base: Mapping[str, Any],
    facts: Mapping[str, str] | None,
) -> Walk:
    """The pairwise scenarios for a box whose config is `base`, in restart-minimising order
    from the box's own axis values."""
    start = box_start(matrix, base)
    services = services_from(expected, base, declared_names(matrix))
    planned = to_scenarios(matrix, pairwise_rows(matrix, facts))
    return restart_order(matrix, planned, start, services)


def box_start(matrix: Matrix, base: Mapping[str, Any]) -> Assignment:
    """The box's own value of each axis, the default where its config lacks the path."""
    start: Assignment = {}
    for axis in matrix.axes:
        try:
            start[axis.path] = lookup(base, axis.path)
        except KeyError:
            start[axis.path] = axis.values[0]
    return start


def plan_lines(matrix: Matrix, expected: Callable[[Any], frozenset[str]]) -> list[str]:
    """The `--list` text: declared, pairwise and full-product sizes with their pair
    coverage, and the restarts of each order from the axes' defaults (no box is asked, so
    every fact counts as known and the services are the contract's for the defaults)."""
    start = default_start(matrix)
    services = services_from(expected, {}, declared_names(matrix))
    declared = list(matrix.scenarios)
    rows = pairwise_rows(matrix)
    planned = to_scenarios(matrix, rows)
    product = math.prod(len(a.values) for a in matrix.axes)
    share = coverage(matrix, declared).pair_share
    lines = [
        "plans (--plan; sizes and the share of value pairs they cover):",
        f"  declared: {len(declared)} scenarios, {share:.0%} of value pairs",
        f"  pairwise: {len(rows)} scenarios, {pair_coverage(matrix, rows):.0%} of value pairs"
        f" (lower bound {lower_bound(matrix)})",
        f"  full product: {product} scenarios, 100% of value pairs",
        "restarts (services recreated walking the plan from the axes' defaults):",
    ]
    for name, scenarios in (("declared", declared), ("pairwise", planned)):
        given = walk_cost(matrix, scenarios, start, services).restarts
        best = restart_order(matrix, scenarios, start, services).restarts
        lines.append(f"  {name}: {given} in the {name} order, {best} in the minimised order")
    return lines
