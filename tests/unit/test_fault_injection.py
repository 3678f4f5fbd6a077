"""--fault-injection on the fake stack: whole runs in milliseconds.

The sample's own faults (matrix.py: node stopped, node paused, worker-2 removed) with their
windows cut short (fakestack.quick). Each verdict is red through one defect switch of
tests/unit/fakestack.py: a proxy that keeps admitting with the node down (not degraded), a
stopped service that comes back by itself (the hold broken, the sample named), a frozen
service SIGCONT does not thaw (never recovers). The heal runs on every path: a SIGINT and a
lost link in the middle of a fault, the latter healed by `--recover`.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakestack import SECRETS, FakeStack, default_config
from test_engine import Outcome, contract_file, gate

from gate.box import Kind
from gate.cli.listing import list_plan
from gate.engine.run import Run
from gate.faults import exercise
from gate.options import Flag, Options
from gate.phases import Phase, register, unregister
from gate.testing.double import Answer, Lost

REPO = Path(__file__).resolve().parents[2]
SCENARIO = ["local-defaults"]
FAULTS = ("node stopped", "node paused", "worker-2 removed")
STEPS = ("armed", "degraded within 0.3s", "held 0.3s", "recovered within 0.3s")
INJECTIONS = ("stackctl stop ", "stackctl kill ", "stackctl rm ")


def run_faults(stack: FakeStack, tmp_path: Path, extra: str = "", **flags: Any) -> Outcome:
    flags = {"no_backup": True, **flags}
    if flags.get("safety_backup"):
        flags.pop("no_backup")
    contract = contract_file(tmp_path, extra)
    return gate(stack, contract, tmp_path, fault_injection=True, scenario=SCENARIO, **flags)


def index(stack: FakeStack, needle: str) -> int:
    """The position of the first command holding `needle`."""
    return next(i for i, c in enumerate(stack.target.commands) if needle in c)


def journaled(stack: FakeStack, event: str) -> list[int]:
    """Positions of the commands that wrote `event` into the on-box journal."""
    return [i for i, call in enumerate(stack.target.calls) if f'"event": "{event}"' in call.stdin]


def records(run: Outcome, fault: str) -> dict[str, dict[str, Any]]:
    prefix = f"{fault}: "
    found = run.summary["checks"]
    return {c["name"].removeprefix(prefix): c for c in found if c["name"].startswith(prefix)}


# --- green ------------------------------------------------------------------------------


def test_every_fault_is_armed_injected_degraded_held_and_recovered(tmp_path: Path) -> None:
    stack = FakeStack()
    run = run_faults(stack, tmp_path)
    assert run.code == 0, run.console
    for fault in FAULTS:
        steps = records(run, fault)
        assert {s: steps[s]["verdict"] for s in STEPS} == dict.fromkeys(STEPS, "pass"), steps
        assert all(steps[s]["phase"] == "fault-injection" for s in STEPS)
    held = records(run, "node stopped")["held 0.3s"]["evidence"]
    assert re.match(r"\d+ samples over [\d.]+s all held", held), held
    assert "proxy.admitting = false" in held and "status exit 1" in held, held
    # the repair is journaled on the box BEFORE the injection, and closed after the heal
    opened, closed = journaled(stack, "repair-open"), journaled(stack, "repair-closed")
    assert len(opened) == len(closed) == 3
    stop, start = index(stack, "stackctl stop node"), index(stack, "stackctl start node")
    assert opened[0] < stop < start < closed[0]
    assert index(stack, "stackctl kill -s STOP node") < index(stack, "stackctl kill -s CONT node")
    assert index(stack, "stackctl rm worker-2") < index(stack, "stackctl up")
    assert all(p.state == "running" for p in stack.programs.values())
    assert "restore proven" in run.console
    assert not (run.run_dir / "captures").exists()  # nothing failed: nothing captured
    written = [run.console] + [p.read_text() for p in run.run_dir.rglob("*") if p.is_file()]
    assert not [k for k, v in SECRETS.items() if any(v in text for text in written)]


def test_the_three_timings_of_each_fault_are_in_summary_json(tmp_path: Path) -> None:
    run = run_faults(FakeStack(), tmp_path)
    faults = {f["fault"]: f for f in run.summary["faults"]}
    assert sorted(faults) == sorted(FAULTS)
    for timing in faults.values():
        assert timing["verdict"] == "pass"
        assert timing["phase"] == "fault-injection"
        assert timing["detect_s"] is not None and 0 <= timing["detect_s"] <= 0.3
        assert timing["hold_s"] is not None and timing["hold_s"] >= 0.3
        assert timing["hold_samples"] >= 3
        assert timing["recover_s"] is not None and timing["recover_s"] >= 0
    assert faults["node paused"]["inject"] == "pause"
    assert faults["worker-2 removed"]["service"] == "worker-2"


# --- red --------------------------------------------------------------------------------


def test_not_armed_is_a_failure_and_nothing_is_injected(tmp_path: Path) -> None:
    """No worker online before the fault: the positive control fails, so no fault is
    injected (a fault that switches off what was never on proves nothing)."""
    stack = FakeStack(api_overrides={"workers.online": 0})
    run = run_faults(stack, tmp_path)
    assert run.code == 1, run.console
    armed = records(run, "node stopped")["armed"]
    assert armed["verdict"] == "fail", armed
    assert "NOT injected" in armed["evidence"] and "workers.online = 0" in armed["evidence"]
    assert not any(verb in c for c in stack.target.commands for verb in INJECTIONS)
    assert journaled(stack, "repair-open") == []


ALREADY_DEGRADED = (
    "import dataclasses\n"
    "from gate.contract import Check, Equals\n"
    "STILL = Check('proxy admitting', 'api', 'proxy.admitting', Equals(True))\n"
    "F = dataclasses.replace(CONTRACT.faults[0], degraded=(STILL,), status_exit=None)\n"
    "CONTRACT = dataclasses.replace(CONTRACT, faults=(F,))\n"
)


def test_a_degraded_state_that_already_holds_when_healthy_is_refused_before_injection(
    tmp_path: Path,
) -> None:
    """No status exit, and a degraded check the healthy stack already passes: seeing it
    after the fault would prove nothing, so the fault is not injected."""
    stack = FakeStack()
    run = run_faults(stack, tmp_path, ALREADY_DEGRADED)
    assert run.code == 1, run.console
    armed = records(run, "node stopped")["armed"]
    assert armed["verdict"] == "fail", armed
    assert armed["evidence"].startswith("the degraded state already holds before the fault")
    assert "proxy.admitting = true" in armed["evidence"]
    assert not any(verb in c for c in stack.target.commands for verb in INJECTIONS)


def test_a_proxy_that_keeps_admitting_with_the_node_down_is_not_degraded(tmp_path: Path) -> None:
    stack = FakeStack(proxy_ignores_node=True)
    run = run_faults(stack, tmp_path)
    assert run.code == 1, run.console
    steps = records(run, "node stopped")
    detect = steps["degraded within 0.3s"]
    assert detect["verdict"] == "fail", detect
    assert "proxy.admitting = true" in detect["evidence"], detect["evidence"]
    assert "held 0.3s" not in steps, "a hold after no detection"
    assert steps["recovered within 0.3s"]["verdict"] == "pass"  # the heal still ran
    assert index(stack, "stackctl stop node") < index(stack, "stackctl start node")
    timing = next(f for f in run.summary["faults"] if f["fault"] == "node stopped")
    assert timing["detect_s"] is None and timing["verdict"] == "fail"
    assert "restore proven" in run.console
    captured = run.run_dir / "captures" / "fault_injection" / "status.txt"
    assert captured.is_file(), "a failed fault leaves the stack's diagnostics"
    assert "[exit " in captured.read_text()


def test_a_hold_broken_in_the_middle_names_the_sample(tmp_path: Path) -> None:
    """The stopped node comes back by itself on the 3rd status read after the stop: the
    detection (read 1) and the hold's first sample (read 2) see it down, the 2nd does not."""
    stack = FakeStack(revive_after_reads=3)
    run = run_faults(stack, tmp_path)
    assert run.code == 1, run.console
    steps = records(run, "node stopped")
    assert steps["degraded within 0.3s"]["verdict"] == "pass"
    held = steps["held 0.3s"]
    assert held["verdict"] == "fail", held
    assert held["evidence"].startswith("sample 2 of the hold"), held["evidence"]
    assert "status exited 0, not 1" in held["evidence"], held["evidence"]
    assert "samples 1-1 held" in held["evidence"]
    assert records(run, "node paused")["held 0.3s"]["verdict"] == "pass"  # kill is no stop


