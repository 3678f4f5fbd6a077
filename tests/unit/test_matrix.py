"""The matrix model: validation, requirements, overrides, paths, coverage and `--list` text.

Coverage is checked against the real MATRIX in the repo's matrix.py, computed rather than
hardcoded: if a scenario that alone covers an axis value is dropped, a test here goes red.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from gate.checks import SkipClass
from gate.errors import UsageError
from gate.matrix import (
    Axis,
    Fact,
    Matrix,
    Scenario,
    assignment,
    check_paths,
    coverage,
    describe,
    resolve_overrides,
    unmet,
    validate_matrix,
)
from gate.options import load_contract_file

REPO = Path(__file__).resolve().parents[2]
ALL_FACTS = {"remote_node_url": "http://127.0.0.1:1", "alt_data_dir": "/tmp/alt"}


def real_matrix() -> Matrix:
    """The MATRIX of the repo's matrix.py, loaded the way the gate loads it."""
    return validate_matrix(load_contract_file(REPO / "matrix.py").matrix)


def small(*scenarios: Scenario, axes: tuple[Axis, ...] | None = None) -> Matrix:
    axes = axes or (Axis("pool.tier", ("mini", "main")), Axis("workers.count", (2, 3)))
    return Matrix(axes=axes, scenarios=scenarios)


# --- validation -------------------------------------------------------------------------


