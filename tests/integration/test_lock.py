"""The box lock survives a lost link, or the run stops; a second run is never admitted
while the first may still act.

The lock's own life is tested on a LocalTarget and a stack dir with boxtool (no stack
needed); the reproduction of the lost-link bug runs two real gate runs over a real sshd.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import Box as StackBox
from harness import (
    GateRun,
    kill_sessions,
    processes,
    run_gate,
    start_gate,
    wait_for,
    wait_for_event,
)

from gate.box import Box, Event
from gate.contract import Secrets, StackContract
from gate.errors import BoxLocked, LockLost, UsageError
from gate.inventory import local_spec
from gate.lock import HOLDER_FILE, LOCK_FILE, BoxLock, lock_grace
from gate.target import LocalTarget
from gate.testing.sshd import Sshd

GRACE = 1.0
LONG_GRACE = 60.0

CONTRACT = StackContract(
    name="lock-fixture",
    expected_services=lambda _cfg: frozenset({"svc"}),
    control="./stackctl",
    secrets=Secrets(env_keys=("*_TOKEN",), files=(), config_paths=()),
)


# --- helpers: what the box itself says about the lock ---------------------------------------


def lock_is_held(stack: Path) -> bool:
    """Try the flock the way another run would (non-blocking); let it go at once if we got it."""
    fd = os.open(stack / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def journal_of(stack: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's lines in the on-box journal, in order."""
    path = stack / ".gate" / "journal.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [r for r in map(json.loads, lines) if r["run_id"] == run_id]


def journal(stack: Path, run_id: str, event: str) -> list[dict[str, Any]]:
    return [r for r in journal_of(stack, run_id) if r["event"] == event]