def test_a_stack_that_never_recovers_after_sigcont_fails_and_is_rolled_back(
    tmp_path: Path,
) -> None:
    """SIGCONT does not thaw the node: not recovered, the later fault not run (a missing
    skip), no later phase run on the broken stack, and the box comes back through the
    safety backup's rollback (down, up)."""
    stack = FakeStack(never_thaws=True)
    run = run_faults(stack, tmp_path, safety_backup=True)
    assert run.code == 1, run.console
    recovered = records(run, "node paused")["recovered within 0.3s"]
    assert recovered["verdict"] == "fail", recovered
    assert "not ready" in recovered["evidence"], recovered["evidence"]
    later = records(run, "worker-2 removed")["remove worker-2"]
    assert later["verdict"] == "skip" and later["skip_class"] == "missing", later
    assert "did not recover from 'node paused'" in later["evidence"]
    assert "stackctl rm worker-2" not in " ".join(stack.target.commands)
    assert "did not recover from 'node paused' after the heal: no later phase" in run.console
    assert not any(c["scenario"] for c in run.summary["checks"]), "the matrix ran on it"
    assert index(stack, "stackctl kill -s CONT node") < index(stack, "stackctl down")
    assert "restore proven" in run.console
    assert all(p.state == "running" for p in stack.programs.values())
    assert (run.run_dir / "captures" / "fault_injection" / "status.txt").is_file()


