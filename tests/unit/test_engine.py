"""The engine on the scripted double: phases, the always-restore, exit codes, verdict words.

Every run here is a whole `gate` run (flags -> engine -> results/) against FakeStack, in
milliseconds; what only a real box shows stays in tests/integration.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeStack

from gate.box import Kind
from gate.cli import run_cli
from gate.engine.run import Run
from gate.matrix import validate_matrix
from gate.options import Flag, load_contract_file
from gate.phases import Phase, register, unregister
from gate.snapshot import BASELINE_CONFIG
from gate.testing.double import Reply

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]


def contract_file(tmp_path: Path, extra: str = "") -> Path:
    """The repo's contract and matrix with every wait window cut short (see fakestack.quick)."""
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
        "MATRIX = module.MATRIX\n" + extra
    )
    return path


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    return contract_file(tmp_path)


@pytest.fixture
def real_windows(tmp_path: Path) -> Path:
    """matrix.py's own windows (60 s): a test that must answer fast cannot hide a wait."""
    return contract_file(tmp_path, "CONTRACT = load_contract()\n")


class Outcome:
    """A finished in-process run: its exit code, console text and artifacts."""

    def __init__(self, code: int, console: str, out: Path) -> None:
        self.code, self.console, self.out = code, console, out

    @property
    def run_dir(self) -> Path:
        (found,) = [p for p in self.out.iterdir() if p.is_dir()]
        return found

    @property
    def summary(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "summary.json").read_text()))

    def kinds(self) -> list[str]:
        lines = (self.run_dir / "events.jsonl").read_text().splitlines()
        return [json.loads(line)["kind"] for line in lines]

    def record(self, name: str) -> dict[str, Any]:
        return next(c for c in self.summary["checks"] if c["name"] == name)

    def verdict(self, name: str) -> str:
        found = {c["name"]: c["verdict"] for c in self.summary["checks"]}
        assert name in found, sorted(found)
        return found[name]


def gate(
    stack: FakeStack, contract: Path, tmp_path: Path, program: str = "invoke gate", **flags: Any
) -> Outcome:
    out = tmp_path / "results"
    raw = {"local": True, "dir": stack.dir, "matrix": str(contract), "out": str(out), **flags}
    raw = {k: v for k, v in raw.items() if v is not None}
    console = io.StringIO()
    code = run_cli(raw, console, target=lambda _host, _accept: stack.target, program=program)
    stack.target.verify()
    return Outcome(code, console.getvalue(), out)


# --- read-only runs ----------------------------------------------------------------------


