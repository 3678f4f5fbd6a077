"""A persistent command channel to one box: one python3 on one SSH channel, commands framed.

A fresh SSH exec channel per command costs a channel round trip and a new login shell on
the box (about 50 ms on loopback). Here one channel stays open for the life of the
connection: gate/shellhost.py runs at its far end and answers framed requests, so a
command costs one write and one read (well under a millisecond on loopback), with the same
semantics as an exec channel: exit code, stdout and stderr apart, stdin closed unless fed,
and a per-command timeout that kills the command's whole process group on the box.

    PersistentChannel(transport)   start the far end; ChannelDown if it does not answer
    .run(command, ...) -> Exchange one command; NotSent if the request never left
    .dead                          why the channel can carry no more commands ("" if it can)

What happens when the channel fails is the target's call (gate/target.py): a request that
never left may go out on a fresh exec channel; a command in flight when the channel died
is could-not-ask, and is never sent again.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from importlib import resources

import paramiko

from gate.errormap import LINK_ERRORS, first_line, lost
from gate.result import Exchange

BOOT = (
    "PYTHONCOERCECLOCALE=0 exec python3 -c "
    "'import sys; r = sys.stdin.buffer; exec(r.read(int(r.readline())))'"
)
"""The command that starts the far end: it reads the host program's length, then the
program, from the channel, so nothing but this line shows in the box's process list.
(No locale coercion: the commands it runs get the login environment as exec would.)"""

START_TIMEOUT = 15.0
REPLY_GRACE = 5.0
"""How long past a command's timeout to wait for its reply: the far end kills the command
at the timeout, then waits up to shellhost.KILL_GRACE for what it printed."""
READ_CHUNK = 64 * 1024


class ChannelDown(Exception):
    """The far end did not start, or stopped answering; the message says why."""


class NotSent(ChannelDown):
    """The request never reached the far end: the command did not run."""


_BROKEN: tuple[type[BaseException], ...] = (*LINK_ERRORS, ChannelDown)
"""What a failed exchange raises: the link's errors, or the far end's."""


def host_source() -> bytes:
    return resources.files("gate").joinpath("shellhost.py").read_bytes()


class PersistentChannel:
    """One long-lived interpreter on the box; one command at a time."""

    def __init__(self, transport: paramiko.Transport, *, start_timeout: float = START_TIMEOUT):
        self.dead = ""
        self._marker = secrets.token_hex(16).encode()
        self._seq = 0
        self._buffer = bytearray()
        try:
            self._channel = transport.open_session(timeout=start_timeout)
        except LINK_ERRORS as exc:
            raise ChannelDown(f"cannot open a channel: {first_line(exc)}") from exc
        try:
            self._start(start_timeout)
        except ChannelDown:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        source = host_source()
        deadline = time.monotonic() + timeout
        try:
            self._channel.exec_command(BOOT)
            self._channel.sendall(b"%d\n%s%s\n" % (len(source), source, self._marker))
            greeting = self._read_line(deadline)
        except _BROKEN as exc:
            raise ChannelDown(f"the far end did not start: {self._why(exc)}") from exc
        if greeting != self._marker + b" 0 ready 0 0":
            raise ChannelDown(f"the far end did not start: {self._why(None)}")

    def run(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        """Run one command on the box; NotSent (nothing ran) if the request could not leave."""
        if not self.alive:
            self.dead = self.dead or f"the far end had ended: {self._why(None)}"
            raise NotSent(self.dead)
        self._seq += 1
        self._send(command, timeout, stdin)
        try:
            return self._reply(timeout, time.monotonic() + timeout + REPLY_GRACE)
        except TimeoutError:
            return self._abandon(f"timeout after {timeout:g}s", f"timeout after {timeout:g}s")
        except _BROKEN as exc:
            if not self._link_alive():
                return self._abandon(lost(exc), "the link dropped")
            return self._abandon(
                f"the command channel ended mid-command: {self._why(exc)}", self._why(exc)
            )

    @property
    def alive(self) -> bool:
        """Whether the far end can still take a request, as far as the link has told us."""
        channel = self._channel
        return not (
            self.dead or channel.closed or channel.eof_received or channel.exit_status_ready()
        )

    def _send(self, command: str, timeout: float, stdin: str) -> None:
        body, data = command.encode("utf-8", "surrogateescape"), stdin.encode()
        header = b"%s %d %r %d %d %d\n" % (
            self._marker,
            self._seq,
            float(timeout),
            len(body),
            len(data),
            int(bool(stdin)),
        )
        try:
            self._channel.settimeout(START_TIMEOUT)
            self._channel.sendall(header + body + data)
        except LINK_ERRORS as exc:
            self.dead = f"a request could not be sent: {first_line(exc)}"
            raise NotSent(self.dead) from exc

    def _reply(self, timeout: float, deadline: float) -> Exchange:
        fields = self._read_line(deadline).split()
        if len(fields) != 5 or fields[:2] != [self._marker, b"%d" % self._seq]:
            raise ChannelDown("a reply without this command's marker")
        status, out_len, err_len = fields[2], int(fields[3]), int(fields[4])
        out = self._read_exact(out_len, deadline).decode("utf-8", "replace")
        err = self._read_exact(err_len, deadline).decode("utf-8", "replace")
        if status == b"T":
            return Exchange(None, out, err, lost=f"timeout after {timeout:g}s")
        if status == b"X":  # a call that overran inside the far end: it is ending now
            self.dead = f"the far end ended after a call outlived {timeout:g}s"
            self.close()
            return Exchange(None, out, err, lost=f"timeout after {timeout:g}s")
        if status == b"E":
            return Exchange(None, out, err, lost=f"could not start the command: {err.strip()}")
        return Exchange(int(status), out, err)

    def _abandon(self, reason: str, why_dead: str) -> Exchange:
        """Give the channel up after a command's fate became unknown: it is could-not-ask."""
        self.dead = f"the command channel was given up: {why_dead}"
        self.close()
        return Exchange(None, "", "", lost=reason)

    def _read_line(self, deadline: float) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _read_exact(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) < size:
            self._fill(deadline)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no reply in time")
        self._channel.settimeout(remaining)
        chunk = self._channel.recv(READ_CHUNK)
        if not chunk:
            raise ChannelDown("the far end closed the channel")
        self._buffer += chunk

    def _link_alive(self) -> bool:
        transport = self._channel.get_transport()
        return transport is not None and transport.is_active()

    def _why(self, exc: BaseException | None) -> str:
        """The reason in one line, with the far end's last words if it printed any."""
        said = ""
        if self._channel.recv_stderr_ready():
            said = self._channel.recv_stderr(READ_CHUNK).decode("utf-8", "replace").strip()
        parts = [first_line(exc) if exc else "", said.splitlines()[-1] if said else ""]
        return "; ".join(p for p in parts if p) or "no reason given"

    def close(self) -> None:
        """Close the channel; on a link that is already gone there is nothing to tell."""
        with contextlib.suppress(*LINK_ERRORS):
            self._channel.close()
