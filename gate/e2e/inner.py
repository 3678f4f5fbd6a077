"""The gate run against the branch: `gate ...` as a child process in its own session.

Its own session, so a Ctrl-C at the terminal reaches the wrapper alone; the wrapper
forwards the first signal it records to the child exactly once, lets the child restore
the branch's stack and finish, and only then unwinds itself (gate/signals.py).
"""

from __future__ import annotations

import codecs
import os
import select
import subprocess
import sys
from collections.abc import Callable, Sequence

from gate.signals import SignalGuard

GATE_MAIN = "from gate.cli.script import main; main()"
POLL_S = 0.2


def gate_argv(flags: Sequence[str]) -> list[str]:
    """The `gate` script with these flags, under this interpreter (no PATH lookup)."""
    return [sys.executable, "-c", GATE_MAIN, *flags]


def run_gate(flags: Sequence[str], guard: SignalGuard, echo: Callable[[str], None]) -> int:
    """Run the gate to its end, each line it prints handed to `echo`; its exit code (a
    signal forwarded to it still lets it restore its box and exit)."""
    env = {**os.environ, "NO_COLOR": "1"}
    child = subprocess.Popen(
        gate_argv(flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    assert child.stdout is not None
    fd = child.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    forwarded, pending, open_ = False, "", True
    while open_:
        if guard.received and not forwarded:
            forwarded = True
            child.send_signal(guard.received[0])
        readable, _, _ = select.select([fd], [], [], POLL_S)
        if not readable:
            # ended, and nothing more to read: a grandchild may hold the pipe open
            open_ = child.poll() is None
            continue
        chunk = os.read(fd, 65536)
        open_ = bool(chunk)
        pending = _lines(pending + decoder.decode(chunk, final=not open_), echo, final=not open_)
    _lines(pending + decoder.decode(b"", final=True), echo, final=True)
    child.stdout.close()
    code = child.wait()
    return code if code >= 0 else 128 - code


def _lines(text: str, echo: Callable[[str], None], final: bool) -> str:
    """Echo every whole line; the unfinished one is returned (or echoed when final)."""
    *lines, rest = text.split("\n")
    if final and rest:
        lines, rest = [*lines, rest], ""
    for line in lines:
        echo(line)
    return rest
