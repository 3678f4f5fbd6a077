"""--auth-fail-closed on the fake stack: the phase's logic, whole runs in milliseconds.

The fake below adds what the phase sends to tests/unit/fakestack.py: `stackctl stop/start
SERVICE` (a start with an empty PROXY_AUTH_TOKEN refuses the way stacklib's proxy does:
exit 1, the refusal in the proxy's log) and boxtool `aside`, `blank`, `putback` on the
in-memory files. Each red case is one switch: the start always fails (the positive control
is red and nothing is blanked), the proxy starts with an empty token, the refusal is never
said, the refusal pattern matches a good start too; a SIGINT right after the blank puts the
env file back before the restore.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeFile, FakeStack, sha256
from test_engine import Outcome, contract_file, gate

import gate.phases.auth_fail_closed as afc
from gate import boxtool
from gate.contract import AuthGuard
from gate.testing.double import Reply

TOKEN_KEY = "PROXY_AUTH_TOKEN"
REFUSAL = "proxy: refusing to start an unauthenticated proxy control API"
SCENARIO = ["local-defaults"]
PHASE = "auth-fail-closed"
REFUSED = f"{PHASE}: proxy refuses to start without {TOKEN_KEY}"
CONTROL = f"{PHASE}: proxy starts with the real {TOKEN_KEY} (positive control)"
PUT_BACK = f"{PHASE}: .env put back and proxy started"
BYTES = f"{PHASE}: .env bytes equal the ones before"


CTL = re.compile(r"\./stackctl (?P<verb>stop|start) (?P<service>\S+)")
TOOL = re.compile(
    r"(?:GATE_SPEC=\S+ )?python3 \.gate/boxtool\.py (?P<args>(?:aside|blank|putback) .+)"
)


class AuthStack(FakeStack):
    """FakeStack with stop/start and the three boxtool verbs of the phase."""

    def __init__(self, **switches: Any) -> None:
        self.start_fails = int(switches.pop("start_fails", 0))
        """How many `start`s (the first ones) exit 1: the positive control cannot pass."""
        self.starts_without_token = bool(switches.pop("starts_without_token", False))
        """The proxy starts with an empty token (the defect the phase exists to catch)."""
        self.refusal_line = str(switches.pop("refusal_line", REFUSAL))
        """What the proxy logs when it refuses."""
        self.interrupt_after_blank = bool(switches.pop("interrupt_after_blank", False))
        super().__init__(**switches)
        self.token_at_start: list[str] = []
        """The token each successful proxy start read from .env (the test's own eyes)."""

    def _simple(self, command: str, stdin: str) -> Reply:
        """stop/start and the three verbs here; every other command as FakeStack answers."""
        if found := CTL.fullmatch(command):
            return (self._stop if found["verb"] == "stop" else self._start)(found["service"])
        if found := TOOL.fullmatch(command):
            verb, *args = shlex.split(found["args"])
            verbs = {"aside": self._aside, "blank": self._blank, "putback": self._putback}
            return verbs[verb](*args)
        return super()._simple(command, stdin)

    def _stop(self, name: str) -> Reply:
        program = self.programs[name]
        program.state, program.pid, program.exitstatus = "exited", None, 0
        return Reply(stdout=f"Stopped: {name}\n")

    def _start(self, name: str) -> Reply:
        program = self.programs[name]
        if self.start_fails:
            self.start_fails -= 1
            return Reply(1, stderr=f"error: {name}: spawn error\n")
        if program.state == "running":
            return Reply(stdout=f"Started: {name}\n")
        token = self.env.get(TOKEN_KEY, "")
        if name == "proxy" and not token and not self.starts_without_token:
            self.logs.setdefault(name, []).append(self.refusal_line)
            program.exitstatus = 1
            return Reply(1, stderr=f"error: {name} exited (exit status 1) right after it started\n")
        self.programs[name] = self._spawn(name, program.settings)
        if name == "proxy":
            self.token_at_start.append(token)
        return Reply(stdout=f"Started: {name}\n")

    def _aside(self, env: str, aside: str) -> Reply:
        assert aside.startswith(".gate/aside-") and aside not in self.files
        self.files[aside] = FakeFile(self.files[env].text, "600")
        return Reply(stdout=sha256(self.files[aside].text) + "\n")

    def _blank(self, env: str, key: str) -> Reply:
        data, count = boxtool.blank_bytes(self.files[env].text.encode(), key)
        if not count:
            return Reply(1, stderr=f"boxtool: blank: {key} is not set in {env}\n")
        self.files[env].text = data.decode()
        if self.interrupt_after_blank:
            os.kill(os.getpid(), signal.SIGINT)
        return Reply(stdout=f"blanked {key} in {env} (1 line)\n")

    def _putback(self, aside: str, env: str, expected: str) -> Reply:
        if aside not in self.files:
            now = sha256(self.files[env].text)
            return Reply(0 if now == expected else 1, stdout=f"{env} sha256 {now}\n")
        self.files[env].text = self.files.pop(aside).text
        return Reply(stdout=f"{env} sha256 {sha256(self.files[env].text)}\n")

    def _secret_values(self) -> list[str]:
        """boxtool's: a copy set aside counts as the env file does."""
        values = set(super()._secret_values())
        for path, file in self.files.items():
            if path.startswith(".gate/aside-"):
                values.update(v for k, v in boxtool.parse_env(file.text).items() if v)
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def run_gate(stack: AuthStack, tmp_path: Path, extra: str = "", **flags: Any) -> Outcome:
    contract = contract_file(tmp_path, extra)
    flags = {"auth_fail_closed": True, "safety_backup": True, "scenario": SCENARIO, **flags}
    return gate(stack, contract, tmp_path, **flags)


def phase_records(run: Outcome) -> dict[str, Mapping[str, Any]]:
    return {c["name"]: c for c in run.summary["checks"] if c["phase"] == PHASE}


def assert_put_back(stack: AuthStack, env_before: str) -> None:
    """The env file byte for byte, no copy left aside, and the proxy running on the token."""
    assert stack.files[".env"].text == env_before
    assert not [p for p in stack.files if p.startswith(".gate/aside-")]
    assert stack.programs["proxy"].state == "running"
    assert stack.token_at_start[-1] == stack.env[TOKEN_KEY] != ""


def assert_no_secret_sent(stack: AuthStack, secret: str) -> None:
    for call in stack.target.calls:
        assert secret not in call.raw and secret not in call.stdin, call.command


# --- green ----------------------------------------------------------------------------------


def test_the_proxy_refuses_without_its_token_and_the_exact_env_file_comes_back(
    tmp_path: Path,
) -> None:
    stack = AuthStack()
    env_before, secret = stack.files[".env"].text, stack.env[TOKEN_KEY]
    run = run_gate(stack, tmp_path)
    assert run.code == 0, run.console
    records = phase_records(run)
    assert all(r["verdict"] == "pass" for r in records.values()), records
    assert set(records) >= {CONTROL, REFUSED, PUT_BACK, BYTES}
    assert records[REFUSED]["evidence"] == f"its log: {REFUSAL}"
    assert records[REFUSED]["observed"] == "start exited 1"
    commands = stack.target.commands
    blank = next(i for i, c in enumerate(commands) if "boxtool.py blank .env" in c)
    refused_start = commands.index("./stackctl start proxy", blank)
    putback = next(i for i, c in enumerate(commands) if "boxtool.py putback" in c)
    matrix = next(i for i, c in enumerate(commands) if "boxtool.py render" in c)
    assert blank < refused_start < putback < matrix, "the phase runs before the matrix"
    assert_put_back(stack, env_before)
    assert_no_secret_sent(stack, secret)
    assert secret not in run.console
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"


def test_the_repair_is_journaled_before_the_env_file_is_touched(tmp_path: Path) -> None:
    stack = AuthStack()
    run = run_gate(stack, tmp_path)
    assert run.code == 0, run.console
    commands = stack.target.commands
    journal = [i for i, c in enumerate(commands) if "cat >> " in c and "journal" in c]
    opened = [i for i in journal if "repair-open" in stack.target.calls[i].stdin]
    aside = next(i for i, c in enumerate(commands) if "boxtool.py aside" in c)
    first_stop = commands.index("./stackctl stop proxy")
    assert opened and opened[0] < first_stop < aside
    steps = json.loads(stack.target.calls[opened[0]].stdin)["steps"]
    assert [s[:2] for s in steps] == [["control", "stop proxy"], ["tool", "putback"],
                                      ["control", "start proxy"]]  # fmt: skip
    closed = [i for i in journal if "repair-closed" in stack.target.calls[i].stdin]
    assert closed and closed[0] > aside


# --- red ------------------------------------------------------------------------------------


def test_a_positive_control_that_fails_is_a_fail_and_nothing_is_blanked(tmp_path: Path) -> None:
    stack = AuthStack(start_fails=1)
    run = run_gate(stack, tmp_path)
    assert run.code == 1, run.console
    records = phase_records(run)
    assert records[CONTROL]["verdict"] == "fail"
    assert records[CONTROL]["observed"] == "start exited 1"
    assert REFUSED not in records
    assert not [c for c in stack.target.commands if "boxtool.py blank" in c or "aside " in c]


def test_a_proxy_that_starts_with_an_empty_token_fails_and_is_stopped_before_the_put_back(
    tmp_path: Path,
) -> None:
    stack = AuthStack(starts_without_token=True)
    env_before = stack.files[".env"].text
    run = run_gate(stack, tmp_path)
    assert run.code == 1, run.console
    record = phase_records(run)[REFUSED]
    assert record["verdict"] == "fail"
    assert record["observed"] == f"started with an empty {TOKEN_KEY} (exit 0)"
    assert stack.token_at_start[-2] == "", "precondition: the defect started it blank"
    assert_put_back(stack, env_before)
    commands = stack.target.commands
    putback = next(i for i, c in enumerate(commands) if "boxtool.py putback" in c)
    assert commands[putback - 1] == "./stackctl stop proxy", "the blank proxy kept running"


def test_a_start_that_fails_without_saying_the_refusal_is_a_fail(tmp_path: Path) -> None:
    stack = AuthStack(refusal_line="proxy: Traceback: KeyError 'port'")
    env_before = stack.files[".env"].text
    run = run_gate(stack, tmp_path, extra=QUICK_REFUSAL_WAIT)
    assert run.code == 1, run.console
    record = phase_records(run)[REFUSED]
    assert record["verdict"] == "fail"
    assert record["observed"] == "start exited 1, no refusal said"
    assert_put_back(stack, env_before)


def test_a_refusal_pattern_that_a_good_start_matches_too_is_a_fail(tmp_path: Path) -> None:
    guard = 'AuthGuard("PROXY_AUTH_TOKEN", "proxy", r"proxy: ")'
    stack = AuthStack()
    run = run_gate(stack, tmp_path, extra=with_guard(guard))
    assert run.code == 1, run.console
    record = phase_records(run)[CONTROL]
    assert record["verdict"] == "fail"
    assert "cannot tell a refusal" in record["evidence"]
    assert not [c for c in stack.target.commands if "boxtool.py blank" in c]


def test_an_old_refusal_in_the_log_is_not_taken_for_a_new_one(tmp_path: Path) -> None:
    """A refusal an earlier run logged is still in the tail: only lines since count."""
    stack = AuthStack(refusal_line="proxy: exiting: bad settings")
    stack.logs["proxy"] = ["proxy: started pid 1", REFUSAL, "proxy: started pid 2"]
    run = run_gate(stack, tmp_path, extra=QUICK_REFUSAL_WAIT)
    assert run.code == 1, run.console
    assert phase_records(run)[REFUSED]["verdict"] == "fail"


def test_a_sigint_right_after_the_blank_puts_the_env_file_back_then_restores(
    tmp_path: Path,
) -> None:
    stack = AuthStack(interrupt_after_blank=True)
    env_before = stack.files[".env"].text
    run = run_gate(stack, tmp_path)
    assert run.code == 130, run.console
    commands = stack.target.commands
    blank = next(i for i, c in enumerate(commands) if "boxtool.py blank" in c)
    assert "./stackctl start proxy" not in commands[blank + 1 : blank + 2]
    repair = run.record("repair: .env put back, proxy started")
    assert repair["verdict"] == "pass"
    assert_put_back(stack, env_before)
    assert "restore proven" in run.console
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"


# --- skips and refusals ---------------------------------------------------------------------


def with_guard(guard: str) -> str:
    return (
        "import dataclasses\nfrom gate.contract import AuthGuard\n"
        f"CONTRACT = dataclasses.replace(CONTRACT, auth_guard={guard})\n"
    )


QUICK_REFUSAL_WAIT = "import gate.phases.auth_fail_closed as afc\nafc.REFUSAL_WAIT_S = 0.3\n"


def test_a_guarded_service_the_config_does_not_run_is_a_by_design_skip(tmp_path: Path) -> None:
    stack = AuthStack()
    env_before = stack.files[".env"].text
    guard = 'AuthGuard("PROXY_AUTH_TOKEN", "cache", r"refusing")'
    run = run_gate(stack, tmp_path, extra=with_guard(guard))
    assert run.code == 0, run.console
    (record,) = phase_records(run).values()
    assert record["verdict"] == "skip" and record["skip_class"] == "by-design"
    assert "does not run cache" in record["evidence"]
    assert not [c for c in stack.target.commands if "stackctl stop" in c or "aside" in c]
    assert stack.files[".env"].text == env_before


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("CONTRACT = dataclasses.replace(CONTRACT, auth_guard=None)\n", "declares no auth guard"),
        (
            "CONTRACT = dataclasses.replace(CONTRACT, actions=dataclasses.replace("
            "CONTRACT.actions, start=None))\n",
            "needs Actions.start",
        ),
        (
            "CONTRACT = dataclasses.replace(CONTRACT, auth_guard=AuthGuard("
            "'PROXY_KEY', 'proxy', 'x'))\n",
            "auth_guard reads env key 'PROXY_KEY', which no Secrets.env_keys glob matches",
        ),
    ],
)
def test_a_contract_the_phase_cannot_drive_is_refused_before_any_change(
    tmp_path: Path, extra: str, said: str
) -> None:
    stack = AuthStack()
    header = "import dataclasses\nfrom gate.contract import AuthGuard\n"
    run = run_gate(stack, tmp_path, extra=header + extra)
    assert run.code == 2, run.console
    assert said in run.console
    assert not [c for c in stack.target.commands if "stackctl" in c and "version" not in c]


