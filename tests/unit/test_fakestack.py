"""The check battery through a real Box over the fake sample stack: green, then each defect red.

These stay at the Box/battery level (gate.box, gate.observe, gate.snapshot, the battery),
which holds still while the engine around the phases is being reshaped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakestack import SECRETS, FakeStack, sha256

from gate.artifacts import Artifacts
from gate.battery import battery, ready_and_battery, wait_ready
from gate.box import Box, Event, Kind
from gate.capture import capture
from gate.checks import CheckRecord, Verdict, check_secrets_kept, check_secrets_present
from gate.errors import BoxLocked
from gate.lock import BoxLock
from gate.observe import read_config, read_fingerprints
from gate.redact import Redactor
from gate.snapshot import (
    BASELINE_CONFIG,
    Baseline,
    Journal,
    config_sha256,
    read_state,
    store_baseline,
)
from gate.testing.double import Reply, UnexpectedCommand

FACTS = {"workers": "2"}


def connected(stack: FakeStack) -> tuple[Box, dict[str, Any]]:
    """A box on the fake with boxtool installed, and the config it reads."""
    box = stack.connect()
    cfg = read_config(box).value
    assert cfg is not None
    return box, cfg


SERVICE_CHECKS = ("services: every expected service running", "services: no unexpected service")
STATUS = "status: exit code 0"
TIER = "api: pool tier matches pool.tier"
POSTURE = "env: POOL_TIER rendered from config"


@pytest.fixture
def make_stack() -> Iterator[Callable[..., FakeStack]]:
    """FakeStacks whose targets must have answered every command by teardown."""
    made: list[FakeStack] = []

    def make(**switches: Any) -> FakeStack:
        made.append(FakeStack(**switches))
        return made[-1]

    yield make
    for stack in made:
        stack.target.verify()


def judge(box: Box) -> dict[str, CheckRecord]:
    """The battery against the box's own config, by check name."""
    cfg = read_config(box)
    assert cfg.usable and cfg.value is not None, cfg.error
    return {r.name: r for r in battery(box, cfg.value, FACTS)}


def verdicts(records: dict[str, CheckRecord]) -> dict[str, Verdict]:
    return {name: record.verdict for name, record in records.items()}


def red(records: dict[str, CheckRecord]) -> set[str]:
    return {name for name, record in records.items() if record.verdict is not Verdict.PASS}


def render(box: Box, **overrides: Any) -> None:
    """What the matrix phase does to reach a scenario: render from the baseline, apply."""
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    box.tool("render", BASELINE_CONFIG, "config.json", kind=Kind.MUTATE, stdin=json.dumps(dotted))


def take_baseline(stack: FakeStack, box: Box) -> Baseline:
    """What the matrix phase keeps on the box before its first change."""
    prints = read_fingerprints(box).value
    assert prints is not None
    running = sorted(n for n, p in stack.programs.items() if p.state == "running")
    baseline = Baseline("run-1", config_sha256(box), prints, running)
    store_baseline(box, baseline)
    return baseline


def apply(box: Box) -> Any:
    return box.control(box.contract.actions.apply, kind=Kind.MUTATE)


# --- green --------------------------------------------------------------------------------------


