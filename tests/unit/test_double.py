"""The scripted Target double: matching, unwrapping, strictness, the link, and holds."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import pytest

from gate.box import Box, Event
from gate.contract import Secrets, StackContract
from gate.errors import Unreachable
from gate.hold import Hold
from gate.inventory import HostSpec
from gate.result import Outcome, Result
from gate.target import quote
from gate.testing.double import (
    Held,
    Lost,
    Reply,
    ScriptedHold,
    ScriptedTarget,
    UnexpectedCommand,
    unwrap,
)

DIR = "/srv/my stack"
CONTRACT = StackContract(
    name="double",
    expected_services=lambda _cfg: frozenset({"svc"}),
    control="./stackctl",
    secrets=Secrets(env_keys=("*_TOKEN",)),
)


@pytest.fixture
def target() -> Iterator[ScriptedTarget]:
    """A double that fails the test at teardown if any command went unanswered."""
    double = ScriptedTarget()
    yield double
    double.verify()


def make_box(target: ScriptedTarget, events: list[Event] | None = None) -> Box:
    target.open()
    sink: list[Event] = [] if events is None else events
    return Box(target, HostSpec(name="t", host="t.invalid", dir=DIR), CONTRACT, sink.append)


def install(target: ScriptedTarget, box: Box) -> None:
    """Answer the three bookkeeping commands of install_tool, then run it."""
    target.on("mkdir -p .gate", Reply())
    target.on(re.compile(r"^umask 077 && cat > "), Reply())
    box.install_tool()


def test_unwrap_takes_off_cd_and_boxtool_exec_with_quoting_kept() -> None:
    inner = "echo 'it''s' && ./stackctl status --json"
    sent = f"cd {quote(DIR)} && python3 .gate/boxtool.py exec 30 {quote(inner)}"
    assert unwrap(sent) == (inner, DIR, True)


def test_unwrap_leaves_a_command_without_wrapping_alone() -> None:
    assert unwrap("test -d /srv && echo yes || echo no") == (
        "test -d /srv && echo yes || echo no",
        None,
        False,
    )
    assert unwrap("cd /srv && python3 .gate/boxtool.py fingerprint") == (
        "python3 .gate/boxtool.py fingerprint",
        "/srv",
        False,
    )


def test_a_rule_written_for_the_inner_command_answers_box_wrapped_commands(
    target: ScriptedTarget,
) -> None:
    box = make_box(target)
    install(target, box)
    target.on("./stackctl status --json", Reply(stdout='{"ok": 1}'))
    result = box.control("status --json")
    assert result.ok and result.stdout == '{"ok": 1}'
    call = target.calls[-1]
    assert call.command == "./stackctl status --json"
    assert call.raw.startswith(
        f"cd {quote(DIR)} && GATE_SPEC=.gate/spec.json python3 .gate/boxtool.py exec "
    )
    assert call.directory == DIR and call.scrubbed


def test_calls_keep_order_and_stdin_and_the_stdin_never_reaches_the_command_line(
    target: ScriptedTarget,
) -> None:
    box = make_box(target)
    install(target, box)
    assert target.commands[0] == "mkdir -p .gate && chmod 700 .gate"
    boxtool_write = target.calls[1]
    assert "def main" in boxtool_write.stdin and "def main" not in boxtool_write.raw
    assert [c.scrubbed for c in target.calls] == [False, False, False]


def test_a_regex_rule_hands_its_match_and_stdin_to_a_responder(target: ScriptedTarget) -> None:
    seen: list[tuple[str, str]] = []

    def respond(match: re.Match[str], stdin: str) -> Reply:
        seen.append((match["verb"], stdin))
        return Reply(stdout=match["verb"].upper())

    target.on(re.compile(r"^GATE_SPEC=\S+ python3 \S+ (?P<verb>\w+)"), respond)
    result = make_box(target).tool("render", "a", "b", stdin='{"x": 1}')
    assert result.stdout == "RENDER"
    assert seen == [("render", '{"x": 1}')]


def test_an_unmatched_command_raises_past_except_exception_and_verify_fails() -> None:
    double = ScriptedTarget([("./stackctl status", Reply())])
    assert not issubclass(UnexpectedCommand, Exception)
    with pytest.raises(UnexpectedCommand, match="rm -rf data"):
        try:
            double.run("rm -rf data", timeout=5)
        except Exception:  # the engine's internal-error net must not catch it
            pytest.fail("UnexpectedCommand was caught as an Exception")
    with pytest.raises(AssertionError, match="1 unexpected command"):
        double.verify()


def test_an_unmatched_command_is_remembered_even_when_the_code_under_test_eats_it() -> None:
    double = ScriptedTarget()
    with contextlib.suppress(BaseException):  # e.g. a careless `except BaseException`
        double.run("reboot", timeout=5)
    assert [call.command for call in double.unmatched] == ["reboot"]
    with pytest.raises(AssertionError, match="reboot"):
        double.verify()


def test_a_plain_pattern_is_a_substring_not_a_regex(target: ScriptedTarget) -> None:
    target.on("a.c", Reply(stdout="hit"))
    assert target.run("echo a.c", timeout=5).stdout == "hit"
    with pytest.raises(UnexpectedCommand):
        target.run("echo abc", timeout=5)
    target.unmatched.clear()


def test_once_answers_once_then_the_older_rule_answers_again(target: ScriptedTarget) -> None:
    target.on("status", Reply(stdout="steady"))
    target.once("status", Reply(1, stdout="blip"))
    outputs = [target.run("./stackctl status", timeout=5).stdout for _ in range(3)]
    assert outputs == ["blip", "steady", "steady"]
    assert target.pending() == []


def test_times_counts_down_and_then_the_command_is_unexpected() -> None:
    double = ScriptedTarget()
    double.on("apply", Reply(stdout="ok"), times=2)
    assert [double.run("apply", timeout=5).stdout for _ in range(2)] == ["ok", "ok"]
    with pytest.raises(UnexpectedCommand):
        double.run("apply", timeout=5)


def test_pending_names_one_shot_rules_the_code_never_used(target: ScriptedTarget) -> None:
    rule = target.once("doctor", Reply())
    assert target.pending() == [rule]
    target.run("./stackctl doctor", timeout=5)
    assert target.pending() == []


def test_a_newer_rule_overrides_an_older_one(target: ScriptedTarget) -> None:
    target.on("status", Reply(stdout="old"))
    target.on("status", Reply(stdout="new"))
    assert target.run("status", timeout=5).stdout == "new"


def test_lost_is_could_not_ask_through_target_run_and_drops_the_link(
    target: ScriptedTarget,
) -> None:
    target.open()
    target.on("status", Lost("connection reset", stdout="partial"))
    result = target.run("./stackctl status", timeout=5)
    assert result.outcome is Outcome.UNREACHABLE
    assert result.exit_code is None and result.reason == "connection reset"
    assert result.stdout == "partial"
    assert not target.connected


def test_exit_255_is_could_not_ask_and_other_codes_are_failures(target: ScriptedTarget) -> None:
    target.on("ssh-ish", Reply(255))
    target.on("broken", Reply(3, stderr="no"))
    assert target.run("ssh-ish", timeout=5).outcome is Outcome.UNREACHABLE
    failed = target.run("broken", timeout=5)
    assert failed.outcome is Outcome.FAILED and failed.exit_code == 3


def test_a_lost_command_that_keeps_the_link_is_a_timeout(target: ScriptedTarget) -> None:
    target.open()
    target.on("sleep", Lost("timeout after 5s", drops=False))
    assert target.run("sleep 60", timeout=5).reason == "timeout after 5s"
    assert target.connected and target.generation == 1


def test_a_dropped_link_is_reestablished_before_the_next_box_command(
    target: ScriptedTarget,
) -> None:
    box = make_box(target)
    reconnects: list[int] = []
    box.reconnected = lambda: reconnects.append(target.generation)
    target.on("status", Reply())
    box.run("./stackctl status", scrub=False)
    target.drop()
    assert not target.connected
    box.run("./stackctl status", scrub=False)
    assert target.generation == 2 and reconnects == [2]


def test_a_link_that_stays_down_makes_the_box_raise_unreachable(target: ScriptedTarget) -> None:
    box = make_box(target)
    target.drop(reconnect=False)
    with pytest.raises(Unreachable, match="unreachable"):
        box.run("./stackctl status")
    assert target.calls == []
    target.reachable = True
    target.on("status", Reply())
    assert box.run("./stackctl status", scrub=False).ok


def test_hold_returns_a_held_object_whose_release_is_recorded(target: ScriptedTarget) -> None:
    target.on("flock", Held())
    held = target.hold(f"cd {quote(DIR)} && exec flock -n .gate/lock cat", ready="held", timeout=5)
    assert isinstance(held, ScriptedHold) and isinstance(held, Hold)
    assert target.calls[0].held and target.calls[0].command.startswith("exec flock")
    assert not held.released
    held.release()
    assert held.released and target.holds == [held]


def test_hold_counts_a_reply_that_prints_the_ready_line_as_held(target: ScriptedTarget) -> None:
    target.on("flock", Reply(stdout="held\n"))
    assert isinstance(target.hold("flock x", ready="held", timeout=5), ScriptedHold)


def test_hold_answered_by_an_exit_code_is_a_failed_result(target: ScriptedTarget) -> None:
    target.on("flock", Reply(75, stderr="busy"))
    refused = target.hold("flock x", ready="held", timeout=5)
    assert isinstance(refused, Result)
    assert refused.outcome is Outcome.FAILED and refused.exit_code == 75


def test_hold_answered_by_lost_is_could_not_ask(target: ScriptedTarget) -> None:
    target.on("flock", Lost("reset"))
    refused = target.hold("flock x", ready="held", timeout=5)
    assert isinstance(refused, Result)
    assert refused.outcome is Outcome.UNREACHABLE and refused.reason == "reset"


def test_a_drop_marks_live_holds_as_lost_with_the_link(target: ScriptedTarget) -> None:
    target.on("flock", Held())
    kept = target.hold("flock a", ready="held", timeout=5)
    released = target.hold("flock b", ready="held", timeout=5)
    assert isinstance(kept, ScriptedHold) and isinstance(released, ScriptedHold)
    released.release()
    target.drop()
    assert kept.link_lost and not released.link_lost


def test_held_is_refused_as_an_answer_to_run(target: ScriptedTarget) -> None:
    target.on("flock", Held())
    with pytest.raises(TypeError, match="hold"):
        target.run("flock x", timeout=5)