def test_a_fault_on_a_service_the_config_does_not_run_is_a_by_design_skip(
    tmp_path: Path,
) -> None:
    cfg = default_config()
    cfg["workers"]["count"] = 1
    stack = FakeStack(cfg)
    run = run_faults(stack, tmp_path, fact=["workers=1"])
    assert run.code == 0, run.console
    skipped = records(run, "worker-2 removed")
    assert list(skipped) == ["remove worker-2"], skipped
    record = skipped["remove worker-2"]
    assert record["verdict"] == "skip" and record["skip_class"] == "by-design", record
    assert "does not run worker-2" in record["evidence"]
    assert [f["fault"] for f in run.summary["faults"]] == ["node stopped", "node paused"]
    assert not any("worker-2" in c for c in stack.target.commands if "stackctl" in c)


# --- the heal on every path ---------------------------------------------------------------


def test_a_sigint_in_the_middle_of_a_fault_heals_it_restores_and_exits_130(
    tmp_path: Path,
) -> None:
    stack = FakeStack()

    def stop_then_sigint(match: re.Match[str], stdin: str) -> Answer:
        os.kill(os.getpid(), signal.SIGINT)
        return stack._shell(match, stdin)

    stack.target.on(re.compile(r"stackctl stop node$"), stop_then_sigint)
    run = run_faults(stack, tmp_path)
    assert run.code == 130, run.console
    steps = records(run, "node stopped")
    assert "held 0.3s" not in steps and "degraded within 0.3s" not in steps
    assert run.verdict("repair: node stopped: heal node") == "pass"
    assert index(stack, "stackctl stop node") < index(stack, "stackctl start node")
    assert "stackctl kill" not in " ".join(stack.target.commands), "a later fault ran"
    assert stack.programs["node"].state == "running"
    assert "restore proven" in run.console
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"


def test_a_link_lost_in_the_middle_of_a_fault_leaves_it_open_for_recover(
    tmp_path: Path,
) -> None:
    stack = FakeStack()

    def stop_then_drop(match: re.Match[str], stdin: str) -> Answer:
        stack._shell(match, stdin)
        return Lost("link dropped right after the stop (fake)", reconnect=False)

    stack.target.on(re.compile(r"stackctl stop node$"), stop_then_drop)
    (tmp_path / "lost").mkdir()
    lost = run_faults(stack, tmp_path / "lost")
    assert lost.code == 4, lost.console  # dirty: a break nobody could mend
    (said,) = [ln for ln in lost.console.splitlines() if "repair(s) left open" in ln]
    assert "(node stopped: heal node)" in said and "--recover` mends them" in said, said
    assert stack.programs["node"].state == "exited", "nothing could heal it over a dead link"

    stack.target.reachable = True
    contract = contract_file(tmp_path)
    recovered = gate(stack, contract, tmp_path / "again", recover=True)
    assert recovered.code == 0, recovered.console
    assert "recover: node stopped: heal node: mended" in recovered.console
    assert stack.programs["node"].state == "running"
    assert "restore proven" in recovered.console


