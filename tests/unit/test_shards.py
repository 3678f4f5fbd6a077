"""--shard I/N: every share the same on every machine, the shares together the plan once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.matrix import validate_matrix
from gate.options import load_contract_file
from gate.planner import pairwise_rows, to_scenarios
from gate.shards import Shard, parse_shard, shard_lines

REPO = Path(__file__).resolve().parents[2]
MATRICES = {"sample": REPO / "matrix.py", "kvfront": REPO / "examples/kvfront/matrix.py"}


def plans(name: str) -> dict[str, list[str]]:
    matrix = validate_matrix(load_contract_file(MATRICES[name]).matrix)
    pairwise = to_scenarios(matrix, pairwise_rows(matrix))
    return {
        "declared": [s.name for s in matrix.scenarios],
        "pairwise": [s.name for s in pairwise],
    }


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.mark.parametrize("stack", sorted(MATRICES))
@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_the_shards_together_walk_every_scenario_exactly_once(stack: str, count: int) -> None:
    for plan, names in plans(stack).items():
        scenarios = [Named(n) for n in names]
        shares = [[s.name for s in Shard(i, count).take(scenarios)] for i in range(1, count + 1)]
        walked = [name for share in shares for name in share]
        assert sorted(walked) == sorted(names), (plan, shares)  # each once, none lost
        assert max(map(len, shares)) - min(map(len, shares)) <= 1, (plan, shares)
        for share in shares:  # each keeps the run's own order
            assert share == [n for n in names if n in share]


def test_a_share_does_not_depend_on_the_order_it_is_given() -> None:
    names = ["delta", "alpha", "charlie", "bravo", "echo"]
    forward = Shard(2, 3).take([Named(n) for n in names])
    backward = Shard(2, 3).take([Named(n) for n in reversed(names)])
    assert {s.name for s in forward} == {s.name for s in backward} == {"bravo", "echo"}


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "2", "a/b", "1/2/3", "-1/2", ""])
def test_a_bad_shard_is_one_usage_line(text: str) -> None:
    with pytest.raises(UsageError, match=r"^--shard takes I/N with 1 <= I <= N"):
        parse_shard(text)


def test_listing_marks_this_jobs_share() -> None:
    lines = shard_lines([Named(n) for n in ["a", "b", "c"]], 2, parse_shard("2/2"))
    assert lines == [
        "shards (2 jobs together walk these 3 scenarios once):",
        "  1/2: a, c",
        "  2/2: b  <- this job",
    ]
