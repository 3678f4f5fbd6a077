"""BoxLock's side of the protocol on the scripted Target: what it sends after a reconnect,
and that nothing else is sent once the lock cannot be proven. (The box's side, the
detached holder, is tested for real in tests/integration/test_lock.py.)"""

from __future__ import annotations

import json
import re

import pytest

from gate.box import Box, Event
from gate.contract import Secrets, StackContract
from gate.errors import LockLost, Unreachable
from gate.inventory import HostSpec
from gate.lock import BoxLock
from gate.testing.double import Held, Reply, ScriptedHold, ScriptedTarget

CONTRACT = StackContract(
    name="lock-unit",
    expected_services=lambda _cfg: frozenset(),
    control="./stackctl",
    secrets=Secrets(env_keys=(), files=(), config_paths=()),
)
LOCK = re.compile(r"boxtool\.py lock ")
LIFELINE = re.compile(r"boxtool\.py lifeline ")
QUIESCE = re.compile(r"boxtool\.py quiesce ")
LOST = "lost: run run-1 holds no lock here (it lapsed or was released)\n"


def locked(target: ScriptedTarget) -> tuple[Box, BoxLock, list[Event]]:
    """A box over `target` whose lock run-1 holds (exclusive, 5 s grace)."""
    target.on(LOCK, Held())
    target.on("echo hi", Reply(stdout="hi\n"))
    target.on(QUIESCE, Reply(stdout="quiet\n"))
    events: list[Event] = []
    box = Box(
        target,
        HostSpec(name="unit", host="unit.invalid", dir="/srv/stack"),
        CONTRACT,
        events.append,
    )
    target.open()
    lock = BoxLock(box, "run-1", exclusive=True, grace=5)
    lock.acquire()
    return box, lock, events


def test_acquire_sends_the_run_the_mode_the_grace_and_who_holds_it() -> None:
    target = ScriptedTarget()
    locked(target)
    words = target.calls[0].command.split(" ", 6)
    assert words[:6] == ["exec", "python3", ".gate/boxtool.py", "lock", "run-1", "exclusive"]
    grace, info = words[6].split(" ", 1)
    assert grace == "5"
    assert json.loads(info.strip("'"))["run_id"] == "run-1"
    assert target.calls[0].held and target.calls[0].directory == "/srv/stack"


def test_a_reconnect_is_proven_before_the_next_command() -> None:
    target = ScriptedTarget()
    box, _lock, _ = locked(target)
    target.on(LIFELINE, Held())
    box.run("echo hi")
    target.drop()
    assert box.run("echo hi").stdout == "hi\n"

    sent = [c.command.split(" ")[3] if c.held else c.command for c in target.calls]
    assert sent == [
        "lock",
        "echo hi",
        "lifeline",
        "GATE_SPEC=.gate/spec.json python3 .gate/boxtool.py quiesce 620",
        "echo hi",
    ]
    first, second = target.holds
    assert first.released and not second.released, "the dead lifeline was not let go"


def test_a_lock_that_cannot_be_reproven_stops_every_later_command() -> None:
    target = ScriptedTarget()
    box, lock, events = locked(target)
    target.on(LIFELINE, Reply(1, stdout=LOST))
    target.drop()
    with pytest.raises(LockLost) as lost:
        box.run("echo hi")
    assert lost.value.exit_code == 3
    assert "could not be re-proven after a reconnect" in str(lost.value)
    assert "run run-1 holds no lock here" in str(lost.value)

    with pytest.raises(LockLost):
        box.run("echo hi")
    with pytest.raises(LockLost):
        lock.reattach()
    assert [c.command.split(" ")[3] for c in target.calls if c.held] == ["lock", "lifeline"]
    assert not [c for c in target.calls if not c.held], "a command went out without the lock"
    assert events == []
    lock.release()  # nothing left to let go of: no error


def test_a_reconnect_that_fails_keeps_the_claim_and_the_next_command_proves_it() -> None:
    target = ScriptedTarget()
    box, _lock, _ = locked(target)
    target.on(LIFELINE, Held())
    target.drop(reconnect=False)
    with pytest.raises(Unreachable) as down:
        box.run("echo hi")
    assert not isinstance(down.value, LockLost), "could-not-ask is not a lost lock"
    target.reachable = True
    assert box.run("echo hi").ok
    assert [c.command.split(" ")[3] for c in target.calls if c.held] == ["lock", "lifeline"]


def test_release_lets_the_lifeline_go_and_later_commands_are_not_guarded() -> None:
    target = ScriptedTarget()
    box, lock, _ = locked(target)
    lock.release()
    hold = target.holds[0]
    assert isinstance(hold, ScriptedHold) and hold.released
    target.drop()
    assert box.run("echo hi").ok  # no lock left to prove: no lifeline is asked for
    assert [c.held for c in target.calls] == [True, False]
