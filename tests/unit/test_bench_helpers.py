"""The benches' pure helpers: intervals, /proc parsing, the stack's ready lines and the log
watcher, the overhead split, gate-run variants and the plan figures (no bench is run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from benchload import load

from gate import planner

intervals = load("intervals")
proctree = load("proctree")
stacklog = load("stacklog")
overhead = load("overhead")
gaterun = load("gaterun")
matrix_plans = load("matrix_plans")
scenario_growth = load("scenario_growth")

LogLine = stacklog.LogLine


# --- intervals ---------------------------------------------------------------------------


def test_merged_joins_overlaps_and_drops_empty_ones() -> None:
    got = intervals.merged([(5, 7), (1, 3), (2, 4), (6, 6), (9, 8), (4, 5)])
    assert got == [(1, 7)]
    assert intervals.merged([(1, 2), (3, 4)]) == [(1, 2), (3, 4)]


def test_total_counts_overlap_once() -> None:
    assert intervals.total([(0, 10), (5, 15), (20, 21)]) == pytest.approx(16)


def test_clipped_keeps_the_window_only() -> None:
    assert intervals.clipped([(0, 5), (8, 12), (20, 30)], (3, 10)) == [(3, 5), (8, 10)]


def test_minus_removes_every_covered_part() -> None:
    got = intervals.minus([(0, 10), (12, 14)], [(2, 3), (5, 6), (9, 13)])
    assert got == [(0, 2), (3, 5), (6, 9), (13, 14)]
    assert intervals.minus([(0, 1)], []) == [(0, 1)]
    assert intervals.minus([(2, 3)], [(0, 5)]) == []


# --- /proc -------------------------------------------------------------------------------


def stat_line(pid: int, comm: str, ppid: int, times: tuple[int, int, int, int]) -> str:
    fields = ["S", str(ppid), "1", "1", "0", "-1", "0", "10", "0", "0", "0", *map(str, times)]
    return f"{pid} ({comm}) " + " ".join([*fields, "20", "0", "1", "0"])


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    stat = proctree.parse_stat(stat_line(42, "we (ird) name", 7, (3, 4, 50, 60)))
    assert (stat.pid, stat.ppid, stat.own, stat.reaped) == (42, 7, 7, 110)


def test_tree_ticks_sums_descendants_and_the_roots_reaped_children() -> None:
    stats = {
        s.pid: s
        for s in (
            proctree.ProcStat(1, 0, 1000, 1000),  # init: not in the tree
            proctree.ProcStat(10, 1, 5, 20),  # the root
            proctree.ProcStat(11, 10, 3, 4),
            proctree.ProcStat(12, 11, 2, 0),  # a grandchild
            proctree.ProcStat(13, 1, 99, 99),  # a sibling of the root
        )
    }
    assert proctree.tree_ticks(stats, 10, with_root_own=False) == 20 + 3 + 4 + 2
    assert proctree.tree_ticks(stats, 10, with_root_own=True) == 5 + 20 + 3 + 4 + 2
    assert proctree.tree_ticks(stats, 999, with_root_own=True) == 0


def test_a_reaped_childs_cpu_counts_in_this_process_tree() -> None:
    before = proctree.tree_cpu_seconds(os.getpid(), with_root_own=False)
    burn = "import time\nwhile time.process_time() < 0.3: pass\n"
    subprocess.run([sys.executable, "-c", burn], check=True)
    after = proctree.tree_cpu_seconds(os.getpid(), with_root_own=False)
    assert after - before >= 0.25


# --- the stack's own log -----------------------------------------------------------------


def test_ready_lines_per_service() -> None:
    def ready(service: str, text: str) -> bool:
        return bool(stacklog.is_ready_line(LogLine(0.0, service, text)))

    assert ready("node", "node: synchronized at height 120")
    assert not ready("node", "node: listening on 127.0.0.1:1 (full); warm start")
    assert ready("pool", "pool: tier mini: waiting for the node at http://127.0.0.1:1")
    assert ready("worker-2", "worker-2: shares accepted")
    assert not ready("worker-2", "worker-2: shares refused: HTTP 503")
    assert not ready("worker-2", "worker-1: shares accepted")
    assert not ready("supervisord", "node: synchronized at height 1")


def test_ready_at_is_the_last_services_first_ready_line_since() -> None:
    lines = [
        LogLine(1.0, "node", "node: synchronized at height 1"),  # before `since`
        LogLine(5.0, "proxy", "proxy: admitting workers on 127.0.0.1:2"),
        LogLine(7.0, "node", "node: synchronized at height 3"),
        LogLine(8.0, "proxy", "proxy: admitting workers on 127.0.0.1:2"),  # a second one
        LogLine(9.0, "node", "node: listening on 0.0.0.0:1"),
    ]
    assert stacklog.ready_at(lines, {"node", "proxy"}, since=2.0) == 7.0
    assert stacklog.ready_at(lines, {"node", "proxy", "dashboard"}, since=2.0) is None
    assert stacklog.ready_at(lines, {"node"}, since=7.5) is None


def test_last_ready_looks_inside_its_window_only() -> None:
    lines = [
        LogLine(1.0, "pool", "pool: tier main: waiting"),
        LogLine(3.0, "dashboard", "dashboard: serving http://127.0.0.1:3/api/state"),
        LogLine(4.0, "dashboard", "dashboard: not a ready line"),
        LogLine(6.0, "node", "node: synchronized at height 9"),
    ]
    assert stacklog.last_ready(lines, 0.5, 5.0) == 3.0
    assert stacklog.last_ready(lines, 3.5, 5.0) is None


def test_the_watcher_stamps_new_complete_lines_and_skips_old_ones(tmp_path: Path) -> None:
    node, pool = tmp_path / "node.log", tmp_path / "pool.log"
    node.write_text("node: synchronized at height 1\n")  # already there: skipped
    watcher = stacklog.LogWatcher(tmp_path, interval=0.002)
    watcher.start()
    try:
        with node.open("a") as handle:
            handle.write("node: synchronized at height 2\n")
        with pool.open("a") as handle:
            handle.write("pool: ti")
            handle.flush()
            assert watcher.wait_ready({"node"}, since=0.0, timeout=10) is not None
            handle.write("er nano: waiting for the node\n")
        assert watcher.wait_ready({"node", "pool"}, since=0.0, timeout=10) is not None
    finally:
        watcher.stop()
    seen = [(line.service, line.text) for line in watcher.lines()]
    assert seen == [
        ("node", "node: synchronized at height 2"),
        ("pool", "pool: tier nano: waiting for the node"),
    ]


# --- the overhead split ------------------------------------------------------------------


def test_stack_runs_parse_and_skip_malformed_lines() -> None:
    runs = overhead.parse_stack_runs("1.5 2.25 0 status\nbroken\n3 4 x apply\n5 6 1 apply\n")
    assert [(r.start, r.end, r.exit, r.verb) for r in runs] == [
        (1.5, 2.25, 0, "status"),
        (5.0, 6.0, 1, "apply"),
    ]


def test_convergence_runs_from_an_apply_to_its_last_ready_line() -> None:
    Run = overhead.StackRun
    runs = [Run(10, 12, 0, "apply"), Run(13, 14, 0, "status"), Run(30, 31, 0, "apply")]
    lines = [
        LogLine(11.0, "proxy", "proxy: admitting workers on x"),  # during the apply
        LogLine(20.0, "node", "node: synchronized at height 1"),
        LogLine(35.0, "pool", "pool: tier main: waiting"),  # after the second apply
        LogLine(50.0, "node", "node: synchronized at height 2"),  # after the window's end
    ]
    assert overhead.convergence(runs, lines, end=40.0) == [(12, 20.0), (31, 35.0)]


def test_breakdown_splits_the_wall_time() -> None:
    Cmd, Run = overhead.Command, overhead.StackRun
    commands = [
        Cmd(10, 20, "CTL apply -y"),
        Cmd(20, 21, "python3 .gate/boxtool.py http"),
        Cmd(30, 32, "CTL status --json"),
    ]
    runs = [Run(10.5, 19.5, 0, "apply"), Run(30.2, 31.8, 0, "status")]
    lines = [LogLine(25.0, "node", "node: synchronized at height 1")]
    split = overhead.breakdown((0, 100), commands, runs, lines, "CTL")
    assert split.wall == 100
    assert split.commands == 3 and split.stack_commands == 2 and split.status_calls == 1
    assert split.in_commands == pytest.approx(13)
    assert split.stack_on_box == pytest.approx(10.6)
    assert split.stack_as_sent == pytest.approx(12)
    assert split.converging == pytest.approx(5.5)
    assert split.intrinsic == pytest.approx(16.1)
    assert split.overhead_in_commands == pytest.approx(0.9)
    assert split.overhead_outside == pytest.approx(83)
    assert split.overhead == pytest.approx(83.9)
    assert split.settles == pytest.approx((5.5,))
    assert split.counting == 0.0


def test_counter_waits_count_only_where_the_stack_was_not_working() -> None:
    checks = [
        {"name": "api: shares accumulating", "finished_at": 40.0, "duration": 10.0},
        {"name": "api: pool ready", "finished_at": 40.0, "duration": 30.0},
    ]
    waits = overhead.waits_of(checks, {"api: shares accumulating"})
    assert waits == [(30.0, 40.0)]
    runs = [overhead.StackRun(32.0, 33.0, 0, "status")]  # one status read inside the wait
    split = overhead.breakdown((0, 100), [], runs, [], "CTL", waits)
    assert split.counting == pytest.approx(9.0)


# --- running gate ------------------------------------------------------------------------


HELP = """Usage: inv[oke] [--core-opts] gate [--options] [other tasks here ...]
  --host=STRING          inventory name
  --transport=STRING     persistent (default) or exec
  --transports-x         not this one
