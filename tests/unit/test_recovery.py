"""What a run leaves behind when it ends badly, and how `--recover` uses it, on the fake stack.

A run is cut off (`cut_off`: every command from one point on never reaches the box, as after
SIGKILL or a link lost for good: the box cannot tell them apart) after a destructive phase
opened a repair, broke the stack and, with --safety-backup, a verified archive was
journaled. `--recover` then mends the repair, restores and proves; it removes the archive
when the restore is proven, rolls back from it when not, and keeps and names it when even
that fails. A link lost while the engine mends (`mend_all` in `_finish`) leaves the box
dirty with the repair open for `--recover`, and no restore runs over the unmended break.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakestack import FakeStack
from test_engine import Outcome, contract_file, gate

from gate.box import Kind
from gate.checks import CheckRecord, Verdict
from gate.engine.run import Run
from gate.options import Flag
from gate.phases import Phase, register, unregister
from gate.phases.safety_backup import journaled_archive
from gate.repairs import Repair, control, open_repair
from gate.snapshot import BASELINE_CONFIG, JOURNAL_FILE, Journal
from gate.testing.double import Answer, Lost, Reply

MARK = "echo breaker-is-done"
ARCHIVE = "backups/backup-1.tar.gz"
KEY = "secrets/node.key"
SCENARIO = ["local-defaults"]
WHAT = "the stack brought back up"


class Breaker(Phase):
    """A destructive phase: opens a repair (`up`), takes the stack down, may rotate a key."""

    name = "breaker"
    mutates = True
    destructive = True
    flag = Flag("breaker", "a destructive phase that takes the stack down (tests)")

    def __init__(self) -> None:
        self.stack: FakeStack | None = None
        self.rotate_key = False
        self.fail = False

    def run(self, run: Run) -> None:
        open_repair(run, Repair("stack-down", WHAT, (control("up"),)))
        run.box.control("down", kind=Kind.MUTATE)
        if self.rotate_key and self.stack is not None:
            self.stack.files[KEY].text = "rotated-by-the-phase\n"  # no config restore puts it back
        run.box.run(MARK, kind=Kind.MUTATE)
        if self.fail:
            run.add(CheckRecord("breaker: survived", Verdict.FAIL, "yes", "no", phase="breaker"))


@pytest.fixture
def breaker() -> Iterator[Breaker]:
    phase = Breaker()
    register(phase)
    yield phase
    unregister(phase.name)


@pytest.fixture
def contract(tmp_path: Path) -> Path:
    return contract_file(tmp_path)


def cut_off(stack: FakeStack, command: str) -> None:
    """The runner is gone from `command` on: it never reaches the box, nor does anything
    after it (SIGKILL and a link lost for good leave the box the same)."""
    stack.target.once(command, Lost("the runner was killed (scripted)", reconnect=False))


def come_back(stack: FakeStack) -> None:
    """A new runner reaches the box again."""
    stack.target.reachable = True


def state(stack: FakeStack) -> str:
    return str(json.loads(stack.files[".gate/state.json"].text)["state"])


def journal(stack: FakeStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stack.files[JOURNAL_FILE].text.splitlines()]


def killed_run(
    stack: FakeStack, breaker: Breaker, contract: Path, tmp_path: Path, **flags: Any
) -> Outcome:
    """A --breaker run cut off once the stack is down: the box dirty, the repair open."""
    breaker.stack = stack
    stack.target.on(MARK, Reply(0))
    cut_off(stack, MARK)
    run = gate(stack, contract, tmp_path / "killed", breaker=True, scenario=SCENARIO, **flags)
    assert stack.target.commands[-1] == MARK, "a command reached the box after the cut"
    assert state(stack) == "dirty", run.console
    assert all(p.state != "running" for p in stack.programs.values()), "the stack is not down"
    come_back(stack)
    return run


def recover(stack: FakeStack, contract: Path, tmp_path: Path) -> Outcome:
    stack.target.calls.clear()
    return gate(stack, contract, tmp_path / "recovered", recover=True)


def test_a_proven_recover_removes_the_archive_the_killed_run_left(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    env, cfg = stack.files[".env"].text, stack.files["config.json"].text
    killed_run(stack, breaker, contract, tmp_path, safety_backup=True)
    assert ARCHIVE in stack.archives, "the killed run left no archive to recover with"

    run = recover(stack, contract, tmp_path)
    assert run.code == 0, run.console
    commands = stack.target.commands
    up = commands.index("./stackctl up")
    restore = next(i for i, c in enumerate(commands) if c.startswith(f"cp -p {BASELINE_CONFIG}"))
    assert up < restore, "the repair was not mended before the restore"
    assert not any("stackctl restore" in c for c in commands), "a proven restore rolled back"
    assert ARCHIVE not in stack.archives and ARCHIVE not in stack.files, "archive left behind"
    assert f"safety backup removed: {stack.dir}/{ARCHIVE}" in run.console
    removed = [e for e in journal(stack) if e["event"] == "backup-removed"]
    assert [e["archive"] for e in removed] == [f"{stack.dir}/{ARCHIVE}"]
    assert state(stack) == "clean"
    assert (stack.files[".env"].text, stack.files["config.json"].text) == (env, cfg)


def test_an_unproven_restore_rolls_back_from_the_killed_runs_archive_and_proves(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.rotate_key = True
    stack = FakeStack()
    key = stack.files[KEY].text
    killed_run(stack, breaker, contract, tmp_path, safety_backup=True)
    assert stack.files[KEY].text != key

    run = recover(stack, contract, tmp_path)
    assert run.code == 1, run.console  # proven in the end, but the baseline alone failed
    assert run.summary["verdict"] == "failed"
    archive = f"{stack.dir}/{ARCHIVE}"
    assert f"rolling back from the safety backup {archive}" in run.console
    commands = stack.target.commands
    assert f"./stackctl restore {archive}" in commands
    assert run.verdict("rollback: secrets (files) equal the baseline") == "pass"
    assert run.console.count("restore proven") == 1
    assert stack.files[KEY].text == key
    assert ARCHIVE not in stack.archives, "the archive outlived a proven rollback"
    assert state(stack) == "clean"


def test_a_rollback_that_fails_in_the_recover_keeps_the_archive_and_is_dirty(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.rotate_key = True
    stack = FakeStack()
    killed_run(stack, breaker, contract, tmp_path, safety_backup=True)
    stack.defects.restore_fails = True

    run = recover(stack, contract, tmp_path)
    assert run.code == 4, run.console
    assert f"archive KEPT at {stack.dir}/{ARCHIVE}" in run.console
    assert ARCHIVE in stack.archives
    assert state(stack) == "dirty"
    assert all(p.state == "running" for p in stack.programs.values()), "not brought up anyway"


def test_an_archive_gone_since_the_kill_is_not_rolled_back_from(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.rotate_key = True
    stack = FakeStack()
    killed_run(stack, breaker, contract, tmp_path, safety_backup=True)
    del stack.files[ARCHIVE]

    run = recover(stack, contract, tmp_path)
    assert run.code == 4, run.console
    assert "the safety backup of the killed run cannot be used" in run.console
    assert "is not a regular file (missing)" in run.console
    assert not any("stackctl restore" in c for c in stack.target.commands)


def test_without_an_archive_an_unproven_recover_is_dirty_and_rolls_nothing_back(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.rotate_key = True
    stack = FakeStack()
    killed_run(stack, breaker, contract, tmp_path, no_backup=True)

    run = recover(stack, contract, tmp_path)
    assert run.code == 4, run.console
    assert "./stackctl up" in stack.target.commands, "the open repair was not mended"
    assert not any("stackctl restore" in c for c in stack.target.commands)
    assert "safety backup" not in run.console


def test_the_archive_of_a_keep_run_is_removed_by_the_recover_that_puts_the_box_back(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    kept = gate(
        stack, contract, tmp_path / "kept", safety_backup=True, scenario=SCENARIO, keep=True
    )
    assert kept.code == 0, kept.console
    assert f"--keep: the safety backup is kept at {stack.dir}/{ARCHIVE}" in kept.console
    assert ARCHIVE in stack.archives
    run = recover(stack, contract, tmp_path)
    assert run.code == 0, run.console
    assert ARCHIVE not in stack.archives, "--recover left the --keep run's archive"


@pytest.mark.parametrize(
    ("events", "archive"),
    [
        ([], None),
        ([{"event": "backup", "archive": "/b/1.tgz"}], "/b/1.tgz"),
        ([{"event": "backup", "archive": "/b/1.tgz"}, {"event": "phase"}], "/b/1.tgz"),
        (
            [{"event": "backup", "archive": "/b/1.tgz"},
             {"event": "backup-removed", "archive": "/b/1.tgz"}],
            None,
        ),
        (
            [{"event": "backup", "archive": "/b/1.tgz"},
             {"event": "backup-removed", "archive": "/b/other.tgz"}],
            "/b/1.tgz",
        ),
        ([{"event": "backup", "archive": ""}], None),
    ],
)  # fmt: skip
def test_the_journaled_archive_is_the_last_verified_one_not_removed(
    events: list[dict[str, Any]], archive: str | None
) -> None:
    assert journaled_archive(events) == archive


# --- a link lost while the engine mends: no restore over the break, --recover later -------


def lose_the_mend(stack: FakeStack) -> None:
    """The repair's `up` loses the link (it comes back for what follows)."""
    stack.target.once(re.compile(r"^\./stackctl up$"), Lost("link reset while mending"))


