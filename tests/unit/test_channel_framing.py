"""The persistent channel's framing against a far end that answers garbage (no SSH needed).

A scripted channel stands in for paramiko's: it learns the marker from the start-up bytes
the runner sends, then answers each request with what the test scripted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gate.channel import ChannelDown, NotSent, PersistentChannel
from gate.result import Exchange

Answer = Callable[[bytes, int], bytes]
"""(marker, sequence number) -> the bytes the far end sends back."""


def ok(out: bytes = b"hi\n", err: bytes = b"") -> Answer:
    return lambda marker, seq: b"%s %d 0 %d %d\n%s%s" % (marker, seq, len(out), len(err), out, err)


class ScriptedChannel:
    """Just enough of paramiko.Channel for PersistentChannel."""

    def __init__(self, greeting: bool, answers: list[Answer]) -> None:
        self.greeting, self.answers = greeting, answers
        self.marker = b""
        self.pending = b""
        self.sent: list[bytes] = []
        self.closed = self.eof_received = False
        self.seq = 0

    def exec_command(self, command: str) -> None:
        self.command = command

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)
        if not self.marker:
            self.marker = data.rsplit(b"\n", 2)[-2]
            if self.greeting:
                self.pending += self.marker + b" 0 ready 0 0\n"
        elif self.answers:
            self.seq += 1
            self.pending += self.answers.pop(0)(self.marker, self.seq)

    def settimeout(self, timeout: float) -> None:
        pass

    def recv(self, size: int) -> bytes:
        if not self.pending and not self.eof_received:
            raise TimeoutError("nothing more")
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def recv_stderr_ready(self) -> bool:
        return False

    def exit_status_ready(self) -> bool:
        return False

    def get_transport(self) -> Any:
        return self

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class ScriptedTransport:
    def __init__(self, channel: ScriptedChannel) -> None:
        self.channel = channel

    def open_session(self, timeout: float) -> ScriptedChannel:
        return self.channel


def channel_with(*answers: Answer, greeting: bool = True) -> tuple[PersistentChannel, Any]:
    fake = ScriptedChannel(greeting, list(answers))
    return PersistentChannel(ScriptedTransport(fake), start_timeout=0.2), fake  # type: ignore[arg-type]


def run(channel: PersistentChannel, stdin: str = "") -> Exchange:
    return channel.run("echo hi", timeout=0.1, stdin=stdin)


def test_a_well_framed_reply_is_the_exchange() -> None:
    channel, fake = channel_with(ok(b"out\n", b"err\n"))
    assert run(channel) == Exchange(0, "out\n", "err\n")
    assert fake.sent[1].split(b"\n", 1)[1] == b"echo hi"  # the command, not a shell line
    assert not channel.dead


def test_the_request_says_whether_stdin_is_fed() -> None:
    channel, fake = channel_with(ok(), ok())
    run(channel)
    run(channel, stdin="data")
    closed, fed = (sent.split(b"\n", 1)[0].split()[-1] for sent in fake.sent[1:])
    assert (closed, fed) == (b"0", b"1")
    assert fake.sent[2].endswith(b"echo hidata")


def test_a_far_end_that_does_not_greet_is_down_and_closed() -> None:
    fake = ScriptedChannel(greeting=False, answers=[])
    with pytest.raises(ChannelDown, match="did not start"):
        PersistentChannel(ScriptedTransport(fake), start_timeout=0.2)  # type: ignore[arg-type]
    assert fake.closed


@pytest.mark.parametrize(
    "answer",
    [
        lambda m, seq: b"%s %d 0 2 0\nhi" % (b"f" * 32, seq),  # another marker
        lambda m, seq: b"%s %d 0 2 0\nhi" % (m, seq + 1),  # another command's reply
        lambda m, seq: b"garbage\n",
        lambda m, seq: b"%s %d 0 9 0\nhi" % (m, seq),  # fewer bytes than it announced
    ],
    ids=["foreign-marker", "wrong-sequence", "garbage", "short-body"],
)
def test_a_reply_that_does_not_fit_is_could_not_ask_and_the_channel_is_given_up(
    answer: Answer,
) -> None:
    channel, fake = channel_with(answer, ok())
    exchange = run(channel)
    assert exchange.exit_code is None and exchange.lost, exchange
    assert channel.dead and fake.closed
    with pytest.raises(NotSent):
        run(channel)


def test_a_timed_out_command_keeps_what_it_printed_and_the_channel() -> None:
    channel, _ = channel_with(lambda m, seq: b"%s %d T 6 0\nbegun\n" % (m, seq), ok())
    assert run(channel) == Exchange(None, "begun\n", "", lost="timeout after 0.1s")
    assert not channel.dead and run(channel).exit_code == 0


def test_a_command_that_could_not_start_is_could_not_ask_with_the_reason() -> None:
    channel, _ = channel_with(lambda m, seq: b"%s %d E 0 9\nno shell!" % (m, seq))
    exchange = run(channel)
    assert exchange.lost == "could not start the command: no shell!"


def test_a_closed_far_end_refuses_before_sending() -> None:
    channel, fake = channel_with(ok())
    fake.eof_received = True
    with pytest.raises(NotSent, match="had ended"):
        run(channel)
    assert len(fake.sent) == 1  # only the start-up bytes: the command never left
