"""The persistent command channel on a real sshd: what only a long-lived far end can get wrong.

The behaviour every transport shares (streams, exit codes, stdin, timeouts, encodings) is
tests/integration/test_target.py, run over the persistent channel and over exec alike.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gate.channel
from gate.box import BOXTOOL
from gate.result import Outcome
from gate.target import MAX_CHANNEL_DEATHS, SSHTarget, quote
from gate.testing.sshd import Sshd


@pytest.fixture
def notices() -> list[str]:
    return []


@pytest.fixture
def remote(sshd: Sshd, tmp_path: Path, notices: list[str]) -> Iterator[SSHTarget]:
    target = SSHTarget(
        sshd.host,
        port=sshd.port,
        user=sshd.user,
        identity=sshd.identity,
        known_hosts=sshd.known_hosts,
        user_known_hosts=tmp_path / "none",
    )
    target.notice = notices.append
    with target:
        yield target


def parent(remote: SSHTarget) -> tuple[int, str]:
    """The pid and name of the process that started the command's shell."""
    result = remote.run("echo $PPID $(cat /proc/$PPID/comm)", timeout=10)
    assert result.ok, result
    pid, name = result.stdout.split()
    return int(pid), name


def far_end(remote: SSHTarget) -> int:
    """The persistent channel's far end: a python3 that outlives the commands it runs."""
    pid, name = parent(remote)
    assert name == "python3", f"the command ran under {name}, not the far end"
    return pid


def wait_until_gone(remote: SSHTarget) -> None:
    """Wait for the link to tell the runner that the far end ended (a real signal)."""
    channel = remote.command_channel
    assert channel is not None
    end = time.monotonic() + 10
    while channel.alive:
        assert time.monotonic() < end, "the runner never heard the far end end"
        time.sleep(0.01)


def test_commands_share_one_far_end_over_persistent_and_not_over_exec(
    remote: SSHTarget, sshd: Sshd, tmp_path: Path
) -> None:
    assert far_end(remote) == far_end(remote) == far_end(remote)
    exec_target = SSHTarget(
        sshd.host,
        port=sshd.port,
        user=sshd.user,
        identity=sshd.identity,
        known_hosts=sshd.known_hosts,
        user_known_hosts=tmp_path / "none",
        persistent=False,
    )
    with exec_target:
        assert parent(exec_target)[1] == "sshd"


def test_each_command_leads_its_own_session_with_stdin_closed(remote: SSHTarget) -> None:
    result = remote.run("ps -o pid=,pgid=,sid= -p $$; readlink /proc/$$/fd/0", timeout=10)
    ids, stdin = result.stdout.splitlines()
    pid, pgid, sid = ids.split()
    assert pid == pgid == sid
    assert stdin == "/dev/null"
    fed = remote.run("readlink /proc/$$/fd/0; cat", timeout=10, stdin="fed")
    assert fed.stdout.startswith("pipe:") and fed.stdout.endswith("fed")


def test_no_state_leaks_from_one_command_to_the_next(remote: SSHTarget) -> None:
    home = remote.run("pwd", timeout=10).stdout
    assert remote.run("cd /tmp && export LEAK=1 && umask 000 && pwd", timeout=10).ok
    after = remote.run("pwd; echo ${LEAK:-unset}; umask", timeout=10).stdout.splitlines()
    assert after[:2] == [home.strip(), "unset"]
    assert after[2] != "0000"


def test_large_output_and_both_streams_arrive_whole(remote: SSHTarget) -> None:
    result = remote.run("head -c 3000000 /dev/zero | tr '\\0' a; echo end >&2", timeout=30)
    assert result.ok and result.stdout == "a" * 3_000_000 and result.stderr == "end\n"


def test_far_end_killed_mid_command_is_could_not_ask_and_a_new_one_serves(
    remote: SSHTarget, notices: list[str]
) -> None:
    first = far_end(remote)
    result = remote.run("kill -9 $PPID; sleep 5; echo never", timeout=10)
    assert result.outcome is Outcome.UNREACHABLE and result.exit_code is None
    assert "ended mid-command" in result.reason, result.reason
    assert result.duration < 5, "the runner waited for the orphan instead of the far end"
    assert len(notices) == 1 and "a new one opens for the next command" in notices[0]
    assert far_end(remote) != first
    assert remote.persistent


def test_far_end_gone_between_commands_sends_the_next_one_on_a_fresh_channel(
    remote: SSHTarget, notices: list[str], tmp_path: Path
) -> None:
    """A request that never left may go out elsewhere: nothing ran, nothing runs twice."""
    os.kill(far_end(remote), signal.SIGKILL)
    wait_until_gone(remote)
    marker = tmp_path / "ran"
    result = remote.run(f"echo once >> {marker}; echo $PPID", timeout=10)
    assert result.ok, result
    assert marker.read_text() == "once\n"
    assert len(notices) == 1 and "had ended" in notices[0], notices
    assert remote.persistent and far_end(remote) == far_end(remote)


