"""--lifecycle on the fake stack: whole runs in milliseconds, each red through one defect.

Green first (the positive control of every red below): restart, the one-service change and
its revert, the round trip, each proven, and the box as it was. Then: a restart that
restarts nothing, an apply that recreates a second service on a one-service change, a
restore that does nothing, a matrix without a one-service axis, a contract without the
actions, and a SIGINT between the round trip's down and its restore.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeStack
from test_engine import Outcome, contract_file, gate
from test_safety_backup import snapshot

from gate.changes import Change, any_change, fact_only, one_service_change
from gate.checks import SkipClass, Verdict
from gate.matrix import Axis, Fact, Matrix, Scenario
from gate.restarts import renewed
from gate.testing.double import Lost, Reply

SCENARIO = ["local-defaults"]
RESTARTED = "lifecycle restart: every running service restarted (new pid or start time)"
SCOPE = "lifecycle change: scope: services outside the change kept their pids"
ROUND_TRIP_BYTES = "lifecycle round trip: config bytes equal the archive's"
DIVERGED = "lifecycle round trip: the box diverged from the archive"


def lifecycle(stack: FakeStack, contract: Path, tmp_path: Path, **flags: Any) -> Outcome:
    flags = {"safety_backup": True, **flags}
    return gate(stack, contract, tmp_path, scenario=SCENARIO, lifecycle=True, **flags)


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    return contract_file(tmp_path)


def lifecycle_records(run: Outcome) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "lifecycle"}


# --- green: the positive control ------------------------------------------------------------


def test_the_lifecycle_passes_on_a_healthy_box_and_leaves_it_as_it_was(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    before = snapshot(stack)
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 0, run.console
    found = lifecycle_records(run)
    failed = {n: v for n, v in found.items() if v not in ("pass", "skip")}
    assert not failed, failed
    assert found[RESTARTED] == found[SCOPE] == found[ROUND_TRIP_BYTES] == "pass"
    assert found["lifecycle revert: config bytes identical"] == "pass"
    failover = "lifecycle failover: node stopped: "
    steps = ("armed", "degraded within 0.3s", "held 0.3s", "recovered within 0.3s")
    assert {s: found[failover + s] for s in steps} == dict.fromkeys(steps, "pass"), found
    (timing,) = run.summary["faults"]
    assert (timing["phase"], timing["fault"], timing["verdict"]) == (
        "lifecycle",
        "node stopped",
        "pass",
    )
    assert run.summary["phases"] == ["safety_backup", "lifecycle", "matrix"]
    assert "lifecycle change: node.lan_access=true (touches node)" in run.console
    assert "node recreated" in run.record(SCOPE)["evidence"]
    commands = stack.target.commands
    order = [
        commands.index("./stackctl restart"),
        commands.index("./stackctl down"),
        commands.index("./stackctl restore /srv/stack/backups/backup-2.tar.gz"),
    ]
    assert order == sorted(order)
    assert "rm -f -- /srv/stack/backups/backup-2.tar.gz" in commands
    assert not stack.archives, "an archive was left on the box"
    assert snapshot(stack)["files"] == before["files"]
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"
    events = [json.loads(ln) for ln in (run.run_dir / "events.jsonl").read_text().splitlines()]
    kinds = {e["command"]: e["kind"] for e in events}
    assert kinds["./stackctl restart"] == kinds["./stackctl down"] == "mutate"


# --- red: each step catches its defect ---------------------------------------------------------


def test_a_restart_that_restarts_nothing_fails_naming_every_service(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(restart_noop=True)
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 1, run.console
    record = run.record(RESTARTED)
    assert record["verdict"] == "fail"
    assert record["observed"] == ("not restarted: dashboard, node, pool, proxy, worker-1, worker-2")
    assert "restore proven" in run.console


@pytest.mark.parametrize(
    ("defect", "extra"),
    [
        ("restart_on_every_apply", "pool"),
        ("recreate_all_on_change", "dashboard, pool, proxy, worker-1, worker-2"),
    ],
)
def test_a_change_that_recreates_another_service_fails_naming_it(
    contract: Path, tmp_path: Path, defect: str, extra: str
) -> None:
    """node.lan_access touches the node alone; one defect restarts pool on every apply, the
    other recreates every program on any change."""
    stack = FakeStack(**{defect: True})
    before = snapshot(stack)["files"]
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 1, run.console
    scope = run.record(SCOPE)
    assert scope["verdict"] == "fail"
    assert scope["observed"] == f"recreated or stopped: {extra}"
    assert "restore proven" in run.console
    assert snapshot(stack)["files"] == before


def test_a_restore_that_fails_still_brings_the_stack_up_and_fails_the_step(
    contract: Path, tmp_path: Path
) -> None:
    """--no-backup: with a safety backup the rollback would use the same broken restore."""
    stack = FakeStack(restore_fails=True)
    run = lifecycle(stack, contract, tmp_path, safety_backup=None, no_backup=True)
    assert run.code == 1, run.console
    record = run.record("lifecycle round trip: down, restore, up exited 0")
    assert record["verdict"] == "fail"
    assert "restore /srv/stack/backups/backup-1.tar.gz` exited 2" in record["evidence"]
    assert record["evidence"].endswith("`up` exited 0")
    commands = stack.target.commands
    restore = commands.index("./stackctl restore /srv/stack/backups/backup-1.tar.gz")
    assert commands[restore + 1 :].count("./stackctl up") >= 1
    assert run.verdict("lifecycle round trip: ready") == "pass"
    assert "restore proven" in run.console
    assert not stack.archives


def test_a_restore_that_does_nothing_fails_the_round_trip(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack(restore_noop=True)
    before = snapshot(stack)["files"]
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 1, run.console
    assert run.verdict(DIVERGED) == "pass"  # shown first: the restore had work to do
    bytes_back = run.record(ROUND_TRIP_BYTES)
    assert bytes_back["verdict"] == "fail"
    assert bytes_back["observed"] != bytes_back["expected"]
    assert run.verdict("lifecycle round trip: baseline config applied again") == "pass"
    assert "restore proven" in run.console
    assert not stack.archives
    assert snapshot(stack)["files"] == before


def test_a_change_that_does_not_reach_the_config_file_cannot_show_divergence(
    contract: Path, tmp_path: Path
) -> None:
    """The divergence is read from the box, not assumed: a render that writes nothing
    fails it (and the restore is then not run)."""
    stack = FakeStack()
    original = stack.files["config.json"].text
    renders = 0

    def render_nothing(match: re.Match[str], stdin: str) -> Reply:
        nonlocal renders
        renders += 1
        reply = stack._shell(match, stdin)
        if renders == 2:  # the change, then the round trip's divergence
            stack.files["config.json"].text = original
        return reply

    stack.target.on(re.compile(r"boxtool\.py render "), render_nothing)
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 1, run.console
    assert run.verdict(DIVERGED) == "fail"
    names = lifecycle_records(run)
    assert ROUND_TRIP_BYTES not in names, "the restore ran though nothing diverged"
    assert not stack.archives


# --- what the contract and the matrix must declare ---------------------------------------------

ALL_GLOBS = (
    "import dataclasses\n"
    "MATRIX = dataclasses.replace(\n"
    "    MATRIX, axes=tuple(dataclasses.replace(a, touches=('*',)) for a in MATRIX.axes)\n"
    ")\n"
)


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 1)])
def test_without_a_one_service_axis_the_change_is_a_missing_skip(
    tmp_path: Path, strict: bool, code: int
) -> None:
    stack = FakeStack()
    run = lifecycle(stack, contract_file(tmp_path, ALL_GLOBS), tmp_path, strict=strict)
    assert run.code == code, run.console
    record = run.record("lifecycle change: one service recreated alone")
    assert record["verdict"] == "skip" and record["skip_class"] == "missing"
    assert "touches name exactly one service" in record["evidence"]
    assert run.verdict(ROUND_TRIP_BYTES) == "pass", "the round trip diverges another way"
    if strict:
        assert (
            "skip of class missing: lifecycle change: one service recreated alone"
            in (run.summary["strict_failures"])
        )


@pytest.mark.parametrize(
    ("action", "said"),
    [
        ("restart", "declares no restart action"),
        ("backup", "declares no backup action"),
        ("down", "declares no down action"),
        ("restore", "declares no restore action"),
    ],
)
def test_a_contract_without_an_action_the_lifecycle_uses_is_refused_untouched(
    tmp_path: Path, action: str, said: str
) -> None:
    extra = (
        "import dataclasses\n"
        "CONTRACT = dataclasses.replace(\n"
        f"    CONTRACT, actions=dataclasses.replace(CONTRACT.actions, {action}=None)\n"
        ")\n"
    )
    stack = FakeStack()
    run = lifecycle(stack, contract_file(tmp_path, extra), tmp_path, safety_backup=None,
                    no_backup=True)  # fmt: skip
    assert run.code == 2, run.console
    assert f"--lifecycle: contract sample-stack {said}" in run.console
    assert not any(".gate/baseline" in c for c in stack.target.commands), "a baseline was taken"


def test_a_restore_that_cannot_take_the_archive_is_refused(tmp_path: Path) -> None:
    extra = (
        "import dataclasses\n"
        "CONTRACT = dataclasses.replace(\n"
        "    CONTRACT, actions=dataclasses.replace(CONTRACT.actions, restore='restore')\n"
        ")\n"
    )
    run = lifecycle(FakeStack(), contract_file(tmp_path, extra), tmp_path, safety_backup=None,
                    no_backup=True)  # fmt: skip
    assert run.code == 2, run.console
    assert "must take the archive" in run.console


def test_lifecycle_alone_is_refused_without_a_backup_decision(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = lifecycle(stack, contract, tmp_path, safety_backup=None)
    assert run.code == 2, run.console
    assert "--lifecycle can break" in run.console
    assert stack.target.calls == []


# --- a signal in the middle of the phase ------------------------------------------------------


def test_a_sigint_after_the_round_trips_down_mends_restores_and_removes_its_archive(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    before = snapshot(stack)["files"]

    def down_then_sigint(match: re.Match[str], stdin: str) -> Reply:
        reply = stack._ctl_down(match, stdin)
        os.kill(os.getpid(), signal.SIGINT)
        return reply

    stack.target.once(re.compile(r"^\./stackctl down$"), down_then_sigint)
    run = lifecycle(stack, contract, tmp_path)
    assert run.code == 130, run.console
    commands = stack.target.commands
    down = commands.index("./stackctl down")
    assert not any(c.startswith("./stackctl restore /srv/stack/backups/backup-2") for c in
                   commands[down:]), "the restore was still sent after the signal"  # fmt: skip
    assert commands[down + 1 :].count("rm -f -- /srv/stack/backups/backup-2.tar.gz") == 1
    assert run.verdict("repair: stack up after the round trip's down") == "pass"
    assert "restore proven" in run.console
    assert not stack.archives
    assert all(p.state == "running" for p in stack.programs.values())
    assert snapshot(stack)["files"] == before
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"
    assert not any(c["scenario"] for c in run.summary["checks"]), "the matrix ran after SIGINT"


# --- the pure parts ------------------------------------------------------------------------


def test_a_restart_is_judged_on_every_service_that_reports_an_identity() -> None:
    before = {"a": (10, 1.0), "b": (11, 1.0), "c": (None, None)}
    moved = renewed(before, {"a": (20, 2.0), "b": (21, 2.0)}, ["pid", "started"])
    assert moved.verdict is Verdict.PASS, moved
    assert "no pid or start time reported for: c" in moved.evidence
    half = renewed(before, {"a": (20, 2.0), "b": (11, 1.0)}, ["pid", "started"])
    assert (half.verdict, half.observed) == (Verdict.FAIL, "not restarted: b")
    gone = renewed(before, {"a": (20, 2.0)}, ["pid", "started"])
    assert (gone.verdict, gone.observed) == (Verdict.FAIL, "not running after: b")
    blind = renewed({"a": (0,), "b": ("",)}, {"a": (0,), "b": ("",)}, ["pid"])
    assert (blind.verdict, blind.skip_class) == (Verdict.SKIP, SkipClass.MISSING)
    assert renewed("status unreadable", {}, ["pid"]).verdict is Verdict.FAIL


MATRIX = Matrix(
    axes=(
        Axis("mode", ("local", "remote"), touches=("*",)),
        Axis("compact", (False, True), touches=("node",)),
        Axis("bind", (False, True), touches=("node",)),
        Axis("tier", ("mini", "main"), touches=("pool",)),
        Axis("cache", (False, True), touches=("cache", "dashboard")),
        Axis("port", (1, True), touches=("proxy",)),
    ),
    scenarios=(
        Scenario("remote", {"mode": "remote", "url": Fact("url")}),
        Scenario("compact", {"compact": True, "dir": Fact("dir")}),
        Scenario("both", {"bind": True, "tier": "main"}),
    ),
)
CFG = {"mode": "local", "compact": False, "bind": False, "tier": "mini", "cache": False, "port": 1}


def test_the_change_is_the_first_one_service_axis_with_a_value_safe_alone() -> None:
    """compact=True only comes with a Fact (a spare data dir): the matrix says it is not
    safe alone, so bind (the next axis touching node alone) is the change."""
    assert fact_only(MATRIX, "compact", True) and not fact_only(MATRIX, "bind", True)
    running = frozenset({"node", "pool", "proxy"})
    assert one_service_change(MATRIX, CFG, running) == Change("bind", True, "node")
    assert one_service_change(MATRIX, {**CFG, "bind": True}, running) == Change(
        "bind", False, "node"
    )
    without_node = frozenset({"pool", "proxy"})
    assert one_service_change(MATRIX, CFG, without_node) == Change("tier", "main", "pool")
    assert one_service_change(MATRIX, CFG, frozenset({"proxy"})) == Change("port", True, "proxy")
    assert one_service_change(MATRIX, {**CFG, "port": True}, frozenset({"proxy"})) == Change(
        "port", 1, "proxy"
    ), "True is not 1"
    assert one_service_change(MATRIX, CFG, frozenset({"cache", "dashboard"})) is None
    assert any_change(MATRIX, CFG) == Change("bind", True)
    assert str(Change("bind", True)) == "bind=true"


def test_a_run_killed_in_the_round_trip_leaves_its_archive_to_the_recover(
    contract: Path, tmp_path: Path
) -> None:
    """The round trip's archive is a repair opened with the backup: a runner gone at the
    round trip's `down` leaves it journaled, and `--recover` brings the stack up, removes it
    (and the safety backup), and proves the box."""
    stack = FakeStack()
    before = snapshot(stack)["files"]
    gone = Lost("the runner was killed (scripted)", reconnect=False)
    stack.target.once(re.compile(r"^\./stackctl down$"), gone)
    killed = lifecycle(stack, contract, tmp_path / "killed")
    assert killed.code != 0, killed.console
    assert "backups/backup-2.tar.gz" in stack.archives, "the round trip made no archive"

    stack.target.reachable = True
    stack.target.calls.clear()
    recovered = gate(stack, contract, tmp_path / "recovered", recover=True)
    assert recovered.code == 0, recovered.console
    assert "rm -f -- /srv/stack/backups/backup-2.tar.gz" in stack.target.commands
    assert "round-trip archive /srv/stack/backups/backup-2.tar.gz removed: mended" in (
        recovered.console
    )
    assert not stack.archives, stack.archives
    assert snapshot(stack)["files"] == before