def test_check_on_a_healthy_box_passes_and_sends_no_mutating_command(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = gate(stack, contract, tmp_path, check=True)
    assert run.code == 0, run.console
    assert run.summary["verdict"] == "passed"
    assert "read" in run.kinds()
    assert Kind.MUTATE not in run.kinds()
    assert not any(name.startswith(".gate/baseline") for name in stack.files)


def test_a_transport_notice_reaches_the_console_and_the_summary_notes(
    contract: Path, tmp_path: Path
) -> None:
    """A target that changes its own transport mid-run (gate/target.py's fallback) says so
    through `notice`: the run records it where a reader looks."""
    stack = FakeStack()
    said = "transport: the far end had ended; each command now gets a fresh SSH channel"

    def version_with_a_fallback(_match: re.Match[str], _stdin: str) -> Reply:
        stack.target.notice(said)
        return Reply(stdout='{"version": "1.0"}\n')

    stack.target.once("./stackctl version --json", version_with_a_fallback)
    run = gate(stack, contract, tmp_path, check=True)
    assert run.code == 0, run.console
    assert said in run.summary["notes"]
    assert said in run.console


def test_local_with_an_inventory_file_takes_its_dir_and_requirements(
    contract: Path, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "onbox.toml").write_text(
        f'host = "localhost"\ndir = "{FakeStack().dir}"\n[requirements]\nworkers = "2"\n'
    )
    stack = FakeStack()
    run = gate(
        stack, contract, tmp_path, dir=None, host="onbox", inventory=str(inventory), check=True
    )
    assert run.code == 0, run.console
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert (manifest["host"], manifest["stack_dir"]) == ("onbox", stack.dir)


def test_status_services_as_strings_are_a_failed_check_not_a_crash(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(status_services_as_strings=True)
    run = gate(stack, contract, tmp_path, check=True)
    assert run.code == 1, run.console
    assert "internal error" not in run.console
    assert run.verdict("services: every expected service running") == "fail"


def test_status_services_as_strings_refuse_a_matrix_run_untouched(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(status_services_as_strings=True)
    run = gate(stack, contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 1, run.console
    assert "internal error" not in run.console
    record = run.record("baseline: status: lists services")
    assert record["verdict"] == "fail"
    assert "services.node is str" in record["evidence"], record
    assert Kind.MUTATE not in run.kinds()


MISFIT = (
    "import dataclasses\n"
    "from gate.contract import lookup\n"
    "CONTRACT = dataclasses.replace(CONTRACT, expected_services=lambda cfg: frozenset(\n"
    "    {'node'} | ({'cache'} if lookup(cfg, 'extras.no_such_key') else set())))\n"
)


@pytest.mark.parametrize("mode", [{"check": True}, {"scenario": ["local-defaults"]}])
def test_a_contract_that_does_not_fit_the_box_is_one_line_exit_2(
    tmp_path: Path, mode: dict[str, Any]
) -> None:
    stack = FakeStack()
    run = gate(stack, contract_file(tmp_path, MISFIT), tmp_path, **mode)
    assert run.code == 2, run.console
    errors = [line for line in run.console.splitlines() if line.startswith("gate: ")]
    assert errors[0].endswith(
        "contract 'sample-stack' does not fit the box: expected_services needs config "
        "path 'extras.no_such_key', which the box's config.json lacks"
    ), errors
    assert Kind.MUTATE not in run.kinds()


def test_a_link_lost_for_good_is_inconclusive_and_answers_at_once(
    real_windows: Path, tmp_path: Path
) -> None:
    stack = FakeStack(wait_windows=None, drop_at=14, drop_for_good=True)
    run = gate(stack, real_windows, tmp_path, check=True)
    assert run.code == 3, run.console
    assert run.summary["verdict"] == "inconclusive"
    assert run.summary["counts"]["fail"] == 0, "a lost link was reported as a failed check"


def test_a_box_without_a_needed_tool_is_exit_2_naming_it(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    stack.missing_tools = ["sha256sum"]
    run = gate(stack, contract, tmp_path, check=True)
    assert run.code == 2, run.console
    assert "lacks needed tools: sha256sum" in run.console
    assert not any(".gate/boxtool.py" in c for c in stack.target.commands), "installed anyway"


def test_a_locked_box_is_75_naming_the_lock(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    stack.lock_busy = True
    run = gate(stack, contract, tmp_path)
    assert run.code == 75, run.console
    assert run.summary["verdict"] == "box locked"
    assert Kind.MUTATE not in run.kinds()


def test_a_broken_box_is_judged_on_one_read_not_waited_on(
    real_windows: Path, tmp_path: Path
) -> None:
    stack = FakeStack(wait_windows=None)
    stack.stop("worker-1")
    run = gate(stack, real_windows, tmp_path, check=True)
    assert run.code == 1, run.console
    workers = run.record("api: workers online >= fact workers")
    assert workers["verdict"] == "fail"
    assert "converging" not in workers["evidence"], "a broken stack was waited on as converging"
    assert run.verdict("status: exit code 0") == "fail"


def test_a_converging_value_is_waited_on_while_the_stack_is_ready(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(api_overrides={"workers.online": 0})
    run = gate(stack, contract, tmp_path, check=True)
    workers = run.record("api: workers online >= fact workers")
    assert workers["verdict"] == "fail"
    assert "converging: not held after" in workers["evidence"], workers


# --- mutating runs -----------------------------------------------------------------------


class PipeClosesAt(io.StringIO):
    """A console whose reader goes away (`gate | tee` with tee killed) once `text` is
    written: every later write raises BrokenPipeError, as a closed pipe does."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.closed_pipe = text, False

    def write(self, data: str) -> int:
        if self.closed_pipe:
            raise BrokenPipeError(32, "Broken pipe")
        self.closed_pipe = self.text in data
        return super().write(data)


def test_a_console_whose_reader_went_away_still_restores_the_box(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    before = stack.files["config.json"].text
    console = PipeClosesAt("== scenario main-secure-strict")
    raw = {"local": True, "dir": stack.dir, "matrix": str(contract), "out": str(tmp_path)}
    code = run_cli(
        {**raw, "scenario": ["main-secure-strict"]},
        console,
        target=lambda _host, _accept: stack.target,
    )
    assert console.closed_pipe and "restore" not in console.getvalue()  # gone before it
    assert code == 0
    assert stack.files["config.json"].text == before
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"
    run = Outcome(code, console.getvalue(), tmp_path)
    assert run.verdict("restore: config bytes identical") == "pass"


def test_one_scenario_is_applied_then_restored_and_proven(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    before = stack.files["config.json"].text
    run = gate(stack, contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 0, run.console
    assert "restore proven" in run.console
    assert stack.files["config.json"].text == before
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"
    assert run.verdict("restore: check: api: pool tier matches pool.tier") == "pass"
    written = [c.raw for c in stack.target.calls if "spec-" in c.raw]
    assert written, "the run's own spec was never used"
    assert not [f for f in stack.files if f.startswith(".gate/spec-")], "the spec was left"


def test_an_unhealthy_box_is_a_failed_check_and_is_not_touched(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(status_garbage=True)
    run = gate(stack, contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 1, run.console
    assert run.summary["verdict"] == "failed"
    assert run.verdict("baseline: status: lists services") == "fail"
    assert Kind.MUTATE not in run.kinds()
    assert stack.applies == []


def test_a_restore_apply_that_fails_part_way_is_box_dirty(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack(fail_restore_apply=True)
    run = gate(stack, contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 4, run.console
    assert run.summary["verdict"] == "BOX DIRTY"
    assert run.verdict("restore: apply succeeded") == "fail"
    assert "restore proven" not in run.console


def test_a_dirty_box_is_refused_with_a_recover_hint_naming_every_flag(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    kept = gate(stack, contract, tmp_path / "kept", scenario=["main-secure-strict"], keep=True)
    assert kept.code == 0, kept.console
    refused = gate(stack, contract, tmp_path / "refused")
    assert refused.code == 4, refused.console
    assert "(phase matrix, scenario main-secure-strict)" in refused.console
    hint = f"invoke gate --local --dir {stack.dir} --matrix {contract} --out "
    assert hint in refused.console, refused.console
    recovered = gate(stack, contract, tmp_path / "recovered", recover=True)
    assert recovered.code == 0, recovered.console


def test_hints_name_the_program_the_user_ran(contract: Path, tmp_path: Path) -> None:
    stack = FakeStack()
    kept = gate(stack, contract, tmp_path, "gate", scenario=["local-defaults"], keep=True)
    assert kept.code == 0, kept.console
    assert f"Put it back with `gate --local --dir {stack.dir} --matrix " in kept.console
    assert "reproduce: gate --local" in kept.console
    assert "invoke gate" not in kept.console


def test_a_fact_holding_a_credential_is_named_by_a_variable_in_hints(
    contract: Path, tmp_path: Path
) -> None:
    url = "http://gate:fact-canary-pw-91@127.0.0.1:1"
    stack = FakeStack()
    run = gate(
        stack, contract, tmp_path, scenario=["local-defaults"], fact=[f"remote_node_url={url}"]
    )
    assert run.code == 0, run.console
    assert "fact-canary-pw-91" not in run.console
    (line,) = [ln for ln in run.console.splitlines() if "reproduce: " in ln]
    hint = line.split("reproduce: ", 1)[1]
    assert '--fact "remote_node_url=${GATE_FACT_REMOTE_NODE_URL}"' in hint, hint
    assert hint.endswith(
        "# first set GATE_FACT_REMOTE_NODE_URL to the value you gave (it holds a credential)"
    )
    echoed = subprocess.run(  # the hint as a shell reads it, with the variable set
        ["bash", "-c", "printf '%s\\n' " + hint.split(" ", 1)[1]],
        env={"GATE_FACT_REMOTE_NODE_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert echoed[echoed.index("--fact") + 1] == f"remote_node_url={url}"


def test_a_contract_edited_since_the_baseline_says_to_put_it_back(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    kept = gate(stack, contract, tmp_path / "kept", scenario=["main-secure-strict"], keep=True)
    assert kept.code == 0, kept.console
    original = contract.read_bytes()
    contract.write_bytes(original + b"# edited in place\n")
    refused = gate(stack, contract, tmp_path / "refused", recover=True)
    assert refused.code == 2, refused.console
    assert f"its contract file {contract} changed since the baseline" in refused.console
    assert "put that version back" in refused.console
    contract.write_bytes(original)
    recovered = gate(stack, contract, tmp_path / "recovered", recover=True)
    assert recovered.code == 0, recovered.console


def test_a_settled_wrong_value_fails_on_the_first_read(real_windows: Path, tmp_path: Path) -> None:
    stack = FakeStack(wait_windows=None, api_overrides={"pool.tier": "main"})
    run = gate(stack, real_windows, tmp_path, scenario=["local-defaults"])
    assert run.code == 1, run.console
    pool = [
        c
        for c in run.summary["checks"]
        if c["scenario"] == "local-defaults" and c["name"] == "api: pool tier matches pool.tier"
    ]
    assert pool and pool[0]["verdict"] == "fail"
    assert pool[0]["duration"] < 1.0, "a settled value was polled (matrix.py's windows are 60 s)"
    shown = [line for line in run.console.splitlines() if "pool tier matches" in line]
    assert f"(expected {pool[0]['expected']})" in shown[0], "a FAIL line must say what was wanted"
    again = run.record("restore: check: api: pool tier matches pool.tier")
    assert again["verdict"] == "fail"
    assert again["evidence"].endswith("(failed at the baseline too: not a restore defect)")
    assert "failed at the baseline too" in run.console, "the console missed the annotation"


# --- a phase added from outside: one registration ----------------------------------------

MARK = "echo noop-phase-was-here"


class NoopPhase(Phase):
    """Does nothing but one harmless command the journal classes as mutating."""

    name = "noop"
    mutates = True
    flag = Flag("noop", "a do-nothing mutating phase (tests)")
    interrupt = False

    def run(self, run: Run) -> None:
        if self.interrupt:
            os.kill(os.getpid(), signal.SIGINT)
        run.box.run(MARK, kind=Kind.MUTATE)


@pytest.fixture
def noop() -> Iterator[NoopPhase]:
    phase = NoopPhase()
    register(phase)
    yield phase
    unregister(phase.name)


def _restore_copy(stack: FakeStack) -> int:
    commands = stack.target.commands
    return next(i for i, c in enumerate(commands) if c.startswith(f"cp -p {BASELINE_CONFIG}"))


def test_a_registered_mutating_phase_runs_inside_the_always_restore(
    noop: NoopPhase, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    stack.target.on(MARK, Reply(0, "noop-phase-was-here\n"))
    run = gate(stack, contract, tmp_path, noop=True, scenario=["local-defaults"])
    assert run.code == 0, run.console
    commands = stack.target.commands
    baseline = next(i for i, c in enumerate(commands) if BASELINE_CONFIG in c)
    ran = commands.index(MARK)
    assert baseline < ran < _restore_copy(stack), "the phase ran outside baseline..restore"
    assert run.summary["phases"] == ["matrix", "noop"]


def test_a_sigint_inside_a_registered_phase_restores_then_exits_130(
    noop: NoopPhase, contract: Path, tmp_path: Path
) -> None:
    noop.interrupt = True
    stack = FakeStack()
    stack.target.on(MARK, Reply(0))
    run = gate(stack, contract, tmp_path, noop=True, scenario=["local-defaults"])
    assert run.code == 130, run.console
    assert MARK not in stack.target.commands, "the command after the signal was still sent"
    assert _restore_copy(stack) > 0
    assert "restore proven" in run.console
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"


def test_the_phase_flag_joins_the_one_table(noop: NoopPhase) -> None:
    from gate.cli.flags import table

    assert "--noop" in [f.option for f in table()]


# --- the contract: every axis observed, the change's scope, what a contract must say ------

WITHOUT_BIND_CHECK = (
    "import dataclasses\n"
    "CONTRACT = dataclasses.replace(\n"
    "    CONTRACT, checks=tuple(c for c in CONTRACT.checks if c.probe != 'node-rpc')\n"
    ")\n"
)


@pytest.mark.parametrize(("strict", "code"), [(False, 0), (True, 1)])
def test_an_unobserved_axis_is_said_and_fails_strict(
    tmp_path: Path, strict: bool, code: int
) -> None:
    """Without the bind check no expectation follows node.lan_access: the run says so."""
    contract = contract_file(tmp_path, WITHOUT_BIND_CHECK)
    run = gate(FakeStack(), contract, tmp_path, scenario=["local-defaults"], strict=strict)
    assert run.code == code, run.console
    assert run.summary["unobserved_axes"] == ["node.lan_access"]
    assert run.verdict("axis node.lan_access observed by a check") == "skip"
    if strict:
        assert run.summary["strict_failures"] == [
            "skip of class missing: axis node.lan_access observed by a check"
        ]


def test_every_axis_of_the_sample_is_observed(contract: Path, tmp_path: Path) -> None:
    """Positive control for the test above: the full contract observes all seven axes."""
    run = gate(FakeStack(), contract, tmp_path, scenario=["local-defaults"], strict=True)
    assert run.code == 0, run.console
    assert run.summary["unobserved_axes"] == []
    assert len(run.summary["axes_observed_by"]) == 7


def test_an_apply_that_recreates_everything_on_a_small_change_fails_the_scope(
    contract: Path, tmp_path: Path
) -> None:
    """main-secure-strict touches pool and dashboard; node, proxy and the workers must keep
    their pids. The defect recreates them all, and a second apply is still quiet."""
    stack = FakeStack(recreate_all_on_change=True)
    run = gate(stack, contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 1, run.console
    scope = run.record("scope: services outside the change kept their pids")
    assert scope["verdict"] == "fail"
    assert scope["observed"] == "recreated or stopped: node, proxy, worker-1, worker-2"
    assert run.verdict("idempotent: no service restarted") == "pass"


def test_a_change_within_its_scope_passes_it(contract: Path, tmp_path: Path) -> None:
    run = gate(FakeStack(), contract, tmp_path, scenario=["main-secure-strict"])
    assert run.code == 0, run.console
    scope = run.record("scope: services outside the change kept their pids")
    assert scope["verdict"] == "pass"
    assert scope["expected"] == "4 unchanged outside dashboard, pool"
    restarted = run.record("idempotent: no service restarted")
    assert restarted["evidence"].startswith("pid and started of 6 services compared")


@pytest.mark.parametrize(
    ("extra", "facts", "problem"),
    [
        (
            "import dataclasses\n"
            "CONTRACT = dataclasses.replace(CONTRACT, checks=(), counters=())\n",
            [],
            "declares no check: it would assert nothing",
        ),
        ("", ["workers=0"], "AtLeast(0) holds for any count"),
        (
            "import dataclasses\nfrom gate.contract import Check, Equals\n"
            "CONTRACT = dataclasses.replace(\n"
            "    CONTRACT, checks=(Check('x', 'nope', 'a', Equals(1)),)\n"
            ")\n",
            [],
            "uses probe 'nope', which it does not declare (known: status, api,",
        ),
    ],
)
def test_a_contract_that_cannot_assert_is_a_usage_error_and_touches_nothing(
    tmp_path: Path, extra: str, facts: list[str], problem: str
) -> None:
    stack = FakeStack()
    before = dict(stack.files)
    run = gate(stack, contract_file(tmp_path, extra), tmp_path, fact=facts or None)
    assert run.code == 2, run.console
    assert problem in run.console
    assert {k: v.text for k, v in stack.files.items() if not k.startswith(".gate")} == {
        k: v.text for k, v in before.items() if not k.startswith(".gate")
    }


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "import dataclasses\nfrom gate.contract import Secrets\n"
            "CONTRACT = dataclasses.replace(CONTRACT, secrets=Secrets(env_keys=('*_PASSWORD',)))\n",
            "probe 'api' reads env key 'DASHBOARD_TOKEN', which no Secrets.env_keys glob matches",
        ),
        (
            "import dataclasses\nfrom gate.contract import Header\n"
            "api = dataclasses.replace(CONTRACT.probes[0], auth=Header('DASHBOARD_TOKEN', "
            "template='Bearer fixed'))\n"
            "CONTRACT = dataclasses.replace(CONTRACT, probes=(api, *CONTRACT.probes[1:]))\n",
            "must hold exactly one {} (the secret's place)",
        ),
        (
            "import dataclasses\nfrom gate.contract import Check, Matches\n"
            "CONTRACT = dataclasses.replace(\n"
            "    CONTRACT, checks=(*CONTRACT.checks, Check('m', 'api', 'x', Matches('(')))\n"
            ")\n",
            "is no regular expression",
        ),
        (
            "from gate.contract import Increasing\nIncreasing('c', 'api', 'shares[')\n",
            "quick_contract.py: IncompleteExpressionError: Invalid jmespath expression: "
            'Incomplete expression: "shares[" ^\n',
        ),
    ],
)
def test_a_contract_the_box_cannot_trust_is_refused_before_anything(
    tmp_path: Path, extra: str, problem: str
) -> None:
    stack = FakeStack()
    config = stack.files["config.json"].text
    run = gate(stack, contract_file(tmp_path, extra), tmp_path, check=True)
    assert run.code == 2, run.console
    assert problem in run.console
    assert stack.files["config.json"].text == config


def test_a_secret_use_that_does_not_apply_to_the_config_is_not_asked(tmp_path: Path) -> None:
    """InUse.applies: a file only some configs render is held to its secret only then."""
    extra = (
        "import dataclasses\nfrom gate.contract import InUse\n"
        "uses = (InUse('DASHBOARD_TOKEN', 'run/dashboard.json', applies=lambda cfg: False),)\n"
        "CONTRACT = dataclasses.replace(\n"
        "    CONTRACT, secrets=dataclasses.replace(CONTRACT.secrets, in_use=uses)\n"
        ")\n"
    )
    run = gate(FakeStack(), contract_file(tmp_path, extra), tmp_path, check=True)
    assert run.code == 0, run.console
    assert not [c for c in run.summary["checks"] if c["name"].startswith("secrets: DASHBOARD")]
    applies = extra.replace("lambda cfg: False", "lambda cfg: True")
    (tmp_path / "b").mkdir()
    red = gate(FakeStack(), contract_file(tmp_path / "b", applies), tmp_path / "b", check=True)
    assert red.code == 1, red.console
    use = red.record("secrets: DASHBOARD_TOKEN in use in run/dashboard.json")
    assert (use["verdict"], use["observed"]) == ("fail", "file unreadable")


def test_three_shards_walk_the_declared_matrix_once_between_them(
    contract: Path, tmp_path: Path
) -> None:
    walked: list[str] = []
    for index in (1, 2, 3):
        run = gate(FakeStack(), contract, tmp_path / f"job{index}", shard=f"{index}/3")
        assert run.code == 0, run.console
        walked += sorted({c["scenario"] for c in run.summary["checks"] if c.get("scenario")})
    declared = [s.name for s in validate_matrix(load_contract_file(contract).matrix).scenarios]
    assert sorted(walked) == sorted(declared)
