"""The far end of the persistent command channel: a small interpreter loop on the box.

gate/channel.py starts one `python3` per box over one SSH channel and sends it this file's
source. It then answers one framed request at a time (stdlib only, any python3):

    request  MARKER SEQ TIMEOUT CMDLEN STDINLEN STDINFLAG\\n <command bytes> <stdin bytes>
    reply    MARKER SEQ STATUS OUTLEN ERRLEN\\n <stdout bytes> <stderr bytes>

STATUS is the exit code, `T` when the command outlived TIMEOUT (its process group was
killed), `X` when a boxtool call run in this process outlived it (this far end then ends:
it cannot kill its own thread), or `E` when it could not be started (the reason is in
stderr). A request cut off by a closing channel is never run. MARKER is a random
token the runner chose for this channel: a reply that does not carry it means the two ends
disagree, and the runner abandons the channel rather than guess.

Each command is its own `/bin/sh -c` in its own session (so a timeout kills all of it and
nothing it starts shares our process group), with stdin closed unless the runner feeds it.
Nothing a command prints reaches the channel except inside a reply's counted bytes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import select
import shlex
import signal
import sys
import threading
import time
import traceback
from types import ModuleType
from typing import Any, BinaryIO

READ_CHUNK = 64 * 1024
KILL_GRACE = 2.0
"""How long to wait for output after killing a timed-out command's group: a process that
left the group may still hold the pipes."""


TOOL = ".gate/boxtool.py"
OWN_PROCESS = {"lock", "lifeline", "quiesce"}
"""boxtool verbs that detach, hold the lock or outlive the request: never run in here."""


class Overran(Exception):
    """An in-process call outlived its timeout: this process must end (it cannot be killed)."""


def run_command(command: str, timeout: float, stdin: bytes | None) -> tuple[bytes, bytes, bytes]:
    """(status, stdout, stderr) of one command; status is an exit code, b"T" or b"E"."""
    call = as_tool_call(command)
    if call is not None:
        return run_tool(*call, timeout=timeout, stdin=stdin)
    return run_shell(command, timeout, stdin)


def as_tool_call(command: str) -> tuple[str, dict[str, str], list[str]] | None:
    """(dir, env, argv) when `command` is exactly gate's boxtool call as gate/box.py writes
    it (`cd DIR && [GATE_SPEC=S ]python3 .gate/boxtool.py ARGS`), else None: a command
    that only looks like one (a `; rm` after it, say) keeps its shell meaning."""
    if TOOL not in command:  # most commands: no shlex pass (~10-30 us each)
        return None
    head, sep, rest = command.partition(" && ")
    try:
        cd, words = shlex.split(head), shlex.split(rest)
    except ValueError:
        return None
    env = {}
    if words and words[0].startswith("GATE_SPEC="):
        env["GATE_SPEC"] = words.pop(0).partition("=")[2]
    if not (sep and len(cd) == 2 and cd[0] == "cd" and words[:2] == ["python3", TOOL]):
        return None
    argv = words[2:]
    spec = f"GATE_SPEC={shlex.quote(env['GATE_SPEC'])} " if env else ""
    exact = f"cd {shlex.quote(cd[1])} && {spec}python3 {TOOL} {shlex.join(argv)}"
    if exact.rstrip() != command or not argv or argv[0] in OWN_PROCESS:
        return None
    return cd[1], env, argv


_tools: dict[tuple[str, int, int], ModuleType] = {}


def load_tool(directory: str) -> ModuleType:
    """The box's boxtool, imported once per version of the file (gate uploads it each run)."""
    path = os.path.realpath(os.path.join(directory, TOOL))
    facts = os.stat(path)
    key = (path, facts.st_mtime_ns, facts.st_size)
    if key not in _tools:
        spec = importlib.util.spec_from_file_location("gate_boxtool", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _tools[key] = module
    return _tools[key]


def run_tool(
    directory: str, env: dict[str, str], argv: list[str], *, timeout: float, stdin: bytes | None
) -> tuple[bytes, bytes, bytes]:
    """boxtool ARGV in this process, as a `python3 .gate/boxtool.py` run would answer (its
    exit code and both streams) without a new interpreter's start (~0.1 s of CPU each)."""
    answer: dict[str, Any] = {}
    worker = threading.Thread(
        target=call_tool, args=(directory, env, argv, stdin or b"", answer), daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise Overran(f"boxtool {argv[0]} outlived its {timeout:g}s in the far end")
    if "status" not in answer:
        return b"1", b"", b"gate: the boxtool call ended without an answer\n"
    return answer["status"], answer["out"], answer["err"]


def call_tool(
    directory: str, env: dict[str, str], argv: list[str], stdin: bytes, answer: dict[str, Any]
) -> None:
    """One boxtool call with this process's dir, environment, umask and stdin lent to it
    and given back; whatever it raises is its exit 1, never this process's end."""
    out, err = io.StringIO(), io.StringIO()
    before, saved = os.getcwd(), {k: os.environ.get(k) for k in env}
    mask = os.umask(0o022)
    os.umask(mask)
    fed = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    code = 1
    try:
        os.chdir(directory)
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = invoke(load_tool("."), argv, fed)
    except OSError as exc:  # no such dir, no boxtool: what the shell would have said
        err.write(f"gate: cannot run boxtool in {directory}: {exc}\n")
        code = 127
    except BaseException:  # a boxtool this python cannot load, or one that exits on import
        err.write(traceback.format_exc())
    finally:
        os.chdir(before)
        os.umask(mask)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        answer.update(
            status=str(code % 256).encode(),
            out=out.getvalue().encode("utf-8", "surrogateescape"),
            err=err.getvalue().encode("utf-8", "backslashreplace"),
        )


def invoke(tool: ModuleType, argv: list[str], stdin: io.TextIOWrapper) -> int:
    """boxtool.main(argv) with this stdin; its return or exit code (as a process would
    exit: modulo 256), 1 with a traceback."""
    real_stdin, sys.stdin = sys.stdin, stdin
    try:
        code = tool.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdin = real_stdin
    return int(code) % 256


def run_shell(command: str, timeout: float, stdin: bytes | None) -> tuple[bytes, bytes, bytes]:
    """The command under /bin/sh in its own session; status T when its group was killed."""
    try:
        proc = Spawned(command, stdin)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte, which no argv can carry
        return b"E", b"", f"cannot start /bin/sh: {exc}".encode()
    if proc.pump(time.monotonic() + timeout):
        return str(proc.reap()).encode(), proc.out(), proc.err()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    held = not proc.pump(time.monotonic() + KILL_GRACE)
    proc.close()
    proc.reap()
    note = b"gate: the command's output was held open by a process outside its group\n"
    return b"T", proc.out(), proc.err() + (note if held else b"")


RESTORED_SIGNALS = [getattr(signal, s) for s in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, s)]
"""Signals this interpreter ignores that a command gets back at their default (what Popen's
restore_signals does): an ignored SIGPIPE would stay ignored in every command's shell."""


class Spawned:
    """`/bin/sh -c COMMAND` in its own session, as Popen(start_new_session=True) would start
    it but through one posix_spawn (vfork and exec, none of Popen's Python layers: ~0.1 ms a
    command); its stdin, stdout and stderr pumped by one poll loop until it has ended and
    its pipes are drained, or a deadline. Every descriptor of this process is close-on-exec
    (serve marks the inherited ones), so the command gets only its three."""

    def __init__(self, command: str, stdin: bytes | None) -> None:
        self.pending = memoryview(stdin or b"")
        self.chunks: dict[int, list[bytes]] = {1: [], 2: []}
        self.status: int | None = None
        out, err = os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)
        feed = os.pipe2(os.O_CLOEXEC) if stdin is not None else None
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, out[1], 1),
            (os.POSIX_SPAWN_DUP2, err[1], 2),
            (os.POSIX_SPAWN_DUP2, feed[0], 0)
            if feed
            else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),  # as Popen's DEVNULL
        ]
        try:
            self.pid = os.posix_spawn(
                "/bin/sh",
                ["/bin/sh", "-c", command],
                os.environ,
                file_actions=actions,
                setsid=True,
                setsigdef=RESTORED_SIGNALS,
            )
        except BaseException:
            for fd in (out[0], err[0], *(feed[1:] if feed else ())):
                os.close(fd)
            raise
        finally:
            for fd in (out[1], err[1], *(feed[:1] if feed else ())):
                os.close(fd)
        self.fds = {out[0]: 1, err[0]: 2}
        if feed and self.pending:
            self.fds[feed[1]] = 0
        elif feed:
            os.close(feed[1])
        self.exit_fd = pidfd(self.pid)
        if self.exit_fd is not None:
            self.fds[self.exit_fd] = -1
        self.poller = select.poll()
        for fd, role in self.fds.items():
            self.poller.register(fd, select.POLLOUT if role == 0 else select.POLLIN)

    def pump(self, deadline: float) -> bool:
        """Move data until the command has exited with its pipes closed; False at the deadline."""
        while self.fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for fd, _events in self.poller.poll(remaining * 1000):
                self.step(fd)
        while self.exit_fd is None and not self.reaped(os.WNOHANG):  # no pidfd: poll the exit
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)  # sleep-ok: without a pidfd an exit has no fd to wait on
        return True

    def step(self, fd: int) -> None:
        role = self.fds[fd]
        if role == 0:
            self.feed(fd)
        elif role > 0 and (data := os.read(fd, READ_CHUNK)):
            self.chunks[role].append(data)
        else:  # a stream's end, or the command's exit (its pidfd)
            self.drop(fd)

    def feed(self, fd: int) -> None:
        """Write what the pipe takes without blocking; a command that stops reading is fine."""
        try:
            written = os.write(fd, self.pending[: select.PIPE_BUF])
        except BrokenPipeError:
            written = len(self.pending)
        self.pending = self.pending[written:]
        if not self.pending:
            self.drop(fd)

    def drop(self, fd: int) -> None:
        self.poller.unregister(fd)
        del self.fds[fd]
        os.close(fd)

    def close(self) -> None:
        for fd in list(self.fds):
            self.drop(fd)

    def reaped(self, flags: int = 0) -> bool:
        """Whether the command's exit status is in (waiting for it unless WNOHANG)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                signalled = os.WIFSIGNALED(status)
                self.status = 128 + os.WTERMSIG(status) if signalled else os.WEXITSTATUS(status)
        return self.status is not None

    def reap(self) -> int:
        """The exit code, 128+N for a command killed by signal N (as a shell reports it)."""
        self.reaped()
        assert self.status is not None
        return self.status

    def out(self) -> bytes:
        return b"".join(self.chunks[1])

    def err(self) -> bytes:
        return b"".join(self.chunks[2])


def pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def close_on_exec() -> None:
    """Mark the descriptors this process inherited (beyond 0-2) close-on-exec: a command must
    not hold them (posix_spawn, unlike Popen(close_fds=True), closes only those)."""
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if int(name) > 2:
                    os.set_inheritable(int(name), False)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until the runner closes the channel."""
    os.environ.pop("PYTHONCOERCECLOCALE", None)  # set for us only: commands get the login env
    close_on_exec()
    marker = requests.readline().strip()
    replies.write(marker + b" 0 ready 0 0\n")
    replies.flush()
    while True:
        header = requests.readline()
        if not header:
            return
        fields = header.split()
        if len(fields) != 6 or fields[0] != marker:
            sys.stderr.write("gate channel: a request without this channel's marker\n")
            return
        _mark, seq, timeout, command_len, stdin_len, fed = fields
        body = requests.read(int(command_len))
        stdin = requests.read(int(stdin_len)) if fed == b"1" else None
        if len(body) != int(command_len) or (stdin is not None and len(stdin) != int(stdin_len)):
            return  # the channel closed mid-request: a cut-off command must never run
        try:
            status, out, err = run_command(
                body.decode("utf-8", "surrogateescape"), float(timeout), stdin
            )
        except Overran as exc:  # reply, then end: the runner opens a fresh far end
            reply(replies, marker, seq, b"X", b"", f"gate: {exc}\n".encode())
            return
        reply(replies, marker, seq, status, out, err)


def reply(
    replies: BinaryIO, marker: bytes, seq: bytes, status: bytes, out: bytes, err: bytes
) -> None:
    replies.write(b"%s %s %s %d %d\n" % (marker, seq, status, len(out), len(err)))
    replies.write(out + err)
    replies.flush()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        serve(sys.stdin.buffer, sys.stdout.buffer)