def test_a_healthy_fake_passes_every_check_the_contract_declares(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect()
    records = judge(box)
    assert red(records) == set()
    contract = box.contract
    auth = 2  # the one authenticated HTTP probe: without credentials, with a wrong one
    assert len(records) == 3 + len(contract.checks) + auth + len(contract.counters)
    assert read_state(box) == {"state": "clean"}
    assert check_secrets_present(read_fingerprints(box)).verdict is Verdict.PASS


def test_a_check_run_sends_no_mutating_command_and_changes_nothing(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    events: list[Event] = []
    before = (stack.files["config.json"].text, stack.files[".env"].text, stack.pids())
    box = stack.connect(events=events)
    read_state(box)
    config_sha256(box)
    judge(box)
    assert {e.kind for e in events} == {Kind.READ, Kind.BOOKKEEPING}
    assert (stack.files["config.json"].text, stack.files[".env"].text, stack.pids()) == before


def test_no_secret_value_crosses_the_wire_in_a_check_run_with_captures(
    make_stack: Callable[..., FakeStack], tmp_path: Path
) -> None:
    stack = make_stack(status_garbage=True)  # a failing check, so the captures run too
    events: list[Event] = []
    box = stack.connect(events=events)
    cfg = read_config(box).value
    judge(box)
    capture(box, Artifacts(tmp_path, "run-1", Redactor()), cfg, "captures/check")
    said = "".join(e.result.stdout + e.result.stderr for e in events)
    assert "./stackctl doctor" in [e.command for e in events]
    assert "DASHBOARD_TOKEN" in said, "positive control: secret keys are named"
    for value in SECRETS.values():
        assert value not in said
    captured = tmp_path / "run-1" / "captures" / "check"
    assert (captured / "doctor.txt").read_text().startswith("OK config.json")
    assert (captured / "logs" / "pool.log").read_text().startswith("pool: started")


def test_the_fake_answers_a_new_scenario_and_a_second_apply_is_quiet(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect()
    take_baseline(stack, box)
    render(box, pool__tier="main", extras__cache=True)
    first = apply(box)
    assert first.ok and first.stdout == "Recreated: pool, dashboard, cache\n"
    pids = stack.pids()
    again = apply(box)
    assert again.stdout.strip() == "No configuration changes detected"
    assert stack.pids() == pids
    assert red(judge(box)) == set()


# --- each defect turns the right check red ------------------------------------------------------


def test_status_json_garbage_fails_the_service_checks_only(
    make_stack: Callable[..., FakeStack],
) -> None:
    records = judge(make_stack(status_garbage=True).connect())
    assert red(records) == set(SERVICE_CHECKS)
    assert "printed no JSON" in records[SERVICE_CHECKS[0]].evidence


def test_status_services_as_strings_fail_the_service_checks_not_the_engine(
    make_stack: Callable[..., FakeStack],
) -> None:
    records = judge(make_stack(status_services_as_strings=True).connect())
    assert red(records) == set(SERVICE_CHECKS)
    assert all(records[name].verdict is Verdict.FAIL for name in SERVICE_CHECKS)


def test_a_settled_wrong_api_field_fails_its_check_and_no_other(
    make_stack: Callable[..., FakeStack],
) -> None:
    records = judge(make_stack(api_overrides={"pool.tier": "main"}).connect())
    assert red(records) == {TIER}
    assert records[TIER].observed == '"main"'


def test_a_stuck_counter_fails_when_its_window_ends(make_stack: Callable[..., FakeStack]) -> None:
    stack = make_stack(shares_stuck=True)
    records = judge(stack.connect())
    assert red(records) == {"api: shares accumulating"}
    assert records["api: shares accumulating"].verdict is Verdict.FAIL


def test_a_stopped_worker_fails_services_status_and_workers_online(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    stack.stop("worker-1")
    records = judge(stack.connect())
    assert red(records) == {SERVICE_CHECKS[0], STATUS, "api: workers online >= fact workers"}
    assert "worker-1 is exited" in records[SERVICE_CHECKS[0]].evidence


def test_a_program_the_config_does_not_ask_for_is_named(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    stack.add_program("node-extra")
    records = judge(stack.connect())
    assert red(records) == {SERVICE_CHECKS[1], STATUS}
    assert records[SERVICE_CHECKS[1]].evidence == "unexpected: node-extra"


def test_an_env_file_edited_by_hand_fails_posture(make_stack: Callable[..., FakeStack]) -> None:
    stack = make_stack()
    stack.set_env("POOL_TIER", "main")
    records = judge(stack.connect())
    assert red(records) == {POSTURE}
    assert records[POSTURE].evidence == 'POOL_TIER = "main"'


def test_a_daemon_bound_wider_than_its_config_fails_the_bind_check(
    make_stack: Callable[..., FakeStack],
) -> None:
    """Derived, not raw: config and .env say loopback, the kernel says 0.0.0.0."""
    stack = make_stack(node_bind="0.0.0.0")
    records = judge(stack.connect())
    bind = "node-rpc: node RPC bound as node.lan_access says"
    assert red(records) == {bind}
    assert records[bind].observed == '["0.0.0.0"]'


def test_an_api_that_answers_without_credentials_fails_the_auth_control(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    stack.files[".env"].text = stack.files[".env"].text.replace(
        "DASHBOARD_TOKEN=", "DASHBOARD_TOKEN_OLD="
    )
    stack.programs["dashboard"].settings["token_sha256"] = sha256("")
    records = judge(stack.connect())
    auth = "auth: api refuses a request without credentials"
    assert records[auth].verdict is Verdict.FAIL
    assert records[auth].evidence == "NOT refused: answered without credentials"


def test_a_failed_apply_changes_nothing_and_the_new_config_is_not_live(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack(fail_apply=True)
    box = stack.connect()
    take_baseline(stack, box)
    env, pids = stack.files[".env"].text, stack.pids()
    render(box, pool__tier="nano")
    applied = apply(box)
    assert applied.exit_code == 1 and "tier nano" in applied.stderr
    assert (stack.files[".env"].text, stack.pids()) == (env, pids)
    assert red(judge(box)) == {TIER, POSTURE}


def test_a_restore_apply_that_fails_part_way_leaves_the_services_red(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack(fail_restore_apply=True)
    box = stack.connect()
    baseline = take_baseline(stack, box)
    render(box, pool__tier="nano")
    assert apply(box).ok, "a scenario apply is not a restore"
    box.run(f"cp -p {BASELINE_CONFIG} config.json", kind=Kind.MUTATE)
    restored = apply(box)
    assert restored.exit_code == 1 and "spawn error" in restored.stderr
    assert config_sha256(box) == baseline.config_sha256, "the bytes came back, the services not"
    assert {SERVICE_CHECKS[0], STATUS} <= red(judge(box))


def test_a_secret_rotated_by_apply_is_not_kept(make_stack: Callable[..., FakeStack]) -> None:
    stack = make_stack(rotate_secret_on_apply=True)
    box = stack.connect()
    baseline = take_baseline(stack, box)
    assert apply(box).ok
    kept = check_secrets_kept(baseline.fingerprints, read_fingerprints(box))
    assert kept.verdict is Verdict.FAIL and "env:DASHBOARD_TOKEN changed" in kept.observed
    assert red(judge(box)) == set(), "the dashboard was recreated with the new token"


def test_restart_on_every_apply_gives_pool_a_new_pid_behind_a_no_change_line(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack(restart_on_every_apply=True)
    box = stack.connect()
    pids = stack.pids()
    again = apply(box)
    assert again.stdout.strip() == "No configuration changes detected"
    changed = {name for name, pid in stack.pids().items() if pids[name] != pid}
    assert changed == {"pool"}


def test_a_secret_in_version_output_is_scrubbed_only_through_boxtool_exec(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack(version_leaks_secret=True)
    token = SECRETS["DASHBOARD_TOKEN"]
    bare = stack.connect(install=False).control("version --json")
    assert token in bare.stdout, "positive control: the switch really leaks"
    box = stack.connect()
    scrubbed = box.control("version --json")
    assert token not in scrubbed.stdout
    assert json.loads(scrubbed.stdout)["build"] == "***"


def test_a_link_drop_mid_battery_is_inconclusive_and_the_box_reconnects(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box, cfg = connected(stack)
    reconnects: list[int] = []
    box.reconnected = lambda: reconnects.append(stack.target.generation)
    stack.defects.drop_at = len(stack.target.calls) + 1  # the status read, first of the batch
    records = {r.name: r for r in battery(box, cfg, FACTS)}
    # Every read of the batch was in flight at the drop: none of them is known. The reads
    # after it (the auth controls) reconnect and answer.
    later = {n for n in records if n.startswith("auth: ")}
    batched = set(records) - later
    assert later and {*SERVICE_CHECKS, STATUS} < batched
    assert {n for n, r in records.items() if r.verdict is Verdict.INCONCLUSIVE} == batched
    assert {n for n, r in records.items() if r.verdict is Verdict.PASS} == later
    assert red(records) == batched
    assert reconnects == [2]


def test_a_link_that_never_comes_back_makes_every_later_check_inconclusive(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box, cfg = connected(stack)
    stack.defects.drop_at, stack.defects.drop_for_good = len(stack.target.calls) + 1, True
    records = battery(box, cfg, FACTS)
    assert records and {r.verdict for r in records} == {Verdict.INCONCLUSIVE}


# --- the bookkeeping the engine does around the checks -------------------------------------------


def test_the_lock_is_held_and_released_and_a_busy_lock_names_its_holder(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect()
    lock = BoxLock(box, "run-1", exclusive=True)
    lock.acquire()
    holder = json.loads(stack.files[".gate/holder.json"].text)
    assert holder["run_id"] == "run-1"
    lock.release()
    assert [h.released for h in stack.target.holds] == [True]
    stack.lock_busy = True
    with pytest.raises(BoxLocked, match="run run-1"):
        BoxLock(box, "run-2", exclusive=False).acquire()


def test_journal_notes_are_appended_on_the_box(make_stack: Callable[..., FakeStack]) -> None:
    stack = make_stack()
    box = stack.connect()
    journal = Journal(box, "run-1", "check")
    journal.note("start")
    journal.note("end", verdict="pass")
    lines = stack.files[".gate/journal.jsonl"].text.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["start", "end"]


def test_the_preflight_probes_are_answered_before_boxtool_is_installed(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect(install=False)
    found = box.run("test -d /srv/stack && echo yes || echo no", in_dir=False)
    absent = box.run("test -d /srv/other && echo yes || echo no", in_dir=False)
    assert (found.stdout, absent.stdout) == ("yes\n", "no\n")
    stack.missing_tools = ["flock"]
    probe = 'for t in python3 flock cat; do command -v "$t" >/dev/null || echo "$t"; done'
    assert box.run(probe, in_dir=False).stdout == "flock\n"
    assert json.loads(box.control("version --json").stdout)["stack"] == "1.4.0"


def test_a_command_the_fake_does_not_know_fails_the_test(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect()
    with pytest.raises(UnexpectedCommand, match="rm -rf data"):
        box.run("rm -rf data", kind=Kind.MUTATE)
    with pytest.raises(AssertionError, match="rm -rf data"):
        stack.target.verify()
    stack.target.unmatched.clear()


def test_a_one_shot_rule_overrides_the_fake_for_one_command(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack()
    box = stack.connect()
    stack.target.once("./stackctl status --json", Reply(2, stdout="{}"))
    assert red(judge(box)) == {*SERVICE_CHECKS, STATUS}
    assert red(judge(box)) == set()


def test_readiness_asks_the_status_command_only_once_the_endpoints_answer(
    make_stack: Callable[..., FakeStack],
) -> None:
    """Endpoints are cheap to poll (boxtool answers them itself); the stack's status
    command is its own program run, so it waits until they answer: one poll then asks it."""
    stack = make_stack(blocking_status=False)
    box, cfg = connected(stack)
    refused = Reply(stdout=json.dumps({"code": None, "body": "", "error": "refused"}) + "\n")
    stack.target.once("boxtool.py http", refused)
    stack.target.once("boxtool.py http", refused)
    seen = len(stack.target.calls)
    record = wait_ready(box, cfg, timeout=30)
    asked = stack.target.commands[seen:]
    statuses = [i for i, command in enumerate(asked) if command == "./stackctl status --json"]
    assert record.verdict is Verdict.PASS, record.evidence
    assert not stack.target.pending()  # both refusals were seen
    assert len(statuses) == 1 and statuses[0] > 2, asked  # after the two refused polls


def test_readiness_without_answering_endpoints_never_passes_on_status_alone(
    make_stack: Callable[..., FakeStack],
) -> None:
    stack = make_stack(blocking_status=False)
    box, cfg = connected(stack)
    stack.target.on(
        "boxtool.py http", Reply(stdout=json.dumps({"code": None, "body": "", "error": "x"}))
    )
    record = wait_ready(box, cfg, timeout=0.5)
    assert record.verdict is Verdict.FAIL
    assert '"status": "not asked yet"' in record.observed
    assert "./stackctl status --json" not in stack.target.commands[-3:]


@pytest.mark.parametrize("blocking_status", [False, True])
def test_the_battery_after_readiness_takes_readinesss_status_read(
    make_stack: Callable[..., FakeStack], blocking_status: bool
) -> None:
    """The stack's status command (or its blocking form) runs for readiness, not once more
    a moment later for the battery (issue 10: the status command called no more often
    than a verdict needs)."""
    events: list[Event] = []
    stack = make_stack(blocking_status=blocking_status)
    box = stack.connect(events=events)
    cfg = read_config(box).value
    assert cfg is not None
    status = f"{box.control_command} status"
    counters_on_status = [c for c in box.contract.counters if c.probe == "status"]
    assert not counters_on_status  # else the counter's own re-reads would be counted too

    before = len(events)
    records = ready_and_battery(box, cfg, FACTS, timeout=5)
    asked = [e.command for e in events[before:]]
    assert red({r.name: r for r in records}) == set()
    statuses = [command for command in asked if command.startswith(status)]
    assert len(statuses) == 1, asked  # the one ready read; the battery reused it
    assert any("api" in command or "http" in command for command in asked)  # battery read
