"""Readiness with a stack's blocking status (Status.wait) on the scripted double: asked
once, first, and judged like a poll; a wait that ends early only hands over to the polls."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from fakestack import FakeStack

import gate.battery as battery_module
from gate.battery import Reads, await_ready, ready_and_battery, wait_ready
from gate.box import Box, Event
from gate.checks import Verdict
from gate.observe import read_config
from gate.probes import STATUS, Status
from gate.signals import Interrupted, SignalGuard
from gate.testing.double import Reply

WAIT = "status --json --wait {timeout}"
FACTS = {"workers": "2"}


@pytest.fixture
def waiting_stack() -> Iterator[Callable[[], tuple[FakeStack, Box, list[Event]]]]:
    """The fake sample stack (its contract, matrix.py, declares the blocking status)."""
    made: list[FakeStack] = []

    def make() -> tuple[FakeStack, Box, list[Event]]:
        made.append(FakeStack())
        assert made[-1].contract.status.wait == WAIT
        events: list[Event] = []
        return made[-1], made[-1].connect(events=events), events

    yield make
    for stack in made:
        assert not stack.target.pending(), "an answer the test set up was never asked for"


def statuses(events: list[Event]) -> list[str]:
    return [e.command for e in events if "./stackctl status" in e.command]


def test_the_blocking_status_is_asked_once_and_the_battery_takes_its_answer(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
) -> None:
    _, box, events = waiting_stack()
    cfg = read_config(box).value
    before = len(events)
    records = ready_and_battery(box, cfg, FACTS, timeout=7.5)
    assert [r.name for r in records if r.verdict is not Verdict.PASS] == []
    assert statuses(events[before:]) == ["./stackctl status --json --wait 5"]  # BLOCK_SLICE_S
    assert records[0].evidence.startswith("asked the stack's blocking status first; ready")


def test_a_blocking_status_that_gives_up_early_hands_over_to_the_polls(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
) -> None:
    """A stack whose wait exits non-zero before it is ready costs time, not the verdict:
    the polls go on and see it healthy."""
    stack, box, events = waiting_stack()
    cfg = read_config(box).value
    stack.target.once("status --json --wait", Reply(1, stdout=json.dumps({"overall": "x"})))
    before = len(events)
    record = wait_ready(box, cfg, timeout=10)
    assert record.verdict is Verdict.PASS, record.evidence
    assert statuses(events[before:]) == [
        "./stackctl status --json --wait 5",
        "./stackctl status --json",
    ]


def test_a_blocking_status_that_says_ready_while_an_endpoint_is_down_is_not_ready(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
) -> None:
    """The endpoints that readiness requires are read after the wait answered; the stack's
    word alone passes nothing."""
    stack, box, _ = waiting_stack()
    cfg = read_config(box).value
    stack.target.on(
        "boxtool.py http", Reply(stdout=json.dumps({"code": None, "body": "", "error": "x"}))
    )
    record = wait_ready(box, cfg, timeout=0.5)
    assert record.verdict is Verdict.FAIL
    assert '"status": 0' in record.observed or '"status": "not asked yet"' in record.observed


@pytest.mark.parametrize(
    ("wait", "says"),
    [
        ("status --wait", "must say how long"),
        ("status --wait {timeout} {other}", "only {timeout}"),
        ("status --wait {timeout[0]}", "only {timeout}"),  # a TypeError, not a clear refusal
        ("status --wait {timeout.seconds}", "only {timeout}"),  # an AttributeError
    ],
)
def test_a_blocking_status_without_a_usable_timeout_is_refused(wait: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Status(wait=wait)


def blocks_for_its_timeout(stack: FakeStack, asked: list[int]) -> None:
    """The stack's blocking status as a stack that never gets healthy answers it: after
    the whole `{timeout}` it was given, exit 1 (really sleeping: the point is the clock)."""

    def answer(match: re.Match[str], _stdin: str) -> Reply:
        asked.append(int(match.group(1)))
        time.sleep(asked[-1])
        return Reply(1, stdout=json.dumps({"overall": "degraded", "reasons": ["node: down"]}))

    stack.target.on(re.compile(r"status --json --wait (\d+)"), answer)


def test_a_signal_during_the_blocking_status_is_acted_on_within_a_slice(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal is raised before the next command, never during one: a blocking status
    asked once for the whole deadline would hold a Ctrl-C (or a CI runner's SIGTERM, and
    its SIGKILL a few seconds later, the box left dirty) for the whole readiness timeout.
    It is asked in slices, so the run unwinds within one."""
    monkeypatch.setattr(battery_module, "BLOCK_SLICE_S", 1.0)
    stack, box, _ = waiting_stack()
    cfg = read_config(box).value
    guard = SignalGuard()
    box.checkpoint = guard.checkpoint
    asked: list[int] = []
    blocks_for_its_timeout(stack, asked)
    threading.Timer(0.2, guard.received.append, [signal.SIGINT]).start()
    began = time.monotonic()
    with pytest.raises(Interrupted):
        wait_ready(box, cfg, timeout=6)
    assert time.monotonic() - began < 3.0, asked
    assert asked == [1]


def test_a_stack_that_blocks_is_asked_again_each_slice_until_the_deadline(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slices cost no polls: a stack whose wait lasts its slice is asked the blocking form
    again (never the plain status), and not healthy at the deadline is a FAIL."""
    monkeypatch.setattr(battery_module, "BLOCK_SLICE_S", 1.0)
    stack, box, events = waiting_stack()
    cfg = read_config(box).value
    asked: list[int] = []
    blocks_for_its_timeout(stack, asked)
    before = len(events)
    record = wait_ready(box, cfg, timeout=2.5)
    assert record.verdict is Verdict.FAIL, record.evidence
    assert asked == [1, 1, 1]
    assert all("--wait" in command for command in statuses(events[before:]))


def test_the_battery_takes_the_ready_endpoints_readiness_read_with_the_status(
    waiting_stack: Callable[[], tuple[FakeStack, Box, list[Event]]],
) -> None:
    """What readiness's last poll read a moment ago is not read again (a counter's first
    value is then its value at readiness); a probe it did not read is."""
    _, box, events = waiting_stack()
    cfg = read_config(box).value
    ready, last = await_ready(box, cfg, timeout=5)
    assert ready.verdict is Verdict.PASS and last is not None
    before = len(events)
    reads = Reads(box, cfg, ["api", STATUS, "dashboard-port"], recent=last)
    asked = [e.command for e in events[before:]]
    assert reads.get("api") is last.readings["api"]
    assert not any("/api/state" in command or "stackctl" in command for command in asked)
    assert any("boxtool.py port" in command for command in asked), asked
