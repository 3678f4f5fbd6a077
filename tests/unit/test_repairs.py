"""Repairs (gate/repairs.py) through a real Box over the fake sample stack: what a killed run
opened and never closed is found again in the on-box journal, and only that."""

from __future__ import annotations

from fakestack import FakeStack

from gate.repairs import Repair, control, journal_events, left_open, tool
from gate.snapshot import Journal

HEAL = Repair("fault:node", "node stopped", (control("start node"),))
PUT_BACK = Repair(
    "auth:env", "env file blanked", (tool("putback", ".gate/aside", ".env"), control("up"))
)


def test_a_repair_survives_the_journal_byte_for_byte() -> None:
    assert Repair.from_json(PUT_BACK.to_json()) == PUT_BACK
    assert [str(s) for s in PUT_BACK.steps] == ["boxtool putback .gate/aside .env", "up"]


def test_left_open_finds_the_unclosed_repairs_of_that_run_only() -> None:
    stack = FakeStack()
    box = stack.connect()
    killed, other = Journal(box, "run-killed", "matrix"), Journal(box, "run-other", "matrix")
    killed.note("repair-open", **HEAL.to_json())
    killed.note("repair-open", **PUT_BACK.to_json())
    other.note("repair-open", **Repair("x", "another run's", (control("up"),)).to_json())
    killed.note("repair-closed", key=HEAL.key)
    stack.files[".gate/journal.jsonl"].text += "not json at all\n"

    assert left_open(box, "run-killed") == [PUT_BACK]
    assert [e["event"] for e in journal_events(box, "run-other")] == ["repair-open"]
    assert left_open(box, "run-never") == []


def test_a_box_without_a_journal_has_nothing_left_open() -> None:
    box = FakeStack().connect()
    assert left_open(box, "run-1") == []