def test_the_guard_needs_no_config_and_its_pattern_compiles() -> None:
    with pytest.raises(re.error):
        AuthGuard("X_TOKEN", "proxy", "refusing (")
    assert dataclasses.is_dataclass(AuthGuard)


# --- the pure parts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "new"),
    [
        ([], ["a", "b"], ["a", "b"]),
        (["a", "b"], ["a", "b"], []),
        (["x", "a", "b"], ["a", "b", "c"], ["c"]),
        (["a", "b", "a", "b"], ["a", "b", "a", "b", "r"], ["r"]),
        (["a"], ["b", "c"], ["b", "c"]),
    ],
)
def test_new_lines_are_what_follows_the_overlap_of_two_tails(
    before: list[str], after: list[str], new: list[str]
) -> None:
    assert afc.new_lines(before, after) == new


def test_the_refusal_is_looked_for_line_by_line_output_first() -> None:
    assert afc.refusal_in("refusing", "ok\nkvctl: refusing to start\n", ["x refusing"]) == (
        "kvctl: refusing to start"
    )
    assert afc.refusal_in("refusing", "", ["x", "y refusing "]) == "y refusing"
    assert afc.refusal_in("refusing", "fine", ["all good"]) == ""


def test_an_env_file_that_cannot_be_hashed_is_a_fail_and_nothing_is_touched(
    tmp_path: Path,
) -> None:
    stack = AuthStack()
    stack.target.once("sha256sum .env", Reply(1, stderr="sha256sum: .env: Permission denied\n"))
    run = run_gate(stack, tmp_path)
    assert run.code == 1, run.console
    record = phase_records(run)[f"{PHASE}: .env hashed before anything changes"]
    assert record["verdict"] == "fail"
    assert not [c for c in stack.target.commands if "stackctl stop" in c or "aside" in c]


def test_a_run_that_loses_the_box_after_the_blank_leaves_a_repair_recover_runs(
    tmp_path: Path,
) -> None:
    """The link dies for good right after the blank: the engine cannot mend; the repair
    stays open in the on-box journal, and `--recover` puts the exact env file back."""
    for name in ("probe", "lost", "rec"):
        (tmp_path / name).mkdir()
    probe = AuthStack()
    run_gate(probe, tmp_path / "probe")
    blank = next(i for i, c in enumerate(probe.target.commands) if "boxtool.py blank" in c)
    stack = AuthStack(drop_at=blank + 2, drop_for_good=True)
    env_before = stack.files[".env"].text
    lost = run_gate(stack, tmp_path / "lost")
    assert lost.code not in (0, 1, 2), lost.console
    assert stack.files[".env"].text != env_before, "precondition: left blank"
    stack.defects.drop_at = None
    stack.target.reachable = True  # the box is back
    recovered = gate(stack, contract_file(tmp_path / "rec"), tmp_path / "rec", recover=True)
    assert recovered.code == 0, recovered.console
    assert "recover: .env put back, proxy started: mended" in recovered.console
    assert_put_back(stack, env_before)