class FailoverPhase(Phase):
    """What --lifecycle does with the failover: exercise() under its own phase name."""

    name = "failover_probe"
    mutates = True
    flag = Flag("failover_probe", "exercise the contract's failover (tests)")

    def run(self, run: Run) -> None:
        failover = run.box.contract.failover
        assert failover is not None
        exercise(run, failover, "lifecycle")


@pytest.fixture
def failover_phase() -> Iterator[FailoverPhase]:
    phase = FailoverPhase()
    register(phase)
    yield phase
    unregister(phase.name)


def test_exercise_is_phase_agnostic_the_failover_runs_under_the_callers_phase(
    failover_phase: FailoverPhase, tmp_path: Path
) -> None:
    stack = FakeStack()
    contract = contract_file(tmp_path)
    run = gate(stack, contract, tmp_path, failover_probe=True, scenario=SCENARIO)
    assert run.code == 0, run.console
    steps = records(run, "node stopped")
    assert {s: steps[s]["phase"] for s in STEPS} == dict.fromkeys(STEPS, "lifecycle")
    assert [(f["phase"], f["fault"]) for f in run.summary["faults"]] == [
        ("lifecycle", "node stopped")
    ]
    opened = [c.stdin for c in stack.target.calls if '"event": "repair-open"' in c.stdin]
    assert len(opened) == 1 and '"key": "lifecycle:node stopped"' in opened[0], opened


# --- refused before anything is touched ---------------------------------------------------

NO_FAULTS = "import dataclasses\nCONTRACT = dataclasses.replace(CONTRACT, faults=())\n"
NO_KILL = (
    "import dataclasses\n"
    "CONTRACT = dataclasses.replace(\n"
    "    CONTRACT, actions=dataclasses.replace(CONTRACT.actions, kill=None)\n"
    ")\n"
)
KILL_WITHOUT_SIGNAL = (
    "import dataclasses\n"
    "CONTRACT = dataclasses.replace(\n"
    "    CONTRACT, actions=dataclasses.replace(CONTRACT.actions, kill='kill {service}')\n"
    ")\n"
)
UNDECLARED_PROBE = (
    "import dataclasses\n"
    "from gate.contract import Check, Equals\n"
    "ODD = Check('odd', 'no-such-probe', 'x', Equals(1))\n"
    "F = dataclasses.replace(CONTRACT.faults[0], degraded=(ODD,))\n"
    "CONTRACT = dataclasses.replace(CONTRACT, faults=(F,))\n"
)


def test_a_contract_without_faults_is_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    stack = FakeStack()
    run = run_faults(stack, tmp_path, NO_FAULTS)
    assert run.code == 2, run.console
    assert "StackContract.faults" in run.console
    assert Kind.MUTATE not in run.kinds()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (NO_KILL, "fault 'node paused' (pause node) needs Actions.kill, which"),
        (KILL_WITHOUT_SIGNAL, "fault 'node paused' (pause node) needs Actions.kill with {signal}"),
        (UNDECLARED_PROBE, "uses probe 'no-such-probe', which it does not declare"),
    ],
)
def test_a_fault_the_contract_cannot_inject_or_judge_is_refused_at_load(
    tmp_path: Path, extra: str, said: str
) -> None:
    stack = FakeStack()
    run = run_faults(stack, tmp_path, extra)
    assert run.code == 2, run.console
    assert said in run.console, run.console
    assert stack.target.calls == [], "the box was touched"


def test_list_shows_each_fault_and_what_it_must_show() -> None:
    stream = io.StringIO()
    assert list_plan(Options(matrix_file=REPO / "matrix.py"), stream) == 0
    lines = stream.getvalue().splitlines()
    start = lines.index("faults (--fault-injection, in order):")
    assert [ln.split(":")[0].strip() for ln in lines[start + 1 : start + 4]] == list(FAULTS)
    assert lines[start + 1].startswith(
        "  node stopped: stop node -> status exit 1, api: proxy not admitting workers"
    ), lines[start + 1]
    assert "[within 30s, held 3s, recovered within 60s]" in lines[start + 1]
    (failover,) = [ln for ln in lines if ln.startswith("failover (--lifecycle): ")]
    assert failover.removeprefix("failover (--lifecycle): ") == lines[start + 1].strip()
    (guard,) = [ln for ln in lines if ln.startswith("auth guard (--auth-fail-closed): ")]
    assert "proxy refuses to start with PROXY_AUTH_TOKEN blank" in guard, guard