def test_a_well_formed_matrix_validates_and_is_returned() -> None:
    matrix = small(
        Scenario("a", {"pool.tier": "main", "workers.count": 3}),
        Scenario("b-2", {"node.remote_url": Fact("url")}),
    )
    assert validate_matrix(matrix) is matrix


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ("not a matrix", "must be a gate.matrix.Matrix"),
        (
            Matrix(
                axes=(Axis("pool.tier", ("mini",)), Axis("pool.tier", ("main",))),
                scenarios=(Scenario("a", {}),),
            ),
            "an axis is declared twice",
        ),
        (
            Matrix(axes=(Axis("pool.tier", ()),), scenarios=(Scenario("a", {}),)),
            "axis pool.tier has no values",
        ),
        (
            Matrix(axes=(Axis("pool.tier", ("mini", ["main"])),), scenarios=(Scenario("a", {}),)),
            "is not a JSON scalar",
        ),
        (
            Matrix(axes=(Axis("node.opts", ({"a": 1},)),), scenarios=(Scenario("a", {}),)),
            "is not a JSON scalar",
        ),
        (
            Matrix(axes=(Axis("pool.tier", ("mini", "mini")),), scenarios=(Scenario("a", {}),)),
            "axis pool.tier repeats a value",
        ),
        (
            Matrix(axes=(Axis("workers.count", (1, 2, 1)),), scenarios=(Scenario("a", {}),)),
            "axis workers.count repeats a value",
        ),
        (Matrix(axes=(Axis("pool.tier", ("mini",)),), scenarios=()), "declares no scenario"),
        (small(Scenario("a", {}), Scenario("a", {})), "a scenario name is used twice"),
        (small(Scenario("Upper", {})), "scenario name 'Upper' must match"),
        (small(Scenario("under_score", {})), "scenario name 'under_score' must match"),
        (small(Scenario("-leading", {})), "scenario name '-leading' must match"),
        (small(Scenario("", {})), "scenario name '' must match"),
        (small(Scenario("a" * 64, {})), "must match"),
        (small(Scenario("a", {"pool.tier": "mega"})), "pool.tier='mega' is outside the axis"),
    ],
    ids=[
        "not-a-matrix",
        "duplicate-axis",
        "empty-values",
        "list-value",
        "dict-value",
        "repeated-string",
        "repeated-int",
        "no-scenario",
        "duplicate-scenario",
        "name-uppercase",
        "name-underscore",
        "name-leading-hyphen",
        "name-empty",
        "name-too-long",
        "value-outside-axis",
    ],
)
def test_a_malformed_matrix_is_a_usage_error(matrix: object, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        validate_matrix(matrix)
    assert message in str(raised.value)


def test_longest_allowed_name_is_accepted() -> None:
    """Positive control for the length rule: 63 characters pass, 64 (above) do not."""
    validate_matrix(small(Scenario("a" * 63, {})))


@pytest.mark.parametrize(
    ("values", "override"),
    [
        ((1, 2), True),  # True is a boolean, not 1
        ((True, False), 1),  # and 1 is not True
        ((0, 1), False),
        ((8000, 8001), "8000"),  # "8000" stays a string
        (("8000", "8001"), 8000),
        ((1, 2), 1.5),
        ((None, "x"), ""),
    ],
)
def test_a_value_outside_an_axis_is_refused_with_json_typing(
    values: tuple[Any, ...], override: Any
) -> None:
    matrix = Matrix(
        axes=(Axis("some.path", values),), scenarios=(Scenario("s", {"some.path": override}),)
    )
    with pytest.raises(UsageError) as raised:
        validate_matrix(matrix)
    assert f"some.path={override!r} is outside the axis" in str(raised.value)
    assert "scenario s:" in str(raised.value)


@pytest.mark.parametrize(
    ("values", "override"),
    [((1, True), True), ((1, True), 1), ((8000, "8000"), "8000"), ((None, "x"), None)],
)
def test_values_that_differ_only_in_json_type_are_distinct_and_accepted(
    values: tuple[Any, ...], override: Any
) -> None:
    """The positive control: the same typing lets True and 1 live on one axis."""
    matrix = Matrix(
        axes=(Axis("some.path", values),), scenarios=(Scenario("s", {"some.path": override}),)
    )
    assert validate_matrix(matrix) is matrix


def test_a_fact_on_an_axis_path_is_not_checked_against_the_axis() -> None:
    matrix = small(Scenario("s", {"pool.tier": Fact("tier")}))
    assert validate_matrix(matrix) is matrix


def test_select_names_unknown_scenarios_and_lists_the_known_ones() -> None:
    matrix = small(Scenario("a", {}), Scenario("b", {}))
    assert [s.name for s in matrix.select(())] == ["a", "b"]
    assert [s.name for s in matrix.select(("b",))] == ["b"]
    with pytest.raises(UsageError, match=r"unknown scenario 'nope'; known: a, b"):
        matrix.select(("b", "nope"))


# --- requirements and overrides ---------------------------------------------------------


def test_unmet_fact_is_a_named_skip_of_class_missing() -> None:
    scenario = Scenario("remote", {"node.remote_url": Fact("remote_node_url")})
    skip = unmet(scenario, {})
    assert skip is not None
    assert skip.scenario == "remote"
    assert skip.skip_class is SkipClass.MISSING
    assert "remote_node_url" in skip.reason


def test_an_empty_fact_value_is_unmet_and_a_set_one_is_met() -> None:
    scenario = Scenario("remote", {"node.remote_url": Fact("remote_node_url")})
    assert unmet(scenario, {"remote_node_url": ""}) is not None
    assert unmet(scenario, {"other": "x"}) is not None
    assert unmet(scenario, {"remote_node_url": "http://h:1"}) is None


def test_every_fact_must_be_known() -> None:
    scenario = Scenario("two", {"a.b": Fact("first"), "c.d": Fact("second")})
    assert unmet(scenario, {"first": "1"}) is not None
    assert unmet(scenario, {"second": "2"}) is not None
    assert unmet(scenario, {"first": "1", "second": "2"}) is None


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("missing", SkipClass.MISSING),
        ("by-design", SkipClass.BY_DESIGN),
        ("covered", SkipClass.COVERED),
        ("because-i-said-so", SkipClass.MISSING),  # an unexplained gap is a gap
        ("", SkipClass.MISSING),
    ],
)
def test_skip_class_comes_from_the_fact_and_unknown_counts_as_missing(
    declared: str, expected: SkipClass
) -> None:
    scenario = Scenario("s", {"x.y": Fact("f", skip=declared, why="a reason given by the user")})
    skip = unmet(scenario, {})
    assert skip is not None
    assert skip.skip_class is expected
    assert skip.reason == "a reason given by the user"


def test_a_scenario_without_facts_is_never_skipped() -> None:
    assert unmet(Scenario("plain", {"pool.tier": "main"}), {}) is None


def test_resolve_overrides_fills_facts_and_keeps_typed_values() -> None:
    scenario = Scenario(
        "s", {"node.remote_url": Fact("url"), "dashboard.secure": True, "workers.count": 3}
    )
    resolved = resolve_overrides(scenario, {"url": "http://h:1", "unused": "x"})
    assert resolved == {
        "node.remote_url": "http://h:1",
        "dashboard.secure": True,
        "workers.count": 3,
    }
    assert resolved["dashboard.secure"] is True
    assert scenario.overrides["node.remote_url"] == Fact("url")  # the scenario is not changed


# --- paths against the box's config -----------------------------------------------------

CONFIG = {"pool": {"tier": "mini", "port": 1}, "workers": {"count": 2}, "node": {"remote_url": ""}}


