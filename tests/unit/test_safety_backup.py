"""--safety-backup and the --no-backup rule on the fake stack: whole runs in milliseconds.

Each refusal is red through one defect switch of tests/unit/fakestack.py (the backup fails,
prints no path, prints a symlink, leaves out the env file): exit 2, the reason in one
line, no later phase run and the box restored as it was. The green path keeps nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeStack
from test_engine import Outcome, contract_file, gate

from gate.cli.validation import validate
from gate.contract import DEFAULT_BACKUP_PATH, Actions, StackContract
from gate.engine.run import Run
from gate.errors import UsageError
from gate.options import Flag, Options
from gate.phases import Phase, register, select, unregister
from gate.phases.safety_backup import archive_path
from gate.testing.double import Reply

MARK = "echo destructive-phase-was-here"
SCENARIO = ["local-defaults"]


class DestructivePhase(Phase):
    """A do-nothing destructive phase: the backup's rules, apart from any real phase's steps."""

    name = "wreck"
    mutates = True
    destructive = True
    flag = Flag("wreck", "a do-nothing destructive phase (tests)")
    fail = False

    def run(self, run: Run) -> None:
        from gate.box import Kind
        from gate.checks import CheckRecord, Verdict

        run.box.run(MARK, kind=Kind.MUTATE)
        if self.fail:
            run.add(CheckRecord("wreck: survived", Verdict.FAIL, "yes", "no", phase="wreck"))


@pytest.fixture
def wreck() -> Iterator[DestructivePhase]:
    phase = DestructivePhase()
    register(phase)
    yield phase
    unregister(phase.name)


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    return contract_file(tmp_path)


def snapshot(stack: FakeStack) -> dict[str, Any]:
    """What "the box as it was" means here: config, env, secrets, programs and their pids."""
    files = {p: f.text for p, f in stack.files.items() if p.split("/")[0] in (".", "secrets")}
    files.update({p: stack.files[p].text for p in ("config.json", ".env")})
    return {"files": files, "pids": stack.pids()}


def run_gate(stack: FakeStack, contract: Path, tmp_path: Path, **flags: Any) -> Outcome:
    stack.target.on(MARK, Reply(0))
    return gate(stack, contract, tmp_path, scenario=SCENARIO, **flags)


# --- the refusal rule: a destructive phase needs --safety-backup or --no-backup -------------


def test_a_destructive_flag_alone_is_refused_in_one_line_with_the_box_untouched(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = gate(stack, contract, tmp_path, wreck=True)
    assert run.code == 2, run.console
    (line,) = run.console.strip().splitlines()
    assert "--wreck" in line and "--safety-backup" in line and "--no-backup" in line, line
    assert stack.target.calls == [], "the box was touched"


def test_the_rule_is_in_select_and_validation() -> None:
    phase = DestructivePhase()
    register(phase)
    try:
        with pytest.raises(UsageError, match="--wreck can break"):
            select(Options(local=True, dir="/x", phases=frozenset({"wreck"})))
        with pytest.raises(UsageError, match="contradict"):
            validate(
                Options(local=True, dir="/x", no_backup=True, phases=frozenset({"safety_backup"}))
            )
        chosen = select(Options(phases=frozenset({"wreck"}), no_backup=True))
        assert [p.name for p in chosen] == ["matrix", "wreck"]
        chosen = select(Options(phases=frozenset({"wreck", "safety_backup"})))
        assert [p.name for p in chosen] == ["safety_backup", "matrix", "wreck"]
    finally:
        unregister(phase.name)


def test_a_destructive_phase_that_does_not_mutate_cannot_register() -> None:
    class Odd(DestructivePhase):
        name = "odd"
        mutates = False

    with pytest.raises(ValueError, match="a destructive phase mutates"):
        register(Odd())


def test_no_backup_runs_the_destructive_phase_without_an_archive(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = run_gate(stack, contract, tmp_path, wreck=True, no_backup=True)
    assert run.code == 0, run.console
    assert MARK in stack.target.commands
    assert stack.backups == []


# --- the archive's path, from the backup's own output ---------------------------------------


@pytest.mark.parametrize(
    ("output", "path"),
    [
        ("Backup written to: /srv/stack/b/backup-1.tar.gz\n", "/srv/stack/b/backup-1.tar.gz"),
        ("Archived config.json, .env and 1 secret file(s)\n/b/kv-1.tar.gz\n", "/b/kv-1.tar.gz"),
        ("written\nbackups/x.tgz\n\n  \n", "backups/x.tgz"),
        ("saved to snapshot.zip.\n", "snapshot.zip"),
        ("backup complete\n", None),
        ("", None),
    ],
)  # fmt: skip
def test_the_archive_path_is_the_last_lines_path_token(output: str, path: str | None) -> None:
    assert archive_path(output, DEFAULT_BACKUP_PATH) == path


def test_a_contract_may_say_how_to_read_the_path_and_must_hold_config_and_env() -> None:
    assert archive_path("archive=/x/y.bin ok\n", r"archive=(?P<path>\S+)") == "/x/y.bin"
    base = FakeStack().contract
    with pytest.raises(ValueError, match=r"add '\.env'"):
        StackContract(
            name="x",
            control="./ctl",
            expected_services=lambda cfg: frozenset(),
            actions=Actions(backup_holds=("config.json",)),
        )
    assert base.backup_holds == ("config.json", ".env")


# --- the green path ------------------------------------------------------------------------


def test_a_verified_backup_runs_first_and_is_removed_when_nothing_failed(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    before = snapshot(stack)
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 0, run.console
    assert run.verdict("safety-backup: archive verified") == "pass"
    commands = stack.target.commands
    backup = commands.index("./stackctl backup")
    baseline = next(i for i, c in enumerate(commands) if ".gate/baseline" in c)
    assert baseline < backup < commands.index(MARK), "the backup did not run between them"
    assert run.summary["phases"] == ["safety_backup", "matrix", "wreck"]
    assert stack.backups == ["backups/backup-1.tar.gz"]
    assert not stack.archives, "the archive was left behind"
    assert f"safety backup removed: {stack.dir}/backups/backup-1.tar.gz" in run.console
    assert snapshot(stack)["files"] == before["files"]
    events = [json.loads(ln) for ln in (run.run_dir / "events.jsonl").read_text().splitlines()]
    kinds = {e["command"]: e["kind"] for e in events}
    assert kinds["./stackctl backup"] == "mutate"


def test_safety_backup_alone_with_the_matrix_passes_and_keeps_nothing(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    run = run_gate(stack, contract, tmp_path, safety_backup=True)
    assert run.code == 0, run.console
    assert stack.backups and not stack.archives


# --- refusals: exit 2, one reason, nothing destructive, the box as it was -------------------


@pytest.mark.parametrize(
    ("defect", "reason"),
    [
        ({"backup_fails": True}, "the backup action exited 1"),
        ({"backup_output": "backup complete\n"}, "the backup printed no archive path"),
        ({"backup_symlink": True}, "backups/backup-1.tar.gz is a symlink"),
        ({"backup_omits": (".env",)}, "backups/backup-1.tar.gz lacks .env"),
    ],
)
def test_an_unverified_backup_refuses_the_destructive_phases(
    wreck: DestructivePhase,
    contract: Path,
    tmp_path: Path,
    defect: dict[str, Any],
    reason: str,
) -> None:
    stack = FakeStack(**defect)
    before = snapshot(stack)
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 2, run.console
    assert MARK not in stack.target.commands, "a destructive phase ran"
    (line,) = [ln for ln in run.console.splitlines() if "destructive phases refused" in ln]
    assert reason in line, line
    assert run.verdict("safety-backup: archive verified") == "fail"
    assert "restore proven" in run.console
    assert snapshot(stack)["files"] == before["files"]
    assert json.loads(stack.files[".gate/state.json"].text)["state"] == "clean"
    assert run.summary["verdict"] == "usage error"


def test_a_backup_that_is_not_in_the_stack_or_backup_dir_is_refused(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack(backup_output="Backup written to: /tmp/elsewhere.tar.gz\n")
    stack.files["/tmp/elsewhere.tar.gz"] = stack.files["config.json"]
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 2, run.console
    assert "lies outside the stack dir and the backup dir" in run.console


def test_a_contract_without_a_backup_action_is_exit_2_before_the_baseline(
    tmp_path: Path,
) -> None:
    extra = (
        "import dataclasses\n"
        "CONTRACT = dataclasses.replace(\n"
        "    CONTRACT, actions=dataclasses.replace(CONTRACT.actions, backup=None)\n"
        ")\n"
    )
    stack = FakeStack()
    run = run_gate(stack, contract_file(tmp_path, extra), tmp_path, safety_backup=True)
    assert run.code == 2, run.console
    assert "declares no backup action" in run.console
    assert not any(".gate/baseline" in c for c in stack.target.commands)


# --- something failed: roll back from the archive -------------------------------------------


def test_a_failed_run_rolls_back_from_the_archive_and_proves_it(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    wreck.fail = True
    stack = FakeStack()
    before = snapshot(stack)
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 1, run.console
    commands = stack.target.commands
    archive = f"{stack.dir}/backups/backup-1.tar.gz"
    order = [commands.index(c) for c in ("./stackctl down", f"./stackctl restore {archive}")]
    assert order == sorted(order)
    assert run.verdict("rollback: config bytes equal the baseline") == "pass"
    assert run.verdict("rollback: secrets (env) equal the baseline") == "pass"
    assert "restore proven" in run.console
    assert not stack.archives
    assert snapshot(stack)["files"] == before["files"]


def test_a_drifted_secret_is_put_back_by_the_rollback(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    """A destructive phase that blanked a token: the archive puts the .env back."""
    wreck.fail = True
    stack = FakeStack()
    env = stack.files[".env"].text
    original = DestructivePhase.run

    def blank(self: DestructivePhase, run: Run) -> None:
        stack.set_env("DASHBOARD_TOKEN", "")
        original(self, run)

    wreck.run = blank.__get__(wreck)  # type: ignore[method-assign]
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 1, run.console
    assert stack.files[".env"].text == env
    assert "restore proven" in run.console


def test_a_restore_that_does_nothing_names_the_drifted_category_and_is_dirty(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    wreck.fail = True
    stack = FakeStack(restore_noop=True)
    original = DestructivePhase.run

    def blank(self: DestructivePhase, run: Run) -> None:
        stack.set_env("DASHBOARD_TOKEN", "")
        original(self, run)

    wreck.run = blank.__get__(wreck)  # type: ignore[method-assign]
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 4, run.console
    assert run.verdict("rollback: secrets (env) equal the baseline") == "fail"
    assert run.verdict("rollback: secrets (files) equal the baseline") == "pass"
    assert run.record("rollback: secrets (env) equal the baseline")["observed"] == (
        "env: DASHBOARD_TOKEN"
    )
    assert "rollback NOT proven (drifted: env: DASHBOARD_TOKEN)" in run.console
    assert "archive KEPT at /srv/stack/backups/backup-1.tar.gz" in run.console
    assert "backups/backup-1.tar.gz" in stack.archives


def test_a_failing_rollback_keeps_the_archive_brings_the_stack_up_and_is_dirty(
    wreck: DestructivePhase, contract: Path, tmp_path: Path
) -> None:
    wreck.fail = True
    stack = FakeStack(restore_fails=True)
    run = run_gate(stack, contract, tmp_path, wreck=True, safety_backup=True)
    assert run.code == 4, run.console
    archive = f"{stack.dir}/backups/backup-1.tar.gz"
    assert f"archive KEPT at {archive}" in run.console
    assert "backups/backup-1.tar.gz" in stack.archives
    commands = stack.target.commands
    last_up = len(commands) - 1 - commands[::-1].index("./stackctl up")
    assert last_up > commands.index(f"./stackctl restore {archive}"), "no up after the failure"
    assert all(p.state == "running" for p in stack.programs.values())
    assert json.loads(stack.files[".gate/state.json"].text)["state"] != "clean"