"""


def test_a_flag_is_offered_only_as_itself() -> None:
    assert gaterun.offers(HELP, "transport")
    assert gaterun.offers(HELP, "host")
    assert not gaterun.offers(HELP, "transports")
    assert not gaterun.offers(HELP.replace("--transport=", "--transportable="), "transport")


def test_variants_compare_transports_only_when_gate_offers_the_flag() -> None:
    assert gaterun.variants(["--strict"], HELP) == [
        ("--transport persistent", ["--strict", "--transport", "persistent"]),
        ("--transport exec", ["--strict", "--transport", "exec"]),
    ]
    chosen = ["--transport", "exec"]
    assert gaterun.variants(chosen, HELP) == [("--transport exec", chosen)]
    assert gaterun.variants(["--transport=exec"], HELP) == [
        ("--transport=exec", ["--transport=exec"])
    ]
    no_flag = HELP.replace("--transport=", "--other=")
    assert gaterun.variants([], no_flag) == [("gate defaults", [])]


def test_scenario_selection_and_counts() -> None:
    args = scenario_growth.scenario_args(2)
    assert args[2:] == ["--scenario", "g1", "--scenario", "g2"]
    assert scenario_growth.parse_counts("8,1,2,4,2") == [1, 2, 4, 8]
    for bad in ("0,1", "9", ""):
        with pytest.raises(ValueError):
            scenario_growth.parse_counts(bad)


# --- plan figures ------------------------------------------------------------------------


def test_plan_figures_agree_with_gate_list() -> None:
    """The bench reads the same planner `--list` prints: its numbers must match the text."""
    matrix, expected = matrix_plans.example("matrix.py")
    got = matrix_plans.figures("sample", matrix, expected)
    listed = "\n".join(planner.plan_lines(matrix, expected))
    assert f"declared: {got.declared} scenarios, {got.declared_share:.0%}" in listed
    assert f"pairwise: {got.pairwise} scenarios, {got.pairwise_share:.0%}" in listed
    assert f"(lower bound {got.bound})" in listed
    assert f"full product: {got.product} scenarios" in listed
    given, best = got.declared_restarts
    assert f"declared: {given} in the declared order, {best} in the minimised order" in listed
    given, best = got.pairwise_restarts
    assert f"pairwise: {given} in the pairwise order, {best} in the minimised order" in listed


def test_the_004_shaped_matrix_has_its_shape() -> None:
    matrix, expected = matrix_plans.shaped_like_004()
    got = matrix_plans.figures("004", matrix, expected)
    assert (got.shape, got.product, got.bound, got.declared) == ("2,2,2,3,2,2,2", 192, 6, 0)
    assert got.pairwise_share == 1.0


def test_the_box_table_gives_each_fleet_size_its_ratio_to_one_box() -> None:
    def measured(count: int, wall: float, boxes: tuple[float, ...], code: int = 0) -> Any:
        run = gaterun.GateRun((), code, 0.0, wall, None, "gate fleet: failed")
        return scenario_growth.Measured("fleet", count, run, boxes)

    found = [measured(1, 8.0, ()), measured(2, 10.0, (9.0, 9.5)), measured(4, 16.0, (15.0,), 1)]
    rows = scenario_growth.box_table(found, [1, 2, 4])
    assert [row[:5] for row in rows] == [
        ("1", "1", "8.0", "1.0x", "-"),
        ("2", "1", "10.0", "1.2x", "9.5"),
        ("4", "1", "16.0", "2.0x", "15.0"),
    ]
    assert rows[2][5] == "1 run(s) did not pass: gate fleet: failed"


def test_the_readiness_benchs_cpu_wrapper_passes_everything_through_and_logs_the_cpu(
    tmp_path: Path,
) -> None:
    """The stack's status runs must look to gate as they do unwrapped (exit code, both
    streams), and each leaves one line of CPU seconds that stack_cpu_since adds up."""
    readiness = load("readiness_lag")
    (tmp_path / "stackctl").write_text(
        "#!/bin/sh\ni=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\n"
        'echo "out $*"; echo err >&2; exit 3\n'
    )
    (tmp_path / "stackctl").chmod(0o755)
    wrapper = readiness.cpu_wrapper(tmp_path)
    log = readiness.stack_cpu_log(tmp_path)

    ran = [subprocess.run([str(wrapper), "status", "--json"], capture_output=True, text=True)
           for _ in range(2)]  # fmt: skip

    assert [(r.returncode, r.stdout, r.stderr) for r in ran] == [
        (3, "out status --json\n", "err\n")
    ] * 2
    assert len(log.read_text().splitlines()) == 2
    first_line = len(log.read_text().splitlines()[0]) + 1
    both, second = readiness.stack_cpu_since(log, 0), readiness.stack_cpu_since(log, first_line)
    assert both > second > 0  # the loop burns CPU; the offset leaves the first run out
