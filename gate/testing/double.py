"""A scripted Target: unit tests drive the real Box and phases with no process and no link.

Modelled on invoke's `MockContext`: a test says which commands it expects and what each
answers; anything else fails the test. Rules match the *inner* command, with Box's
wrapping (`cd DIR && ` and `python3 .gate/boxtool.py exec T 'CMD'`) taken off, so a rule
reads `./ctl status --json` and keeps reading so when the wrapping changes.

    target = ScriptedTarget()
    target.on("./ctl status --json", Reply(stdout='{"services": {}}'))
    target.once(re.compile(r"^\\./ctl apply"), Lost("link reset"))  # newest rule wins
    target.on("cat .gate/state.json", lambda match, stdin: Reply(stdout=state()))
    target.on("flock", Held())            # the lock; or Reply(exit_code=75) for "busy"
    target.drop()                         # the link is gone; the next open() reconnects
    target.verify()                       # no command went unanswered

A command no rule answers raises `UnexpectedCommand`, a BaseException so the engine's own
`except Exception` (its "internal error" net) cannot turn a missing rule into a verdict.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gate.box import BOXTOOL
from gate.errors import Unreachable
from gate.hold import Hold
from gate.result import Exchange, Outcome, Result
from gate.target import SSH_FAILURE_CODE, Target


@dataclass(frozen=True)
class Reply:
    """The command ran and exited with `exit_code`."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class Lost:
    """The link, not the command, ended it: could-not-ask.

    `drops`: the link is down afterwards (a timeout is Lost with drops=False);
    `reconnect`: whether the next `open()` can bring it back.
    """

    reason: str = "link lost (scripted)"
    stdout: str = ""
    drops: bool = True
    reconnect: bool = True


@dataclass(frozen=True)
class Held:
    """For `hold()`: the command printed its ready line and stays running until released."""


Answer = Reply | Lost | Held
Responder = Callable[[re.Match[str], str], Answer]
"""A stateful answer: called with the rule's match over the inner command, and the stdin."""
Response = Answer | Responder
Pattern = str | re.Pattern[str]


class UnexpectedCommand(BaseException):
    """A command no rule answers: the test is wrong or the engine sent something new.

    A BaseException so `except Exception` in the engine cannot swallow it into a verdict.
    """


@dataclass(frozen=True)
class Call:
    """One command as the target saw it."""

    command: str
    """The inner command, Box's wrapping removed: what rules match."""
    raw: str
    """Exactly what was sent."""
    stdin: str = ""
    timeout: float = 0.0
    directory: str | None = None
    """The `cd` directory Box put in front, if any."""
    scrubbed: bool = False
    """Sent through `boxtool exec`: on a real box its output would be scrubbed there."""
    held: bool = False
    """Sent through `hold()` rather than `run()`."""


@dataclass
class Rule:
    """A pattern and its response; `times=None` repeats forever."""

    pattern: re.Pattern[str]
    response: Response
    times: int | None = None
    used: int = 0

    @property
    def live(self) -> bool:
        return self.times is None or self.used < self.times

    def answer(self, command: str, stdin: str) -> Answer | None:
        """The response for `command`, or None when this rule does not apply to it."""
        match = self.pattern.search(command) if self.live else None
        if match is None:
            return None
        self.used += 1
        response = self.response
        return response if isinstance(response, Reply | Lost | Held) else response(match, stdin)


def compile_pattern(pattern: Pattern) -> re.Pattern[str]:
    """A plain string matches as a substring; a compiled regex is searched as it is."""
    return pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))


_WORD = r"(?:[^\s'\"\\]|'[^']*'|\"[^\"]*\")+"
_CD = re.compile(rf"cd ({_WORD}) && ")
_ENV_PAIR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[A-Za-z0-9_.-]+")
_BATCH = re.compile(rf"python3 {re.escape(BOXTOOL)} batch$")
_EXEC = re.compile(rf"(?:GATE_SPEC=\S+ )?python3 {re.escape(BOXTOOL)} exec (\S+) (.+)", re.DOTALL)


def unwrap(raw: str) -> tuple[str, str | None, bool]:
    """(inner command, cd directory or None, sent through boxtool exec) for a sent command."""
    rest, directory = raw, None
    if cd := _CD.match(raw):
        directory, rest = shlex.split(cd.group(1))[0], raw[cd.end() :]
    if wrapped := _EXEC.fullmatch(rest):
        words = shlex.split(wrapped.group(2))
        if words and all(_ENV_PAIR.fullmatch(w) for w in words[1:]):  # VAR=ENV_KEY pairs
            return words[0], directory, True
    return rest, directory, False


