"""The matrix planner: pairwise generation, pair coverage, the restart-minimising order,
`--plan pairwise` and its `--list` lines, on the bundled examples and a 7-axis matrix."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeStack

from gate import planner
from gate.cli import run_cli
from gate.cli.listing import list_plan
from gate.errors import UsageError
from gate.matrix import Axis, Matrix, Scenario, coverage
from gate.options import Options, load_contract_file

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]
EXAMPLES = {"sample": REPO / "matrix.py", "kvfront": REPO / "examples/kvfront/matrix.py"}
SEVEN = Matrix(
    axes=tuple(
        Axis(f"axis{i}.value", tuple(range(n)), touches=(f"svc{i}",))
        for i, n in enumerate((2, 2, 2, 3, 2, 2, 2))
    ),
    scenarios=(Scenario("baseline", {}),),
)


def seven_services(_cfg: Any) -> frozenset[str]:
    return frozenset(f"svc{i}" for i in range(7))


def example(name: str) -> tuple[Matrix, Any]:
    loaded = load_contract_file(EXAMPLES[name])
    assert isinstance(loaded.matrix, Matrix)
    return loaded.matrix, loaded.contract.expected_services


def matrices() -> list[tuple[str, Matrix, Any]]:
    found = [(name, *example(name)) for name in EXAMPLES]
    return [*found, ("seven", SEVEN, seven_services)]


@pytest.mark.parametrize("name", ["sample", "kvfront", "seven"])
def test_every_pair_is_covered_within_1_3x_of_the_lower_bound(name: str) -> None:
    matrix = {n: m for n, m, _ in matrices()}[name]
    rows = planner.pairwise_rows(matrix)
    assert planner.pair_coverage(matrix, rows) == 1.0
    assert len(rows) <= 1.3 * planner.lower_bound(matrix), (len(rows), planner.lower_bound(matrix))
    planned = planner.to_scenarios(matrix, rows)
    assert coverage(matrix, planned).pair_share == 1.0  # the gate's own measure agrees


def test_the_seven_axis_lower_bound_is_the_two_largest_axes() -> None:
    assert planner.lower_bound(SEVEN) == 6


@pytest.mark.parametrize("name", ["sample", "kvfront", "seven"])
def test_the_plan_is_deterministic(name: str) -> None:
    matrix = {n: m for n, m, _ in matrices()}[name]
    assert planner.pairwise_rows(matrix) == planner.pairwise_rows(matrix)


def test_the_plan_does_not_depend_on_the_hash_seed() -> None:
    """Sets iterate in hash order: a plan that leaned on it would differ between processes."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_planner as t; "
        "from gate import planner; "
        "print([planner.pairwise_rows(m) for _, m, _ in t.matrices()])"
    )
    plans = {
        subprocess.run(
            [sys.executable, "-c", code, str(UNIT)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(plans) == 1
    assert "node.mode" in plans.pop()


@pytest.mark.parametrize("name", ["sample", "kvfront", "seven"])
def test_dropping_any_planned_row_loses_a_pair(name: str) -> None:
    """The coverage measure sees a broken generator (and the plan has no idle row)."""
    matrix = {n: m for n, m, _ in matrices()}[name]
    rows = planner.pairwise_rows(matrix)
    for index in range(len(rows)):
        assert planner.pair_coverage(matrix, rows[:index] + rows[index + 1 :]) < 1.0


def test_a_value_whose_fact_is_missing_is_not_planned_and_the_gap_is_said() -> None:
    matrix, _ = example("sample")
    rows = planner.pairwise_rows(matrix, facts={})
    assert {r["node.mode"] for r in rows} == {"local"}
    assert {r["node.compact"] for r in rows} == {False}
    assert planner.pair_coverage(matrix, rows) < 1.0
    known = {"remote_node_url": "http://n:1", "alt_data_dir": "/spare"}
    planned = planner.to_scenarios(matrix, planner.pairwise_rows(matrix, facts=known))
    remote = [s for s in planned if s.overrides["node.mode"] == "remote"]
    assert remote and all("node.remote_url" in s.overrides for s in remote)


@pytest.mark.parametrize("name", ["sample", "kvfront", "seven"])
def test_the_order_never_restarts_more_than_the_given_order(name: str) -> None:
    matrix, services = {n: (m, s) for n, m, s in matrices()}[name]
    start = planner.default_start(matrix)
    count = planner.services_from(services, {}, planner.declared_names(matrix))
    for scenarios in (
        list(matrix.scenarios),
        planner.to_scenarios(matrix, planner.pairwise_rows(matrix)),
    ):
        given = planner.walk_cost(matrix, scenarios, start, count).restarts
        ordered = planner.restart_order(matrix, scenarios, start, count)
        assert ordered.restarts <= given
        assert sorted(s.name for s in ordered.scenarios) == sorted(s.name for s in scenarios)
        assert (
            ordered.restarts == planner.walk_cost(matrix, ordered.scenarios, start, count).restarts
        )


@pytest.mark.parametrize("name", ["sample", "kvfront"])
def test_the_order_restarts_strictly_fewer_on_the_pairwise_plan(name: str) -> None:
    matrix, services = example(name)
    start = planner.default_start(matrix)
    count = planner.services_from(services, {}, planner.declared_names(matrix))
    planned = planner.to_scenarios(matrix, planner.pairwise_rows(matrix))
    given = planner.walk_cost(matrix, planned, start, count).restarts
    assert planner.restart_order(matrix, planned, start, count).restarts < given


def test_the_order_restarts_strictly_fewer_on_the_sample_declared_order() -> None:
    matrix, services = example("sample")
    start = planner.default_start(matrix)
    count = planner.services_from(services, {}, planner.declared_names(matrix))
    given = planner.walk_cost(matrix, list(matrix.scenarios), start, count).restarts
    assert planner.restart_order(matrix, list(matrix.scenarios), start, count).restarts < given


def test_restart_cost_expands_globs_against_the_target_services() -> None:
    matrix, services = example("sample")
    count = planner.services_from(services, {"workers": {"count": 2}}, frozenset())
    start = planner.default_start(matrix)
    remote = {**start, "node.mode": "remote"}
    # "*" of node.mode: every service the remote config runs (no node there)
    assert planner.restart_cost(matrix, start, remote, count) == len(count(remote))
    tier = {**start, "pool.tier": "main"}
    assert planner.restart_cost(matrix, start, tier, count) == 1


def test_pairwise_with_scenario_is_a_one_line_usage_error(tmp_path: Path) -> None:
    from gate.cli.flags import options_from

    with pytest.raises(UsageError, match="drop --scenario"):
        options_from({"plan": "pairwise", "scenario": ["local-defaults"]})
    with pytest.raises(UsageError, match="--plan takes"):
        options_from({"plan": "random"})
    assert options_from({}).plan == "declared"
    console = io.StringIO()
    raw = {"local": True, "dir": str(tmp_path), "plan": "pairwise", "scenario": ["x"]}
    assert run_cli(raw, console, target=lambda _h, _a: None) == 2
    assert len(console.getvalue().strip().splitlines()) == 1, console.getvalue()


@pytest.mark.parametrize("name", ["sample", "kvfront"])
def test_list_shows_the_three_sizes_with_coverage_and_the_restarts(name: str) -> None:
    matrix, services = example(name)
    stream = io.StringIO()
    list_plan(Options(list_only=True, matrix_file=EXAMPLES[name]), stream)
    text = stream.getvalue()
    rows = planner.pairwise_rows(matrix)
    declared = coverage(matrix, list(matrix.scenarios)).pair_share
    assert f"  declared: {len(matrix.scenarios)} scenarios, {declared:.0%} of value pairs" in text
    assert f"  pairwise: {len(rows)} scenarios, 100% of value pairs" in text
    product = 1
    for axis in matrix.axes:
        product *= len(axis.values)
    assert f"  full product: {product} scenarios, 100% of value pairs" in text
    start = planner.default_start(matrix)
    count = planner.services_from(services, {}, planner.declared_names(matrix))
    given = planner.walk_cost(matrix, list(matrix.scenarios), start, count).restarts
    best = planner.restart_order(matrix, list(matrix.scenarios), start, count).restarts
    assert f"  declared: {given} in the declared order, {best} in the minimised order" in text


def quick_contract(tmp_path: Path) -> Path:
    """The repo's contract and matrix with every wait window cut short (fakestack.quick)."""
    path = tmp_path / "quick_contract.py"
    repo_matrix = str(REPO / "matrix.py")
    path.write_text(
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(UNIT)!r})\n"
        "from fakestack import load_contract, quick\n"
        f"spec = importlib.util.spec_from_file_location('repo_matrix', {repo_matrix!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "CONTRACT = quick(load_contract())\n"
        "MATRIX = module.MATRIX\n"
    )
    return path


def test_a_pairwise_run_on_the_double_runs_the_planned_scenarios_and_passes(
    tmp_path: Path,
) -> None:
    stack = FakeStack()
    out = tmp_path / "results"
    raw = {
        "local": True,
        "dir": stack.dir,
        "matrix": str(quick_contract(tmp_path)),
        "out": str(out),
        "plan": "pairwise",
    }
    console = io.StringIO()
    code = run_cli(raw, console, target=lambda _host, _accept: stack.target)
    stack.target.verify()
    assert code == 0, console.getvalue()
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    ran = [c["scenario"] for c in summary["checks"] if c.get("scenario")]
    order = list(dict.fromkeys(ran))  # first appearance: the order the scenarios ran in
    matrix, services = example("sample")
    walk = planner.plan_pairwise(matrix, services, stack.config, {})
    assert order == [s.name for s in walk.scenarios]
    assert len(order) == len(planner.pairwise_rows(matrix, facts={})) > 1
    assert all(name.startswith("pairwise-") for name in order)
    assert "--plan pairwise" in console.getvalue()
    assert "--scenario pairwise-" not in console.getvalue()  # no hint that cannot run