def test_check_paths_accepts_paths_the_config_has() -> None:
    matrix = small(Scenario("s", {"pool.tier": "main", "node.remote_url": Fact("u")}))
    check_paths(matrix, list(matrix.scenarios), CONFIG)


@pytest.mark.parametrize("path", ["pool.colour", "nosuch.section", "pool.tier.deeper"])
def test_check_paths_refuses_an_override_the_config_does_not_have(path: str) -> None:
    matrix = small(Scenario("s", {path: "x"}))
    with pytest.raises(UsageError, match=rf"scenario s: the config has no path {path}$"):
        check_paths(matrix, list(matrix.scenarios), CONFIG)


def test_check_paths_refuses_an_axis_the_config_does_not_have() -> None:
    matrix = Matrix(
        axes=(Axis("pool.tier", ("mini",)), Axis("pool.colour", ("red",))),
        scenarios=(Scenario("s", {}),),
    )
    with pytest.raises(UsageError, match=r"axis pool.colour is not a path of the config"):
        check_paths(matrix, [], CONFIG)


def test_check_paths_only_judges_the_selected_scenarios() -> None:
    good, bad = Scenario("good", {"pool.tier": "main"}), Scenario("bad", {"pool.colour": "x"})
    matrix = small(good, bad)
    check_paths(matrix, [good], CONFIG)
    with pytest.raises(UsageError, match="scenario bad"):
        check_paths(matrix, [good, bad], CONFIG)


# --- coverage ---------------------------------------------------------------------------


def runnable(matrix: Matrix, facts: dict[str, str]) -> list[Scenario]:
    return [s for s in matrix.scenarios if unmet(s, facts) is None]


def covers(matrix: Matrix, scenarios: list[Scenario]) -> dict[tuple[str, Any], set[str]]:
    """An oracle written apart from coverage(): (path, typed value) -> scenarios setting it."""
    found: dict[tuple[str, Any], set[str]] = {
        (a.path, (type(v), v)): set() for a in matrix.axes for v in a.values
    }
    for scenario in scenarios:
        for path, value in assignment(matrix, scenario).items():
            found.setdefault((path, (type(value), value)), set()).add(scenario.name)
    return found


def test_with_every_fact_the_real_matrix_covers_every_axis_value() -> None:
    matrix = real_matrix()
    result = coverage(matrix, runnable(matrix, ALL_FACTS))
    assert result.uncovered == []
    assert set(result.per_axis) == {a.path for a in matrix.axes}
    for axis in matrix.axes:
        rows = result.per_axis[axis.path]
        assert [v for v, _who in rows] == list(axis.values)
        assert all(who for _v, who in rows), (axis.path, rows)


def test_dropping_the_sole_cover_of_a_value_leaves_it_uncovered() -> None:
    """Computed from the real matrix: which scenarios alone cover some value, and that
    removing each of them is seen by coverage()."""
    matrix = real_matrix()
    scenarios = runnable(matrix, ALL_FACTS)
    sole: dict[str, list[str]] = {}
    for (path, (_t, value)), who in covers(matrix, scenarios).items():
        if len(who) == 1:
            sole.setdefault(next(iter(who)), []).append(f"{path}={value!r}")
    assert sole, "no scenario is the only cover of any value: this test would prove nothing"
    for name, values in sole.items():
        rest = [s for s in scenarios if s.name != name]
        uncovered = coverage(matrix, rest).uncovered
        assert sorted(uncovered) == sorted(values), name
    for scenario in scenarios:
        if scenario.name not in sole:  # dropping a redundant scenario loses no value
            rest = [s for s in scenarios if s.name != scenario.name]
            assert coverage(matrix, rest).uncovered == [], scenario.name


def test_without_facts_the_values_only_fact_scenarios_set_are_uncovered() -> None:
    matrix = real_matrix()
    with_facts = covers(matrix, runnable(matrix, ALL_FACTS))
    without = covers(matrix, runnable(matrix, {}))
    lost = sorted(
        f"{path}={value!r}"
        for (path, (_t, value)), who in without.items()
        if not who and with_facts[(path, (_t, value))]
    )
    assert lost, "the fact scenarios cover nothing the others do not"
    assert sorted(coverage(matrix, runnable(matrix, {})).uncovered) == lost