def test_a_far_end_that_dies_again_and_again_leaves_the_run_on_exec(
    remote: SSHTarget, notices: list[str]
) -> None:
    for _ in range(MAX_CHANNEL_DEATHS):
        assert remote.run("kill -9 $PPID; sleep 5", timeout=10).outcome is Outcome.UNREACHABLE
    assert not remote.persistent
    assert "each command now gets a fresh SSH channel" in notices[-1]
    assert len(notices) == MAX_CHANNEL_DEATHS
    assert parent(remote)[1] == "sshd"  # exec: sshd starts each command's shell


def test_a_far_end_that_cannot_start_leaves_exec_with_one_notice(
    remote: SSHTarget, notices: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate.channel, "BOOT", "echo 'python3: not found' >&2; exit 127")
    assert remote.run("echo works", timeout=10).stdout == "works\n"
    assert remote.run("echo still", timeout=10).stdout == "still\n"
    assert not remote.persistent
    assert len(notices) == 1
    assert "no persistent channel" in notices[0] and "python3: not found" in notices[0]


def test_a_reconnect_opens_a_new_far_end_without_a_notice(
    remote: SSHTarget, notices: list[str]
) -> None:
    first = far_end(remote)
    remote.close()
    assert far_end(remote) != first
    assert notices == []


# --- gate's own boxtool calls run inside the far end ------------------------------------

FAKE_TOOL = """
import json, os, sys, time
def main(argv):
    if argv[0] == "crash":
        raise RuntimeError("boom")
    if argv[0] == "slow":
        time.sleep(float(argv[1]))
    print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "argv": argv,
                      "spec": os.environ.get("GATE_SPEC"), "stdin": sys.stdin.read()}))
    return 3
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    tool = tmp_path / "stack dir" / ".gate" / "boxtool.py"
    tool.parent.mkdir(parents=True)
    tool.write_text(FAKE_TOOL)
    return tool.parent.parent


def tool_call(stack_dir: Path, *args: str) -> str:
    """The command exactly as gate/box.py writes a boxtool call."""
    return f"cd {quote(str(stack_dir))} && GATE_SPEC=.gate/spec-1.json python3 {BOXTOOL} " + (
        quote(*args)
    )


def test_a_boxtool_call_runs_in_the_far_end_with_its_dir_env_and_stdin(
    remote: SSHTarget, stack_dir: Path
) -> None:
    home = remote.run("pwd", timeout=10).stdout.strip()
    result = remote.run(tool_call(stack_dir, "show", "a b", "$HOME"), timeout=10, stdin="fed")
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 3)
    seen = json.loads(result.stdout)
    assert seen["pid"] == far_end(remote)  # no new interpreter
    assert (seen["cwd"], seen["argv"]) == (str(stack_dir), ["show", "a b", "$HOME"])
    assert (seen["spec"], seen["stdin"]) == (".gate/spec-1.json", "fed")
    after = remote.run("pwd; echo ${GATE_SPEC:-unset}", timeout=10).stdout.split()
    assert after == [home, "unset"]  # the far end's own dir and environment are back


def test_a_command_that_only_looks_like_a_boxtool_call_keeps_its_shell_meaning(
    remote: SSHTarget, stack_dir: Path
) -> None:
    result = remote.run(tool_call(stack_dir, "show") + "; echo shell-ran", timeout=10)
    assert result.stdout.endswith("shell-ran\n")
    assert json.loads(result.stdout.splitlines()[0])["pid"] != far_end(remote)


def test_a_boxtool_crash_in_the_far_end_is_exit_1_with_its_traceback(
    remote: SSHTarget, stack_dir: Path
) -> None:
    result = remote.run(tool_call(stack_dir, "crash"), timeout=10)
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 1)
    assert "RuntimeError: boom" in result.stderr and "Traceback" in result.stderr
    assert remote.run("echo alive", timeout=10).stdout == "alive\n"


def test_a_boxtool_call_that_overruns_ends_that_far_end_and_the_next_command_runs(
    remote: SSHTarget, stack_dir: Path, notices: list[str]
) -> None:
    first = far_end(remote)
    result = remote.run(tool_call(stack_dir, "slow", "30"), timeout=0.5)
    assert (result.outcome, result.reason) == (Outcome.UNREACHABLE, "timeout after 0.5s")
    wait_until_gone(remote)
    assert remote.run("echo next", timeout=10).stdout == "next\n"
    assert far_end(remote) != first
    assert len(notices) == 1 and "had ended" in notices[0]