class ScriptedHold(Hold):
    """A held command; the test reads `released` (and `link_lost` after a drop)."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.released = False
        self.link_lost = False

    def release(self) -> None:
        self.released = True


class ScriptedTarget(Target):
    """Answers commands from an ordered table of rules; the newest matching rule wins."""

    def __init__(
        self, rules: Iterable[tuple[Pattern, Response]] = (), name: str = "scripted"
    ) -> None:
        self.name = name
        self.rules: list[Rule] = []
        self.calls: list[Call] = []
        self.unmatched: list[Call] = []
        self.holds: list[ScriptedHold] = []
        self.connected = False
        self.reachable = True
        """False: `open()` raises Unreachable, as when the box cannot be reached again."""
        for pattern, response in rules:
            self.on(pattern, response)

    # --- the script ---------------------------------------------------------------------

    def on(self, pattern: Pattern, response: Response, *, times: int | None = None) -> Rule:
        """Answer commands matching `pattern` (`times` times, or always); overrides older rules."""
        rule = Rule(compile_pattern(pattern), response, times)
        self.rules.append(rule)
        return rule

    def once(self, pattern: Pattern, response: Response) -> Rule:
        """Answer the next matching command only, then fall back to older rules."""
        return self.on(pattern, response, times=1)

    def pending(self) -> list[Rule]:
        """Rules with a finite count that were not used up: answers the test expected to give."""
        return [r for r in self.rules if r.times is not None and r.live]

    @property
    def commands(self) -> list[str]:
        """The inner text of every command seen, in order."""
        return [call.command for call in self.calls]

    def unexpected(self, call: Call) -> UnexpectedCommand:
        """Remember `call` as unanswered and return the error to raise (for responders too)."""
        self.unmatched.append(call)
        patterns = ", ".join(repr(r.pattern.pattern) for r in self.rules if r.live) or "none"
        return UnexpectedCommand(f"no rule answers {call.command!r} (live rules: {patterns})")

    def verify(self) -> None:
        """Fail if any command went unanswered, even one whose error the code under test ate."""
        if self.unmatched:
            shown = "\n  ".join(call.command for call in self.unmatched)
            raise AssertionError(f"{len(self.unmatched)} unexpected command(s):\n  {shown}")

    # --- the link -----------------------------------------------------------------------

    def open(self) -> None:
        """(Re)establish the link; each time counts one generation, as SSHTarget does."""
        if self.connected:
            return
        if not self.reachable:
            raise Unreachable(f"cannot connect to {self.name}: unreachable (scripted)")
        self.connected = True
        self.generation += 1

    def close(self) -> None:
        self.connected = False

    def drop(self, *, reconnect: bool = True) -> None:
        """The link dies now; held commands die with it. `reconnect=False`: it stays down."""
        self.connected = False
        self.reachable = reconnect
        for held in self.holds:
            held.link_lost = held.link_lost or not held.released

    # --- the Target I/O -------------------------------------------------------------------

    def _exchange(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        self.open()
        if _BATCH.search(command):
            return self._batch(command, timeout=timeout, stdin=stdin)
        call = self._record(command, timeout=timeout, stdin=stdin, held=False)
        answer = self._answer(call)
        if isinstance(answer, Held):
            raise TypeError(f"Held() answers hold() only, not run({call.command!r})")
        if isinstance(answer, Lost):
            return self._lose(answer)
        return Exchange(answer.exit_code, answer.stdout, answer.stderr)

    def _batch(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        """`boxtool batch`: each read answered by the rules as if it had been sent alone."""
        prefix = command.removesuffix(" batch")
        answers = []
        for argv in json.loads(stdin):
            call = self._record(
                f"{prefix} {shlex.join(argv)}", timeout=timeout, stdin="", held=False
            )
            answer = self._answer(call)
            if isinstance(answer, Lost):
                return self._lose(answer)
            if not isinstance(answer, Reply):
                raise TypeError(f"Held() answers hold() only, not run({call.command!r})")
            answers.append(
                {"exit": answer.exit_code, "stdout": answer.stdout, "stderr": answer.stderr}
            )
        return Exchange(0, json.dumps(answers), "")

    def hold(self, command: str, *, ready: str, timeout: float) -> Hold | Result:
        self.open()
        call = self._record(command, timeout=timeout, stdin="", held=True)
        answer = self._answer(call)
        first = answer.stdout.split("\n", 1)[0].strip() if isinstance(answer, Reply) else None
        if isinstance(answer, Held) or first == ready:
            held = ScriptedHold(call)
            self.holds.append(held)
            return held
        if isinstance(answer, Lost):
            exchange = self._lose(answer)
            return Result(command, Outcome.UNREACHABLE, None, answer.stdout, "", 0.0, exchange.lost)
        assert isinstance(answer, Reply)
        return _refused(command, answer)

    def _record(self, command: str, *, timeout: float, stdin: str, held: bool) -> Call:
        inner, directory, scrubbed = unwrap(command)
        call = Call(inner, command, stdin, timeout, directory, scrubbed, held)
        self.calls.append(call)
        return call

    def _answer(self, call: Call) -> Answer:
        """The newest live rule that matches answers; none is a test failure."""
        for rule in reversed(self.rules):
            answer = rule.answer(call.command, call.stdin)
            if answer is not None:
                return answer
        raise self.unexpected(call)

    def _lose(self, lost: Lost) -> Exchange:
        if lost.drops:
            self.drop(reconnect=lost.reconnect)
        return Exchange(None, lost.stdout, "", lost=lost.reason)


def _refused(command: str, reply: Reply) -> Result:
    """A held command that ended without its ready line, classed as gate/hold.py does."""
    lost = reply.exit_code == SSH_FAILURE_CODE
    return Result(
        command=command,
        outcome=Outcome.UNREACHABLE if lost else Outcome.FAILED,
        exit_code=None if lost else reply.exit_code,
        stdout=reply.stdout,
        stderr=reply.stderr,
        duration=0.0,
        reason="the held command ended without an exit code" if lost else "",
    )
