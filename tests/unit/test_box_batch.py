"""Box.batch when the box answers the batch itself badly: every read fails alike, named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.box import Box, Event
from gate.hold import Hold
from gate.inventory import local_spec
from gate.options import load_contract_file
from gate.result import Exchange, Outcome, Result
from gate.target import Target

REPO = Path(__file__).resolve().parents[2]
CALLS = [["exec", "30", "./stackctl status --json"], ["file", "config.json", "json"]]


class Answers(Target):
    """A box that answers every command with one fixed exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.name, self.exchange = "fixed", exchange

    def _exchange(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        return self.exchange

    def hold(self, command: str, *, ready: str, timeout: float) -> Hold | Result:
        raise NotImplementedError

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


def batch_on(exchange: Exchange) -> tuple[list[Result], list[Event]]:
    events: list[Event] = []
    contract = load_contract_file(REPO / "matrix.py").contract
    box = Box(Answers(exchange), local_spec("/srv/stack"), contract, events.append)
    return box.batch(CALLS), events


@pytest.mark.parametrize(
    "stdout",
    ["not json", '{"exit": 0}', '[{"exit": 0, "stdout": "", "stderr": ""}]'],
    ids=["garbage", "not-a-list", "one-answer-for-two-reads"],
)
def test_a_batch_answer_that_does_not_fit_fails_every_read(stdout: str) -> None:
    results, events = batch_on(Exchange(0, stdout, ""))
    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert all("boxtool batch answered no list of 2" in r.stderr for r in results)
    assert [e.command for e in events] == [r.command for r in results]
    assert results[0].command == "./stackctl status --json"  # named as the read, not the batch


def test_a_lost_batch_makes_every_read_could_not_ask() -> None:
    results, _ = batch_on(Exchange(None, "", "", lost="connection lost: reset"))
    assert [r.outcome for r in results] == [Outcome.UNREACHABLE, Outcome.UNREACHABLE]
    assert all(r.exit_code is None and r.reason == "connection lost: reset" for r in results)


def test_a_well_formed_batch_answer_is_one_result_per_read() -> None:
    answer = (
        '[{"exit": 0, "stdout": "{}", "stderr": "", "seconds": 0.5},'
        ' {"exit": 124, "stdout": "", "stderr": "boxtool: timed out after 30s", "seconds": 30}]'
    )
    results, _ = batch_on(Exchange(0, answer, ""))
    assert (results[0].outcome, results[0].stdout, results[0].duration) == (Outcome.OK, "{}", 0.5)
    assert (results[1].outcome, results[1].reason) == (Outcome.UNREACHABLE, "timeout after 30s")