@pytest.mark.parametrize("backup", [False, True], ids=["no-backup", "safety-backup"])
def test_a_link_lost_while_mending_leaves_the_box_dirty_for_recover(
    breaker: Breaker, contract: Path, tmp_path: Path, backup: bool
) -> None:
    stack = FakeStack()
    breaker.stack = stack
    stack.target.on(MARK, Reply(0))
    lose_the_mend(stack)
    flags = {"safety_backup": True} if backup else {"no_backup": True}
    run = gate(stack, contract, tmp_path / "lost", breaker=True, scenario=SCENARIO, **flags)

    assert run.code == 4, run.console
    lines = [ln for ln in run.console.splitlines() if "lost while mending" in ln]
    assert len(lines) == 1, run.console
    (line,) = lines
    assert f"the link was lost while mending ({WHAT}): 1 repair(s) left open" in line
    assert "--recover` mends them and restores" in line
    assert ("safety backup is KEPT at" in line) is backup, line
    assert run.verdict(f"repair: {WHAT}") == "inconclusive"
    assert not any(c.startswith(f"cp -p {BASELINE_CONFIG}") for c in stack.target.commands), (
        "a restore ran over the unmended break"
    )
    assert state(stack) == "dirty"
    assert (ARCHIVE in stack.archives) is backup

    recovered = recover(stack, contract, tmp_path)
    assert recovered.code == 0, recovered.console
    assert "./stackctl up" in stack.target.commands
    assert f"recover: {WHAT}: mended" in recovered.console
    assert all(p.state == "running" for p in stack.programs.values())
    assert state(stack) == "clean"
    assert ARCHIVE not in stack.archives


