"""The fleet's one exit code is the worst of its boxes' in the documented order, and every
box keeps its row whatever the others did."""

from __future__ import annotations

import itertools

import pytest

from gate.errors import ExitCode
from gate.fleet.verdict import (
    SEVERITY,
    box_result,
    fleet_summary,
    markdown,
    process_code,
    table_lines,
    worst,
)

ORDER = [4, 130, 143, 129, 2, 3, 75, 1, 0]  # docs/fleets.md, worst first


def test_the_order_is_the_documented_one() -> None:
    assert list(SEVERITY) == ORDER


@pytest.mark.parametrize(("bad", "good"), list(itertools.combinations(ORDER, 2)))
def test_the_worse_code_wins_whatever_the_boxes_order(bad: int, good: int) -> None:
    assert worst([bad, good]) == bad
    assert worst([good, bad]) == bad
    assert worst([good, good, bad, good]) == bad


def test_examples_from_the_docs() -> None:
    assert worst([0, 1, 0]) == ExitCode.FAILED
    assert worst([0, 1, 3]) == ExitCode.INCONCLUSIVE
    assert worst([1, 75]) == ExitCode.LOCKED
    assert worst([0, 0]) == ExitCode.PASSED


def test_a_box_killed_by_a_signal_ranks_below_dirty_above_interrupts() -> None:
    killed = process_code(-9)
    assert killed == 137
    assert worst([130, killed, 3]) == killed
    assert worst([killed, 4]) == ExitCode.DIRTY


def test_a_fleet_that_ran_no_box_never_passes() -> None:
    assert worst([]) == ExitCode.FAILED


SUMMARY = {
    "run_id": "r1",
    "verdict": "failed",
    "counts": {"pass": 7, "fail": 2, "inconclusive": 1, "skip": 0},
    "checks": [
        {"name": "status: exit code 0", "scenario": "", "verdict": "pass"},
        {"name": "api: tier | mini", "scenario": "nano", "verdict": "fail"},
        {"name": "env: X", "scenario": "", "verdict": "inconclusive"},
        {"name": "api: cache", "scenario": "", "verdict": "skip"},
    ],
    "error": None,
}


def test_a_boxs_row_comes_from_its_summary() -> None:
    row = box_result("b", "b", 1, 12.34, SUMMARY, results="results/F/b/r1", console="c.txt")
    assert (row.exit_code, row.verdict, row.run_id) == (1, "failed", "r1")
    assert dict(row.counts) == {"pass": 7, "fail": 2, "inconclusive": 1, "skip": 0}
    assert row.failing == ("nano/api: tier | mini", "env: X")
    assert row.as_dict()["duration_s"] == 12.34


def test_a_box_without_a_summary_says_why() -> None:
    row = box_result("c", "c", -15, 1.0, None, console="c.txt")
    assert (row.exit_code, row.verdict, row.results) == (143, "interrupted", None)
    assert row.error is not None and "killed by signal 15" in row.error
    locked = box_result("d", "d", 75, 1.0, None)
    assert (locked.verdict, locked.error) == ("box locked", locked.error)
    assert locked.error is not None and "exit 75" in locked.error


def test_the_table_and_the_markdown_show_every_box() -> None:
    rows = [
        box_result("a", "a", 0, 3.0, {**SUMMARY, "verdict": "passed", "checks": []}, "x", "ra"),
        box_result("bb", "bb", 1, 4.0, SUMMARY, None, "rb"),
        box_result("gone", "gone", 3, 0.5, None, "could not connect: refused", console="cg"),
    ]
    summary = fleet_summary("F", "a,bb,gone", "check", rows, (1.0, 2.0))
    assert (summary["exit_code"], summary["verdict"]) == (3, "inconclusive")
    lines = table_lines(rows)
    assert lines[0].split() == ["box", "verdict", "exit", "pass", "fail", "inconcl.", "skip",
                                "duration", "results"]  # fmt: skip
    assert [line.split()[:3] for line in lines[1:]] == [
        ["a", "passed", "0"], ["bb", "failed", "1"], ["gone", "inconclusive", "3"]
    ]  # fmt: skip
    assert len({line.index(" passed") for line in lines[1:2]} | {lines[2].index(" failed")}) == 1
    text = markdown(summary, rows)
    assert text.startswith("## gate fleet: inconclusive (exit 3)")
    assert "| gone | inconclusive | 3 | - | - | - | - | 0.5s | cg |" in text
    assert "- **bb**: nano/api: tier \\| mini; env: X" in text
    assert "- **gone**: could not connect: refused" in text
    assert "**a**" not in text
