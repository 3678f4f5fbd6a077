"""The watchdog's plan and its limit: when a plan acts, what its proof sees, bad limits.

The watchdog itself (a SIGKILLed runner's box put back) is proven on real boxes in
tests/integration/test_watchdog.py; here, on files in a temp stack dir, the decisions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from gate import boxtool
from gate.engine.run import RunContext
from gate.errors import UsageError
from gate.inventory import DEFAULT_WATCHDOG_S, HostSpec, load_inventory
from gate.options import ContractFile, Options
from gate.watchdog import said, watchdog_limit

CANARY = "canary-secret-9d41c07a"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack dir with a config, a secret in its env file, and a dirty mark from run r1."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gate").mkdir()
    (tmp_path / "config.json").write_text('{"tier": "mini"}')
    (tmp_path / ".env").write_text(f"API_TOKEN={CANARY}\n")
    write(tmp_path / ".gate" / "state.json", {"state": "dirty", "run_id": "r1"})
    return tmp_path


def write(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value))


def plan_for(run_id: str) -> dict[str, Any]:
    spec = {
        "env_file": ".env",
        "config_file": "config.json",
        "config_format": "json",
        "env_keys": ["*_TOKEN"],
        "files": [],
        "config_paths": [],
        "in_use": [],
    }
    return {
        "run_id": run_id,
        "config": "config.json",
        "config_sha256": boxtool.sha256(b'{"tier": "mini"}'),
        "fingerprints": boxtool.fingerprints(spec),
        "spec": spec,
    }


def test_a_plan_acts_only_for_its_own_run_while_that_run_left_the_box_dirty(
    stack: Path,
) -> None:
    write(stack / ".gate" / "watchdog.json", plan_for("r1"))
    assert boxtool.armed_plan("r1")["run_id"] == "r1"
    assert boxtool.armed_plan("r2") == {}  # another run's holder never acts on r1's plan

    write(stack / ".gate" / "state.json", {"state": "clean", "run_id": "r1"})
    assert boxtool.armed_plan("r1") == {}  # restored already: a stale plan stays quiet

    write(stack / ".gate" / "state.json", {"state": "dirty", "run_id": "r2"})
    assert boxtool.armed_plan("r1") == {}  # r2 dirtied it after r1: not r1's to undo


def test_the_proof_sees_changed_config_bytes_and_a_changed_secret(stack: Path) -> None:
    plan = plan_for("r1")
    assert boxtool.proof_failures(plan) == []

    (stack / "config.json").write_text('{"tier": "mini"} ')
    assert boxtool.proof_failures(plan) == ["config bytes differ from the baseline's"]

    (stack / "config.json").write_text('{"tier": "mini"}')
    (stack / ".env").write_text("API_TOKEN=rotated-by-someone\n")
    assert boxtool.proof_failures(plan) == ["secret fingerprints differ from the baseline's"]


def test_the_plan_holds_no_secret(stack: Path) -> None:
    assert CANARY not in json.dumps(plan_for("r1"))


def test_a_repair_step_that_fails_is_named_and_the_others_still_run(stack: Path) -> None:
    plan = {**plan_for("r1"), "control": "sh -c", "apply_s": 10.0}
    (stack / "made-by-the-fault").write_text("")
    opened = [
        {"run_id": "r1", "event": "repair-open", "key": "a", "what": "first", "steps": []},
        {
            "run_id": "r1",
            "event": "repair-open",
            "key": "b",
            "what": "second",
            "steps": [["control", "'exit 3'"], ["remove", "made-by-the-fault"]],
        },
    ]
    lines = [json.dumps(e) for e in opened]
    (stack / ".gate" / "journal.jsonl").write_text("\n".join(lines) + "\n")

    assert boxtool.mend_open_repairs("r1", plan) == ["repair second: control exited 3"]
    assert not (stack / "made-by-the-fault").exists()
    mended = [json.loads(line) for line in (stack / ".gate" / "journal.jsonl").open()]
    assert [e["key"] for e in mended if e["event"] == "watchdog-mended"] == ["b", "a"]


def test_the_limit_comes_from_the_environment_else_the_inventory() -> None:
    host = HostSpec(name="box", host="box", watchdog_s=42)
    assert watchdog_limit(host, {}) == 42.0
    assert watchdog_limit(host, {"GATE_WATCHDOG_S": "0"}) == 0.0
    assert HostSpec(name="b", host="b").watchdog_s == DEFAULT_WATCHDOG_S
    for bad in ("soon", "-1", "86401"):
        with pytest.raises(UsageError, match="GATE_WATCHDOG_S"):
            watchdog_limit(host, {"GATE_WATCHDOG_S": bad})


def test_the_inventory_takes_watchdog_s_and_refuses_a_negative_one(tmp_path: Path) -> None:
    (tmp_path / "box.toml").write_text('host = "h"\ndir = "/srv/stack"\nwatchdog_s = 300\n')
    assert load_inventory("box", tmp_path).watchdog_s == 300
    (tmp_path / "bad.toml").write_text('host = "h"\ndir = "/srv/stack"\nwatchdog_s = -5\n')
    with pytest.raises(UsageError, match="watchdog_s must be 0 or more"):
        load_inventory("bad", tmp_path)


def test_the_next_run_is_told_what_the_watchdog_did() -> None:
    restored = {"state": "clean", "run_id": "r1", "phase": "watchdog-restored"}
    assert "watchdog restored this box after run r1" in said(restored)
    failed = {"state": "dirty", "run_id": "r1", "watchdog": "apply exited 2"}
    assert said(failed).endswith("could not prove its restore of run r1's box: apply exited 2")
    assert said({"state": "clean", "run_id": "r1", "phase": "restored"}) == ""


class Mutating:
    """A phase as RunContext sees it: one that changes the box."""

    mutates = True


def context(**opts: Any) -> RunContext:
    phases: Any = (Mutating(),)
    contract = cast(ContractFile, None)  # the watchdog's limit does not read the contract
    return RunContext(Options(**opts), contract, HostSpec("b", "b"), "r1", phases, 1.0, 30.0)


def test_only_a_mutating_run_that_restores_arms_the_watchdog() -> None:
    assert context().watchdog == 30.0
    assert context(recover=True).watchdog == 0.0
    # --keep leaves the box on its last scenario on purpose: no watchdog may undo that
    assert context(keep=True).watchdog == 0.0


def test_what_the_watchdog_starts_gets_default_signals_not_the_holders(tmp_path: Path) -> None:
    """The holder ignores SIGHUP/SIGINT and blocks SIGUSR1 for itself; a service its apply
    or repair (re)starts must not inherit that (a SIGHUP reload, a SIGUSR1 log reopen)."""
    seen = tmp_path / "status"
    holder = (
        "import signal, sys; from gate import boxtool; boxtool.detach(keep=());"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1});"
        f"sys.exit(boxtool.run_quietly('cat /proc/self/status > {seen}', 10))"
    )
    assert subprocess.run([sys.executable, "-c", holder], timeout=30).returncode == 0
    masks = dict(line.split(":\t") for line in seen.read_text().splitlines() if ":\t" in line)
    blocked, ignored = int(masks["SigBlk"], 16), int(masks["SigIgn"], 16)
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
        assert not (blocked | ignored) & (1 << (signum - 1)), (signum.name, masks)


def in_flight(stack: Path, spec: str | None) -> subprocess.Popen[bytes]:
    """A gate command in flight on the box, as Box.run sends it (GATE_SPEC names its run's
    spec; none: an older gate's command), until the file `go` appears."""
    env = {k: v for k, v in os.environ.items() if k != "GATE_SPEC"}
    if spec is not None:
        env["GATE_SPEC"] = spec
    waits = f"while [ ! -e {stack / 'go'} ]; do sleep 0.05; done"
    return subprocess.Popen(
        [sys.executable, boxtool.__file__, "exec", "60", waits], cwd=stack, env=env
    )


def registered(stack: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while sum(len(files) for _, _, files in os.walk(stack / ".gate" / "inflight")) < count:
        assert time.monotonic() < deadline, "the commands never registered in flight"
        time.sleep(0.05)  # sleep-ok: polls the in-flight records to a deadline


def test_another_runs_command_in_flight_does_not_keep_a_silent_runs_lock(stack: Path) -> None:
    """Runs refused at the lock still run their preflight on the box: retried often enough,
    they kept a dead run's lock (and its watchdog) waiting forever."""
    spec = json.dumps(plan_for("r1")["spec"])
    for name in ("spec-r1.json", "spec-r2.json", "spec.json"):
        (stack / ".gate" / name).write_text(spec)
    other = in_flight(stack, ".gate/spec-r2.json")
    try:
        registered(stack, 1)
        assert not boxtool.run_lives("r1")
        assert boxtool.run_lives("r2")
        assert boxtool.cmd_quiesce({}, ["0"]) == 1  # a reconnected run still waits for all
        unknown = in_flight(stack, None)
        try:
            registered(stack, 2)
            assert boxtool.run_lives("r1")  # a command of no known run counts for every run
        finally:
            (stack / "go").touch()
            assert unknown.wait(timeout=30) == 0
    finally:
        (stack / "go").touch()
        assert other.wait(timeout=30) == 0


def test_a_watchdog_that_would_act_within_the_reconnect_budget_is_refused() -> None:
    host = HostSpec(name="box", host="box", reconnect_s=120, watchdog_s=60)
    with pytest.raises(UsageError, match=r"box: the watchdog \(60s\) would act while"):
        watchdog_limit(host, {})
    assert watchdog_limit(host, {"GATE_WATCHDOG_S": "0"}) == 0.0  # off is always allowed
    assert watchdog_limit(host, {"GATE_WATCHDOG_S": "121"}) == 121.0


def test_the_safety_backup_a_killed_run_left_is_named_never_removed(stack: Path) -> None:
    events = [
        {"run_id": "r0", "event": "backup", "archive": "backups/old.tgz"},
        {"run_id": "r1", "event": "backup", "archive": "backups/r1.tgz"},
        {"run_id": "r2", "event": "backup", "archive": "backups/r2.tgz"},
        {"run_id": "r2", "event": "backup-removed", "archive": "backups/r2.tgz"},
    ]
    (stack / ".gate" / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert boxtool.kept_archive("r1") == "backups/r1.tgz"
    assert boxtool.kept_archive("r2") == ""  # the run removed its own
    assert boxtool.kept_archive("r3") == ""
    state = {"state": "clean", "run_id": "r1", "phase": "watchdog-restored"}
    assert said({**state, "archive": "backups/r1.tgz"}).endswith(
        "safety backup is kept at backups/r1.tgz: remove it once the box is trusted"
    )