# --- a signal while the backup runs, or while the rollback runs ---------------------------


def signal_during(stack: FakeStack, command: str, signum: int) -> None:
    """`command` runs on the box while the signal arrives (the box answers it as ever)."""

    def answer(match: re.Match[str], stdin: str) -> Answer:
        os.kill(os.getpid(), signum)
        return stack._shell(match, stdin)

    stack.target.once(command, answer)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_backup_runs_verifies_it_rolls_back_and_removes_it(
    contract: Path, tmp_path: Path, signum: int
) -> None:
    stack = FakeStack()
    files = {p: stack.files[p].text for p in (".env", "config.json", KEY)}
    signal_during(stack, "./stackctl backup", signum)
    run = gate(stack, contract, tmp_path, safety_backup=True, scenario=SCENARIO)
    assert run.code == 128 + signum, run.console
    assert run.verdict("safety-backup: archive verified") == "pass"
    assert [e["event"] for e in journal(stack)].count("backup") == 1
    commands = stack.target.commands
    assert not any("boxtool.py render" in c for c in commands), "the matrix ran after it"
    assert f"./stackctl restore {stack.dir}/{ARCHIVE}" in commands, "no rollback"
    assert "restore proven" in run.console
    assert ARCHIVE not in stack.archives and not stack.archives, "an archive was left behind"
    assert {p: stack.files[p].text for p in files} == files
    assert state(stack) == "clean"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_rollback_does_not_cut_it_short(
    breaker: Breaker, contract: Path, tmp_path: Path, signum: int
) -> None:
    breaker.stack, breaker.rotate_key, breaker.fail = FakeStack(), True, True
    stack = breaker.stack
    key = stack.files[KEY].text
    stack.target.on(MARK, Reply(0))
    signal_during(stack, re.compile(rf"^\./stackctl restore {re.escape(stack.dir)}/"), signum)
    run = gate(stack, contract, tmp_path, breaker=True, safety_backup=True, scenario=SCENARIO)
    assert run.code == 128 + signum, run.console
    commands = stack.target.commands
    restore = next(i for i, c in enumerate(commands) if c.startswith("./stackctl restore "))
    assert "./stackctl up" in commands[restore:], "the rollback was cut short"
    assert run.verdict("rollback: secrets (files) equal the baseline") == "pass"
    assert "restore proven" in run.console
    assert not stack.archives
    assert stack.files[KEY].text == key
    assert state(stack) == "clean"