def lifelines(stack: Path, run_id: str) -> list[int]:
    """Pids the box has registered as this run's lifelines."""
    folder = stack / ".gate" / "lifelines" / run_id
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def gone(pid: int) -> bool:
    """Exited (a zombie counts: it holds nothing and reads nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def kill_lifelines(stack: Path, run_id: str) -> float:
    """SIGKILL the run's lifelines only, as a dropped link ends them; wait until they are gone.

    Returns the wall-clock time of the kill (the journal's clock).
    """
    pids = lifelines(stack, run_id)
    assert pids, f"run {run_id} has no lifeline to kill"
    killed_at = time.time()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    left = wait_for("lifelines gone", lambda: [p for p in pids if not gone(p)], lambda x: not x)
    assert not left
    return killed_at


def wait_for_lapse(stack: Path, run_id: str, timeout: float = 60) -> dict[str, Any]:
    found = wait_for(
        f"lock of {run_id} lapsed",
        lambda: journal(stack, run_id, "lock-lapsed"),
        bool,
        timeout=timeout,
        interval=0.05,
    )
    return found[0]


# --- the lock on a LocalTarget --------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    """A stack dir with what boxtool reads: enough to hold the lock, no stack running."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / ".env").write_text("API_TOKEN=lock-fixture-token-0000\n")
    (stack / "config.json").write_text("{}")
    return stack


Locks = Callable[..., tuple[BoxLock, list[Event]]]


@pytest.fixture
def locks(stack: Path) -> Iterator[Locks]:
    """A BoxLock per would-be run, each on its own session; all are released at teardown."""
    made: list[BoxLock] = []

    def make(
        run_id: str, *, exclusive: bool = True, grace: float = GRACE
    ) -> tuple[BoxLock, list[Event]]:
        events: list[Event] = []
        box = Box(LocalTarget(), local_spec(str(stack)), CONTRACT, events.append)
        box.install_tool()
        made.append(BoxLock(box, run_id, exclusive=exclusive, grace=grace))
        return made[-1], events

    yield make
    for lock in made:
        lock.release()


def test_a_second_run_is_refused_naming_the_holder_until_a_clean_release(
    stack: Path, locks: Locks
) -> None:
    first, _ = locks("run-a", grace=LONG_GRACE)
    first.acquire()
    assert lock_is_held(stack)
    holder = json.loads((stack / HOLDER_FILE).read_text())
    assert holder["run_id"] == "run-a" and holder["pid"] == os.getpid()

    second, _ = locks("run-b")
    with pytest.raises(BoxLocked) as refused:
        second.acquire()
    assert refused.value.exit_code == 75
    named = f"locked by run run-a ({holder['user']}@{holder['runner']} pid {os.getpid()}, since "
    assert named in str(refused.value)
    assert "its lock lapses 60s after its last command on the box ends" in str(refused.value)
    with pytest.raises(BoxLocked):  # a --check is refused beside a mutating run too
        locks("check-c", exclusive=False)[0].acquire()

    first.release()
    assert not lock_is_held(stack), "the lock was still held when release() returned"
    assert not (stack / HOLDER_FILE).exists()
    assert not (stack / ".gate" / "lifelines" / "run-a").exists()
    assert journal(stack, "run-a", "lock-lapsed") == [], "a clean release is no lapse"
    second.acquire()
    assert json.loads((stack / HOLDER_FILE).read_text())["run_id"] == "run-b"
    second.release()
    assert not lock_is_held(stack)


def test_shared_locks_coexist_and_keep_an_exclusive_one_out(stack: Path, locks: Locks) -> None:
    checks = [locks(f"check-{n}", exclusive=False)[0] for n in (1, 2)]
    for check in checks:
        check.acquire()
    with pytest.raises(BoxLocked) as refused:
        locks("run-x")[0].acquire()
    assert "another run (a --check run" in str(refused.value)
    for check in checks:
        check.release()
    assert not lock_is_held(stack)


def test_a_dropped_lifeline_keeps_the_lock_and_the_run_reattaches(
    stack: Path, locks: Locks
) -> None:
    lock, events = locks("run-a", grace=LONG_GRACE)
    lock.acquire()
    killed = lifelines(stack, "run-a")
    kill_lifelines(stack, "run-a")

    assert lock_is_held(stack), "the lock died with its lifeline"
    with pytest.raises(BoxLocked):
        locks("run-b")[0].acquire()
    lock.reattach()
    assert journal(stack, "run-a", "lock-reproven"), "the box did not record the proof"
    again = lifelines(stack, "run-a")
    assert again and not set(again) & set(killed)

    # the same happens on its own before the next command when the lifeline ends again
    kill_lifelines(stack, "run-a")
    assert lock.box.run("echo still-mine").stdout.strip() == "still-mine"
    assert len(journal(stack, "run-a", "lock-reproven")) == 2
    assert lock_is_held(stack)
    assert events[-1].command == "echo still-mine"

    lock.release()
    assert not lock_is_held(stack)


def test_a_lock_without_lifeline_lapses_after_the_grace_and_the_run_stops(
    stack: Path, locks: Locks
) -> None:
    lock, events = locks("run-a")
    lock.acquire()
    killed_at = kill_lifelines(stack, "run-a")

    lapse = wait_for_lapse(stack, "run-a")
    # the holder looks every 0.2 s: it last saw the lifeline alive at most that before the kill
    assert lapse["at"] - killed_at >= GRACE - 0.25, "lapsed before the grace was over"
    assert not lock_is_held(stack)
    assert not (stack / HOLDER_FILE).exists()

    with pytest.raises(LockLost) as lost:
        lock.reattach()
    assert lost.value.exit_code == 3
    assert "run run-a holds no lock here" in str(lost.value)
    assert "nothing more is sent" in str(lost.value)
    sent = len(events)
    with pytest.raises(LockLost):
        lock.box.run("touch should-not-exist")
    assert len(events) == sent and not (stack / "should-not-exist").exists()

    other, _ = locks("run-b")
    other.acquire()
    assert lock_is_held(stack)


def test_a_command_in_flight_keeps_the_lock_past_the_grace(stack: Path, locks: Locks) -> None:
    lock, _ = locks("run-a")
    lock.acquire()
    go = stack / "go"
    command = f"while [ ! -e {go} ]; do sleep 0.05; done"
    in_flight = subprocess.Popen(
        [sys.executable, ".gate/boxtool.py", "exec", "120", command], cwd=stack
    )  # what Box.run sends for every command once boxtool is up
    try:
        wait_for(
            "the command registered in flight",
            lambda: (stack / ".gate" / "inflight" / str(in_flight.pid)).exists(),
            bool,
        )
        kill_lifelines(stack, "run-a")
        window = time.monotonic() + GRACE + 1.5
        while time.monotonic() < window:  # watched the whole time, not sampled once
            assert lock_is_held(stack), "the lock lapsed while a command was in flight"
            time.sleep(0.05)
        assert journal(stack, "run-a", "lock-lapsed") == []
    finally:
        go.touch()
        assert in_flight.wait(timeout=30) == 0
    ended = time.time()

    lapse = wait_for_lapse(stack, "run-a")
    assert lapse["at"] >= ended + GRACE - 0.3, "the grace did not start when the command ended"
    assert not lock_is_held(stack)
    assert not (stack / ".gate" / "inflight" / str(in_flight.pid)).exists()


def test_quiesce_answers_quiet_only_once_the_command_in_flight_ended(
    stack: Path, locks: Locks
) -> None:
    _lock, _ = locks("run-q")  # installs boxtool
    go = stack / "go"
    command = f"while [ ! -e {go} ]; do sleep 0.05; done"
    in_flight = subprocess.Popen(
        [sys.executable, ".gate/boxtool.py", "exec", "120", command], cwd=stack
    )
    try:
        wait_for(
            "the command registered in flight",
            lambda: (stack / ".gate" / "inflight" / str(in_flight.pid)).exists(),
            bool,
        )
        busy = subprocess.run(
            [sys.executable, ".gate/boxtool.py", "quiesce", "0.3"],
            cwd=stack,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (busy.returncode, busy.stdout) == (1, "busy\n")
        waiting = subprocess.Popen(
            [sys.executable, ".gate/boxtool.py", "quiesce", "60"],
            cwd=stack,
            stdout=subprocess.PIPE,
            text=True,
        )
        go.touch()
        out, _ = waiting.communicate(timeout=60)
        assert (waiting.returncode, out) == (0, "quiet\n")
        assert in_flight.wait(timeout=30) == 0
    finally:
        go.touch()
        in_flight.wait(timeout=30)


def test_lock_inputs_are_checked_before_anything_is_held(stack: Path, locks: Locks) -> None:
    locks("run-a")  # boxtool installed
    tool = [sys.executable, ".gate/boxtool.py"]
    for args in (["lock", "../x", "exclusive", "5"], ["lock", "r", "both", "5"]):
        done = subprocess.run([*tool, *args], cwd=stack, capture_output=True, text=True)
        assert done.returncode == 2, done
        assert done.stdout == ""
    lost = subprocess.run([*tool, "lifeline", "nobody"], cwd=stack, capture_output=True, text=True)
    assert lost.returncode == 1
    assert lost.stdout.startswith("lost: run nobody holds no lock here")
    assert not lock_is_held(stack)

    with pytest.raises(UsageError, match="GATE_LOCK_GRACE='soon'"):
        lock_grace({"GATE_LOCK_GRACE": "soon"})
    assert lock_grace({"GATE_LOCK_GRACE": "2.5"}) == 2.5
    assert lock_grace({}) == 30.0


# --- the reproduction: a dropped link must not let a second run in -------------------------


SCENARIO = "nano-cache-lan"  # a scenario whose restore has work to do
RENDERED = "boxtool.py render"
APPLIED = "stackctl apply -y"


def applying(stack: Path) -> bool:
    """A stack `apply` runs in this stack dir right now (the one in flight on the box)."""
    for pid, _, _ in processes():
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"apply" in argv and os.readlink(f"/proc/{pid}/cwd") == str(stack):
                return True
    return False


@pytest.mark.slow
def test_a_link_dropped_mid_apply_keeps_a_second_run_out(
    stack_box: StackBox, sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    server = sshd_factory()
    flags = ssh_args(server, stack_box, tmp_path / "inventory")
    out = tmp_path / "first"
    first = start_gate(*flags, "--scenario", SCENARIO, out=out)
    try:
        wait_for_event(out, RENDERED)
        wait_for("the apply in flight", lambda: applying(stack_box.path), bool, interval=0.02)
        assert kill_sessions(server), "no sshd session to kill"
        second = run_gate(*flags, "--recover", out=tmp_path / "second")
        first_still_running = first.poll() is None
        code = first.wait(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    run = GateRun(code, (tmp_path / "first-console.txt").read_text(), out)
    run_id = run.run_dir.name

    assert second.code == 75, second.output
    assert first_still_running, "refused after the first run ended: that proves nothing"
    assert f"locked by run {run_id} (" in second.output
    assert not [e for e in second.events if e["kind"] == "mutate"], "the second run mutated"

    # the first run proved its lock on the new link, then restored (and proved that) under
    # it; the apply it lost the answer to makes it inconclusive, never a pass
    reproven = journal(stack_box.path, run_id, "lock-reproven")
    restored = journal(stack_box.path, run_id, "restored")
    assert reproven and restored, run.output
    assert reproven[0]["at"] < restored[0]["at"]
    assert run.code == 3, run.output
    proof = {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "restore"}
    assert len(proof) >= 5 and set(proof.values()) == {"pass"}, proof
    assert not lock_is_held(stack_box.path), "the first run did not let go of the lock"
    assert journal(stack_box.path, run_id, "lock-lapsed") == [], "released, not lapsed"

    after = run_gate(*flags, "--check", out=tmp_path / "after")
    assert after.code == 0, after.output


@pytest.mark.slow
def test_a_run_whose_lock_lapsed_sends_nothing_more_and_leaves_the_journal(
    stack_box: StackBox,
    sshd_factory: Callable[[], Sshd],
    tmp_path: Path,
    short_lock_grace: None,
) -> None:
    server = sshd_factory()
    flags = ssh_args(server, stack_box, tmp_path / "inventory")
    out = tmp_path / "first"
    first = start_gate(*flags, "--scenario", SCENARIO, out=out)
    try:
        wait_for_event(out, APPLIED)
        first.send_signal(signal.SIGSTOP)  # a runner cut off longer than the grace
        assert kill_sessions(server), "no sshd session to kill"
        run_id = next(p.name for p in out.iterdir() if p.is_dir())
        lapse = wait_for_lapse(stack_box.path, run_id)
        first.send_signal(signal.SIGCONT)
        code = first.wait(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    run = GateRun(code, (tmp_path / "first-console.txt").read_text(), out)

    assert run.code == 4, run.output
    assert "could not be re-proven after a reconnect" in run.output
    assert f"run {run_id} holds no lock here" in run.output
    answered = [e for e in run.events if e["status"] != "unreachable"]
    assert all(e["start"] < lapse["at"] for e in answered), "the box answered after the lapse"
    events = [r["event"] for r in journal_of(stack_box.path, run_id)]
    assert events[-1] == "lock-lapsed" and "baseline" in events, events  # nothing after it
    assert json.loads((stack_box.path / ".gate" / "state.json").read_text())["state"] == "dirty"
    assert stack_box.config()["pool"]["tier"] == "nano", "the box was touched after the lapse"

    recovered = run_gate(*flags, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert stack_box.config()["pool"]["tier"] == "mini"
