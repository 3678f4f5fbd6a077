"""Which commands the far end runs as boxtool calls in its own process: gate's exact form only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate import shellhost
from gate.shellhost import as_tool_call, run_shell, serve

TOOL = "python3 .gate/boxtool.py"


@pytest.mark.parametrize(
    ("command", "call"),
    [
        (f"cd /srv/stack && {TOOL} config", ("/srv/stack", {}, ["config"])),
        (
            f"cd '/srv/my stack' && GATE_SPEC=.gate/spec-x.json {TOOL} exec 30 './ctl status'",
            ("/srv/my stack", {"GATE_SPEC": ".gate/spec-x.json"}, ["exec", "30", "./ctl status"]),
        ),
    ],
)
def test_gates_own_form_is_a_tool_call(command: str, call: object) -> None:
    assert as_tool_call(command) == call


@pytest.mark.parametrize(
    "command",
    [
        f"cd /srv && {TOOL} config; rm -rf data",  # a shell command after it
        f"cd /srv && {TOOL} config > out.json",  # a redirection
        f"cd /srv && {TOOL} lock run-1 exclusive 30 info",  # holds the lock: its own process
        f"cd /srv && {TOOL} lifeline run-1",
        f"cd /srv && {TOOL} quiesce 5",
        f"cd /srv && {TOOL}",  # no verb
        f"{TOOL} config",  # no dir
        f"cd /srv && X=1 {TOOL} config",  # another variable
        "cd /srv && python3 other.py config",
        f"cd /srv && {TOOL} exec 30 'unterminated",
        "echo hi",
    ],
)
def test_anything_else_keeps_its_shell_meaning(command: str) -> None:
    assert as_tool_call(command) is None


def test_a_request_cut_off_mid_body_is_never_run(tmp_path: Path) -> None:
    """The channel closes after part of a request: the far end ends without running the
    part it got (a cut `touch A; touch B_more` would otherwise touch `B`)."""
    target = tmp_path / "B"
    command = f"touch {target}_more".encode()
    cut = command[: -len(b"_more")]
    requests = io.BytesIO(b"m\nm 1 5.0 %d 0 0\n%s" % (len(command), cut))
    replies = io.BytesIO()
    serve(requests, replies)
    assert replies.getvalue() == b"m 0 ready 0 0\n"  # the greeting, no reply
    assert not target.exists()


def test_stdin_cut_off_is_never_fed_to_a_command(tmp_path: Path) -> None:
    out = tmp_path / "written"
    command = f"cat > {out}".encode()
    requests = io.BytesIO(b"m\nm 1 5.0 %d 40 1\n%s0123456789" % (len(command), command))
    serve(requests, io.BytesIO())
    assert not out.exists()


def test_a_whole_request_runs_and_is_answered() -> None:
    requests = io.BytesIO(b"m\nm 7 5.0 4 0 0\ntrue")
    replies = io.BytesIO()
    serve(requests, replies)
    assert replies.getvalue() == b"m 0 ready 0 0\nm 7 0 0 0\n"


@pytest.mark.parametrize("header", [b"m 1 5.0 4\n", b"x 1 5.0 4 0 0\n", b"garbage\n"])
def test_a_request_without_the_marker_ends_the_far_end_without_running(header: bytes) -> None:
    replies = io.BytesIO()
    serve(io.BytesIO(b"m\n" + header + b"true"), replies)
    assert replies.getvalue() == b"m 0 ready 0 0\n"


def test_a_command_gets_sigpipe_back_at_its_default() -> None:
    """Python ignores SIGPIPE and an ignored signal survives exec: the far end must hand
    each command the default, or `yes | head -n 1` would never die of its pipe."""
    status, out, _err = run_shell("kill -PIPE $$; echo survived", 5.0, None)
    assert (status, out) == (b"141", b"")


def test_a_nul_in_a_command_is_could_not_start_not_the_far_ends_end() -> None:
    status, _out, err = run_shell("echo a\0b", 5.0, None)
    assert status == b"E"
    assert b"cannot start" in err


def test_a_command_never_holds_a_descriptor_the_far_end_inherited() -> None:
    """A descriptor the far end was started with (one sshd or a shim left open) stays out
    of every command: a command holding it could keep a pipe of the runner's open."""
    read_end, write_end = os.pipe()
    command = b"ls /proc/$$/fd"
    far_end = subprocess.run(
        [sys.executable, str(Path(shellhost.__file__))],
        input=b"m\nm 1 5.0 %d 0 0\n%s" % (len(command), command),
        capture_output=True,
        pass_fds=[write_end],
        timeout=30,
        check=True,
    )
    os.close(read_end)
    os.close(write_end)
    header, _, body = far_end.stdout.partition(b"\n")[2].partition(b"\n")
    assert header.split()[2] == b"0", far_end.stdout
    listed = body.split()
    assert b"0" in listed  # the listing is real
    assert str(write_end).encode() not in listed