def test_coverage_tells_true_from_one() -> None:
    matrix = Matrix(
        axes=(Axis("a.flag", (0, False)), Axis("a.n", (1, True))),
        scenarios=(Scenario("s", {"a.flag": False, "a.n": True}),),
    )
    result = coverage(matrix, list(matrix.scenarios))
    assert result.uncovered == ["a.flag=0", "a.n=1"]
    assert result.per_axis["a.flag"] == [(0, []), (False, ["s"])]


def test_coverage_takes_unset_axes_from_the_base_config_else_the_default() -> None:
    matrix = small(Scenario("s", {"pool.tier": "main"}))
    assert coverage(matrix, list(matrix.scenarios)).per_axis["workers.count"] == [
        (2, ["s"]),
        (3, []),
    ]
    base = {"pool": {"tier": "mini"}, "workers": {"count": 3}}
    assert coverage(matrix, list(matrix.scenarios), base).per_axis["workers.count"] == [
        (2, []),
        (3, ["s"]),
    ]


def test_pair_share_counts_value_pairs_across_axes() -> None:
    axes = (Axis("p.a", ("x", "y")), Axis("p.b", (1, 2)), Axis("p.c", (False, True)))
    one = Scenario("one", {"p.a": "x", "p.b": 1, "p.c": False})
    two = Scenario("two", {"p.a": "y", "p.b": 2, "p.c": False})
    matrix = Matrix(axes=axes, scenarios=(one, two))
    result = coverage(matrix, [one, two])
    # 3 axis pairs x 4 value pairs; each scenario covers 3 distinct pairs
    assert (result.pairs_covered, result.pairs_total) == (6, 12)
    assert result.pair_share == 0.5
    assert coverage(matrix, []).pairs_covered == 0
    assert coverage(matrix, []).pair_share == 0.0


def test_pair_share_of_the_real_matrix_matches_a_brute_force_count() -> None:
    matrix = real_matrix()
    scenarios = runnable(matrix, ALL_FACTS)
    assigned = [assignment(matrix, s) for s in scenarios]
    total = covered = 0
    for left, right in itertools.combinations(matrix.axes, 2):
        for lv, rv in itertools.product(left.values, right.values):
            total += 1
            covered += any(
                type(a[left.path]) is type(lv)
                and a[left.path] == lv
                and type(a[right.path]) is type(rv)
                and a[right.path] == rv
                for a in assigned
            )
    result = coverage(matrix, scenarios)
    assert (result.pairs_covered, result.pairs_total) == (covered, total)
    assert 0 < result.pair_share < 1  # five scenarios cannot cover every pair of seven axes


# --- the --list text --------------------------------------------------------------------


def test_describe_shows_scenarios_skips_axes_and_pairs() -> None:
    matrix = real_matrix()
    lines = describe(matrix, {})
    text = "\n".join(lines)
    assert lines[0] == "scenarios:"
    for scenario in matrix.scenarios:
        assert any(line.startswith(f"  {scenario.name} ") for line in lines), scenario.name
    remote = next(line for line in lines if line.startswith("  remote-node "))
    assert "node.remote_url=<fact remote_node_url>" in remote
    assert "SKIP (missing: remote mode needs a node endpoint elsewhere" in remote
    defaults = next(line for line in lines if line.startswith("  local-defaults "))
    assert "SKIP" not in defaults
    assert "axes (value: runnable scenarios that set it):" in lines
    cover = coverage(matrix, runnable(matrix, {}))
    for axis in matrix.axes:
        row = next(line for line in lines if line.startswith(f"  {axis.path} "))
        for value, who in cover.per_axis[axis.path]:
            assert f"{value!r}: {len(who)}" in row, (axis.path, value)
    share = f"{cover.pairs_covered}/{cover.pairs_total} ({cover.pair_share:.0%})"
    assert f"pairs covered: {share}" in lines
    assert lines[-1] == "NOT COVERED: " + ", ".join(cover.uncovered)
    assert "node.mode='remote'" in text and "node.compact=True" in text


def test_describe_with_every_fact_runs_everything_and_covers_every_value() -> None:
    matrix = real_matrix()
    lines = describe(matrix, ALL_FACTS)
    assert not any("SKIP" in line for line in lines)
    assert not any(line.startswith("NOT COVERED") for line in lines)
    cover = coverage(matrix, list(matrix.scenarios))
    assert lines[-1] == (
        f"pairs covered: {cover.pairs_covered}/{cover.pairs_total} ({cover.pair_share:.0%})"
    )


def test_describe_names_a_baseline_scenario() -> None:
    lines = describe(small(Scenario("as-is", {})), {})
    assert any(line.startswith("  as-is ") and "(baseline)" in line for line in lines)
