"""Commands that stay running on the box while the run lives: the lock's lifelines.

A held command prints a ready line, then blocks reading its stdin. Its stdin is the run's
lifeline: the runner can send it lines (`send`), and when the runner releases it, or dies
for any reason (SIGKILL included), stdin reaches EOF on the box and the command ends.
What it stands for (the box lock, gate/lock.py) decides what that end means.
"""

from __future__ import annotations

import abc
import contextlib
import select
import subprocess
import time

import paramiko

from gate.errormap import LINK_ERRORS
from gate.result import Outcome, Result

READ_CHUNK = 4096
SEND_TIMEOUT = 5.0
EXIT_WAIT = 10.0


class Hold(abc.ABC):
    """A command kept alive on the box until `release()`."""

    @abc.abstractmethod
    def release(self) -> None:
        """Close its stdin and wait (a bounded while) for it to exit."""

    def alive(self) -> bool:
        """Whether it still runs on a standing link (asks nothing of the box).

        A hold that cannot tell says yes; a reconnect (Target.generation) still shows a loss.
        """
        return True

    def send(self, line: str) -> bool:
        """Write one line to its stdin; False if it cannot be reached (or cannot be written)."""
        return False


def _refused(command: str, code: int | None, out: str, err: str, started: float) -> Result:
    outcome = Outcome.FAILED if code not in (None, 255) else Outcome.UNREACHABLE
    return Result(
        command=command,
        outcome=outcome,
        exit_code=code if outcome is Outcome.FAILED else None,
        stdout=out,
        stderr=err,
        duration=time.monotonic() - started,
        reason="" if outcome is Outcome.FAILED else "the held command ended without an exit code",
    )


def first_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].decode(errors="replace").strip()


def _lost(command: str, started: float, exc: BaseException) -> Result:
    duration = time.monotonic() - started
    return Result(command, Outcome.UNREACHABLE, None, "", "", duration, f"link lost: {exc}")


class LocalHold(Hold):
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def send(self, line: str) -> bool:
        stream = self._process.stdin
        if stream is None or stream.closed or not self.alive():
            return False
        try:
            stream.write(line.encode() + b"\n")
            stream.flush()
        except OSError:
            return False
        return True

    def release(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):  # a pipe the command no longer reads
                self._process.stdin.close()
        try:
            self._process.wait(timeout=EXIT_WAIT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def hold_local(command: str, *, ready: str, timeout: float) -> Hold | Result:
    """Start `command` here; a Hold once it prints `ready`, else its Result."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = b""
    deadline = started + timeout
    while b"\n" not in line and time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
        if not readable:
            break
        chunk = process.stdout.read1(READ_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            break
        line += chunk
    if first_line(line) == ready:
        return LocalHold(process)
    try:  # communicate() closes stdin itself (EOF lets a held `cat` end); closing first breaks it
        out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    text = (line + out).decode(errors="replace")
    return _refused(command, process.returncode, text, err.decode(errors="replace"), started)


class ChannelHold(Hold):
    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def alive(self) -> bool:
        """False once the command exited or the channel closed (a dropped link closes it)."""
        return not self._channel.exit_status_ready()

    def send(self, line: str) -> bool:
        if not self.alive():
            return False
        try:
            self._channel.settimeout(SEND_TIMEOUT)
            self._channel.sendall(line.encode() + b"\n")
        except LINK_ERRORS:
            return False
        return True

    def release(self) -> None:
        try:
            self._channel.shutdown_write()
            self._channel.status_event.wait(EXIT_WAIT)  # set at once if the link is gone
        except LINK_ERRORS:
            pass  # the link is already gone
        finally:
            with contextlib.suppress(*LINK_ERRORS):
                self._channel.close()


def hold_channel(
    transport: paramiko.Transport, command: str, *, ready: str, timeout: float
) -> Hold | Result:
    """Start `command` on an exec channel; a Hold once it prints `ready`, else its Result."""
    started = time.monotonic()
    try:
        channel = transport.open_session(timeout=timeout)
    except LINK_ERRORS as exc:
        return _lost(command, started, exc)
    try:
        channel.settimeout(timeout)
        channel.exec_command(command)
        line = b""
        while b"\n" not in line:
            chunk = channel.recv(READ_CHUNK)
            if not chunk:
                break
            line += chunk
    except LINK_ERRORS as exc:
        channel.close()  # never leave a holder waiting on the box to take the lock later
        return _lost(command, started, exc)
    if first_line(line) == ready:
        channel.settimeout(None)
        return ChannelHold(channel)
    status = channel.recv_exit_status()
    code = None if status < 0 else status
    err = channel.recv_stderr(READ_CHUNK).decode(errors="replace")
    channel.close()
    return _refused(command, code, line.decode(errors="replace"), err, started)