# --- the link drops during the rollback, or while the recover uses the archive ------------


def test_a_link_lost_mid_rollback_keeps_the_archive_claims_nothing_and_recover_mends(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.stack, breaker.rotate_key, breaker.fail = FakeStack(), True, True
    stack = breaker.stack
    key = stack.files[KEY].text
    stack.target.on(MARK, Reply(0))
    stack.target.once(re.compile(r"^\./stackctl restore "), Lost("link reset mid-rollback"))
    run = gate(stack, contract, tmp_path / "lost", breaker=True, safety_backup=True,
               scenario=SCENARIO)  # fmt: skip
    assert run.code == 4, run.console
    assert f"rollback could not finish: archive KEPT at {stack.dir}/{ARCHIVE}" in run.console
    assert "restore proven" not in run.console
    assert not any(c.startswith(f"cp -p {BASELINE_CONFIG}") for c in stack.target.commands)
    assert ARCHIVE in stack.archives and state(stack) == "dirty"

    recovered = recover(stack, contract, tmp_path)
    assert recovered.code == 1, recovered.console  # the key needed the archive
    assert stack.files[KEY].text == key
    assert not stack.archives and state(stack) == "clean"


def test_a_link_lost_while_the_recover_checks_the_archive_is_dirty_naming_it(
    breaker: Breaker, contract: Path, tmp_path: Path
) -> None:
    breaker.rotate_key = True
    stack = FakeStack()
    killed_run(stack, breaker, contract, tmp_path, safety_backup=True)
    stack.target.once(re.compile(r"boxtool\.py archive "), Lost("link reset", reconnect=False))
    run = recover(stack, contract, tmp_path)
    assert run.code == 4, run.console
    assert f"the safety backup is KEPT at {stack.dir}/{ARCHIVE}" in run.console
    assert ARCHIVE in stack.archives


def test_a_link_lost_while_removing_the_archive_says_where_it_stays(
    contract: Path, tmp_path: Path
) -> None:
    stack = FakeStack()
    stack.target.once(re.compile(r"^rm -f -- "), Lost("link reset", reconnect=False))
    run = gate(stack, contract, tmp_path, safety_backup=True, scenario=SCENARIO)
    assert run.code == 3, run.console
    assert "safety backup NOT removed (could not ask: " in run.console
    assert f"): {stack.dir}/{ARCHIVE}" in run.console
    assert state(stack) == "clean", "the proven restore was not recorded"


def test_the_recover_mends_newest_first_and_a_lost_link_there_is_dirty(
    contract: Path, tmp_path: Path
) -> None:
    """Two repairs left open: undone in reverse order; the link lost on the first is 4."""
    stack = FakeStack()
    box = stack.connect()
    first = Repair("a", "first opened", (control("up"),))
    second = Repair("b", "second opened", (control("down"),))
    kept = gate(stack, contract, tmp_path / "kept", scenario=SCENARIO, keep=True)
    assert kept.code == 0, kept.console
    run_id = json.loads(stack.files[".gate/state.json"].text)["run_id"]
    journal_ = Journal(box, run_id, "matrix")
    journal_.note("repair-open", **first.to_json())
    journal_.note("repair-open", **second.to_json())

    stack.target.once(re.compile(r"^\./stackctl down$"), Lost("link reset", reconnect=False))
    lost = recover(stack, contract, tmp_path)
    assert lost.code == 4, lost.console
    assert "the link was lost while mending (second opened), the box stays dirty" in lost.console
    assert state(stack) == "dirty"

    come_back(stack)
    again = gate(stack, contract, tmp_path / "again", recover=True)
    assert again.code == 0, again.console
    notes = [ln for ln in again.console.splitlines() if ln.startswith("recover: ")]
    assert [n.split(":")[1].strip() for n in notes] == ["second opened", "first opened"]
