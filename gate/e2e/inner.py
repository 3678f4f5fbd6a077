"""The gate run against the branch: `gate ...` as a child process in its own session.

Its own session, so a Ctrl-C at the terminal reaches the wrapper alone; the wrapper
forwards the first signal it records to the child exactly once, lets the child restore
the branch's stack and finish, and only then unwinds itself (gate/signals.py).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gate.signals import SignalGuard

GATE_MAIN = "from gate.cli.script import main; main()"
POLL_S = 0.2
PR_SET_PDEATHSIG = 1


def gate_argv(flags: Sequence[str]) -> list[str]:
    """The `gate` script with these flags, under this interpreter (no PATH lookup)."""
    return [sys.executable, "-c", GATE_MAIN, *flags]


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The branch gate's environment: plain output, and no CI step summary of its own (the
    wrapper writes the job page's one summary)."""
    env = {k: v for k, v in environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return {**env, "NO_COLOR": "1"}


def run_gate(
    flags: Sequence[str], log: Path, guard: SignalGuard, echo: Callable[[str], None]
) -> int:
    """Run the gate to its end, its output written to the file `log` (never a pipe: a
    wrapper that dies must not take the child's stdout with it, or its restore would die
    on the first line it prints) and each line handed to `echo` as it comes; its exit code
    (a signal forwarded to it still lets it restore its box and exit)."""
    env = child_env(os.environ)
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as sink:
        child = subprocess.Popen(
            gate_argv(flags),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    forwarded, pending, code = False, "", None
    with log.open("rb") as tail:
        while code is None:
            if guard.received and not forwarded:
                forwarded = True
                child.send_signal(guard.received[0])
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = child.wait(timeout=POLL_S)
            pending = _lines(pending + decoder.decode(tail.read()), echo, final=False)
        _lines(pending + decoder.decode(tail.read(), final=True), echo, final=True)
    return code if code >= 0 else 128 - code


def _die_with_parent() -> None:
    """In the child: SIGTERM when the wrapper dies (Linux), so a killed wrapper does not
    leave the branch's gate running on; it restores the branch's stack and ends."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _lines(text: str, echo: Callable[[str], None], final: bool) -> str:
    """Echo every whole line; the unfinished one is returned (or echoed when final)."""
    *lines, rest = text.split("\n")
    if final and rest:
        lines, rest = [*lines, rest], ""
    for line in lines:
        echo(line)
    return rest
