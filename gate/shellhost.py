"""The far end of the persistent command channel: a small interpreter loop on the box.

gate/channel.py starts one `python3` per box over one SSH channel and sends it this file's
source. It then answers one framed request at a time (stdlib only, any python3):

    request  MARKER SEQ TIMEOUT CMDLEN STDINLEN STDINFLAG\\n <command bytes> <stdin bytes>
    reply    MARKER SEQ STATUS OUTLEN ERRLEN\\n <stdout bytes> <stderr bytes>

STATUS is the exit code, `T` when the command outlived TIMEOUT (its process group was
killed), or `E` when it could not be started (the reason is in stderr). MARKER is a random
token the runner chose for this channel: a reply that does not carry it means the two ends
disagree, and the runner abandons the channel rather than guess.

Each command is its own `/bin/sh -c` in its own session (so a timeout kills all of it and
nothing it starts shares our process group), with stdin closed unless the runner feeds it.
Nothing a command prints reaches the channel except inside a reply's counted bytes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import BinaryIO

KILL_GRACE = 2.0
"""How long to wait for output after killing a timed-out command's group: a process that
left the group may still hold the pipes."""


def run_command(command: str, timeout: float, stdin: bytes | None) -> tuple[bytes, bytes, bytes]:
    """(status, stdout, stderr) of one command; status is an exit code, b"T" or b"E"."""
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return b"E", b"", f"cannot start /bin/sh: {exc}".encode()
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        return (b"T", *kill_group(proc))
    code = proc.returncode
    return str(128 - code if code < 0 else code).encode(), out, err


def kill_group(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Kill the command's whole process group, then take what it printed so far."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
        return b"", b"gate: the command's output was held open by a process outside its group\n"


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the runner closes the channel."""
    marker = requests.readline().strip()
    replies.write(marker + b" 0 ready 0 0\n")
    replies.flush()
    while True:
        header = requests.readline()
        if not header:
            return
        mark, seq, timeout, command_len, stdin_len, fed = header.split()
        if mark != marker:
            sys.stderr.write("gate channel: a request without this channel's marker\n")
            return
        command = requests.read(int(command_len)).decode("utf-8", "surrogateescape")
        stdin = requests.read(int(stdin_len)) if fed == b"1" else None
        status, out, err = run_command(command, float(timeout), stdin)
        replies.write(b"%s %s %s %d %d\n" % (marker, seq, status, len(out), len(err)))
        replies.write(out + err)
        replies.flush()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        serve(sys.stdin.buffer, sys.stdout.buffer)
