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


def ssh_to(sshd: Sshd, tmp_path: Path, *, persistent: bool = True) -> SSHTarget:
    """A target on the loopback sshd that trusts only its known_hosts."""
    return SSHTarget(
        sshd.host,
        port=sshd.port,
        user=sshd.user,
        identity=sshd.identity,
        known_hosts=sshd.known_hosts,
        user_known_hosts=tmp_path / "none",
        persistent=persistent,
    )


@pytest.fixture
def remote(sshd: Sshd, tmp_path: Path, notices: list[str]) -> Iterator[SSHTarget]:
    target = ssh_to(sshd, tmp_path)
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
    exec_target = ssh_to(sshd, tmp_path, persistent=False)
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
    if argv[0] == "umask":
        os.umask(0)
    if argv[0] == "surrogate":
        print("bad \\udc80 bytes", file=sys.stderr)
        return 0
    if argv[0] == "negative":
        return -1
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
    # at once, before the old far end is gone: it must not be sent to the one that is ending
    nxt = remote.run("echo next", timeout=10)
    assert (nxt.outcome, nxt.stdout) == (Outcome.OK, "next\n"), nxt
    assert far_end(remote) != first
    assert len(notices) == 1 and "outlived 0.5s" in notices[0], notices


@pytest.mark.parametrize(
    "source",
    ["def main(argv:\n", "import no_such_module_xyz\n", "raise SystemExit('bye')\n"],
    ids=["syntax-error", "import-error", "exit-on-import"],
)
def test_a_boxtool_that_cannot_load_is_exit_1_as_over_exec_and_the_far_end_lives(
    remote: SSHTarget, stack_dir: Path, source: str
) -> None:
    (stack_dir / BOXTOOL).write_text(source)
    first = far_end(remote)
    result = remote.run(tool_call(stack_dir, "config"), timeout=10)
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 1), result
    assert far_end(remote) == first


def test_what_a_boxtool_call_leaves_behind_is_taken_back(
    remote: SSHTarget, stack_dir: Path
) -> None:
    """A call that changes the umask, prints what UTF-8 cannot encode, or returns a
    negative code: the next command sees the far end as it was, the code as a process's."""
    before = remote.run("umask", timeout=10).stdout
    assert remote.run(tool_call(stack_dir, "umask"), timeout=10).exit_code == 3
    assert remote.run("umask", timeout=10).stdout == before
    odd = remote.run(tool_call(stack_dir, "surrogate"), timeout=10)
    assert (odd.exit_code, odd.stderr) == (0, "bad \\udc80 bytes\n"), odd
    negative = remote.run(tool_call(stack_dir, "negative"), timeout=10)
    assert (negative.outcome, negative.reason) == (Outcome.UNREACHABLE, "rc 255")  # exec's too


def test_commands_get_the_login_environment_not_the_far_ends(
    remote: SSHTarget, sshd: Sshd, tmp_path: Path
) -> None:
    exec_target = ssh_to(sshd, tmp_path, persistent=False)
    show = "env | grep -E '^(LC_|LANG|PYTHON)' | sort"
    with exec_target:
        assert remote.run(show, timeout=10).stdout == exec_target.run(show, timeout=10).stdout


def test_a_request_cut_off_by_a_dropped_link_never_runs_and_is_not_sent_again(
    remote: SSHTarget, tmp_path: Path
) -> None:
    """The link drops while a request is being written: the far end must not run the part
    it got, and the target must not send it again behind the run's back (a reconnect goes
    through open(): a new generation, so the box lock re-proves itself)."""
    log = tmp_path / "log"
    old = Path(f"/proc/{far_end(remote)}")
    channel = remote.command_channel
    assert channel is not None
    real = channel._channel.sendall
    generation = remote.generation

    def cut(data: bytes) -> None:
        real(data[:-20])  # all but the last 20 bytes leave
        channel._channel.get_transport().close()  # then the link drops
        raise EOFError("link dropped mid-send")

    channel._channel.sendall = cut  # type: ignore[method-assign]
    result = remote.run(f"cat >> {quote(str(log))}", timeout=10, stdin="PAYLOAD-" + "x" * 40)
    assert result.outcome is Outcome.UNREACHABLE, result
    assert remote.generation == generation, "it reconnected behind the run's back"
    assert remote.run("echo after", timeout=10).stdout == "after\n"
    assert remote.generation == generation + 1
    end = time.monotonic() + 10
    while old.exists():  # the old far end saw the channel close and ended: it ran or not
        assert time.monotonic() < end, "the old far end lives on"
        time.sleep(0.01)
    assert not log.exists() or "PAYLOAD" not in log.read_text()
