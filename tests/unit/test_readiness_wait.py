"""Readiness with a stack's blocking status (Status.wait) on the scripted double: asked
once, first, and judged like a poll; a wait that ends early only hands over to the polls."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fakestack import FakeStack

from gate.battery import ready_and_battery, wait_ready
from gate.box import Box, Event
from gate.checks import Verdict
from gate.observe import read_config
from gate.probes import Status
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
    assert statuses(events[before:]) == ["./stackctl status --json --wait 8"]
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
        "./stackctl status --json --wait 10",
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
    [("status --wait", "must say how long"), ("status --wait {timeout} {other}", "only {timeout}")],
)
def test_a_blocking_status_without_a_usable_timeout_is_refused(wait: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Status(wait=wait)
