"""Local and SSH targets against real processes: a real /bin/sh and a real OpenSSH sshd."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import gate.target
from gate.errors import HostKeyError, Unreachable, UsageError
from gate.inventory import local_spec, resolve_host
from gate.result import Outcome, Result
from gate.target import LocalTarget, SSHTarget, Target, quote, target_for
from gate.testing.sshd import Sshd, free_port, keygen

TRICKY = 'it\'s "quoted" $HOME `id` ; echo pwned && exit 7 | cat \\ * ~ \t tab\nnewline'


def ssh_target(server: Sshd, known_hosts: Path, tmp_path: Path, **options: object) -> SSHTarget:
    """An SSHTarget that trusts only `known_hosts` (never the runner's own ~/.ssh)."""
    return SSHTarget(
        server.host,
        port=server.port,
        user=server.user,
        identity=server.identity,
        known_hosts=known_hosts,
        user_known_hosts=tmp_path / "no-user-known-hosts",
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "ssh", "ssh-exec"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Every behaviour below holds locally and over both SSH transports (persistent, exec)."""
    if request.param == "local":
        return LocalTarget()
    server: Sshd = request.getfixturevalue("sshd")
    persistent = request.param == "ssh"
    remote = ssh_target(server, server.known_hosts, tmp_path, persistent=persistent)
    request.addfinalizer(remote.close)
    return remote


# --- the same behaviour through both targets ---------------------------------------------


def test_success_gives_ok_with_both_streams(target: Target) -> None:
    result = target.run("echo out; echo err >&2", timeout=10)
    assert result.outcome is Outcome.OK and result.ok
    assert (result.exit_code, result.stdout, result.stderr, result.reason) == (
        0,
        "out\n",
        "err\n",
        "",
    )
    assert 0 < result.duration < 10


def test_nonzero_exit_is_failed_with_its_code(target: Target) -> None:
    result = target.run("echo partial; echo why >&2; exit 3", timeout=10)
    assert result.outcome is Outcome.FAILED and not result.ok
    assert (result.exit_code, result.stdout, result.stderr) == (3, "partial\n", "why\n")


def test_stdin_round_trips_large_and_unicode_text(target: Target) -> None:
    text = "héllo wörld ✓\n" * 20_000  # ~330 KB: would take minutes at invoke's 1 byte/10 ms
    started = time.monotonic()
    result = target.run("cat", timeout=30, stdin=text)
    assert result.ok and result.stdout == text
    assert time.monotonic() - started < 10


def test_stdin_writes_a_file_without_a_command_line(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "written by gate"
    secret = "token-ABC123\n"
    write = target.run(f"umask 077 && cat > {quote(str(path))}", timeout=10, stdin=secret)
    assert write.ok and secret not in write.command
    assert path.read_text() == secret


def test_stdin_the_command_does_not_read_is_dropped_quietly(target: Target) -> None:
    result = target.run("head -c 2", timeout=20, stdin="xy" * 5_000_000)
    assert (result.outcome, result.stdout) == (Outcome.OK, "xy")


def test_timeout_with_unread_stdin_is_still_a_timeout(target: Target) -> None:
    started = time.monotonic()
    result = target.run("sleep 30", timeout=1, stdin="x" * 10_000_000)
    assert (result.outcome, result.reason) == (Outcome.UNREACHABLE, "timeout after 1s")
    assert time.monotonic() - started < 5


def test_no_stdin_means_immediate_eof(target: Target) -> None:
    result = target.run("cat; echo done", timeout=10)
    assert (result.outcome, result.stdout) == (Outcome.OK, "done\n")


def test_quote_round_trips_shell_metacharacters(target: Target) -> None:
    result = target.run(quote("printf", "%s|", TRICKY, "a b", "$x"), timeout=10)
    assert result.ok, result
    assert result.stdout == f"{TRICKY}|a b|$x|"


def test_invalid_utf8_is_replaced_not_raised(target: Target) -> None:
    result = target.run(r"printf 'ok\377\376end'", timeout=10)
    assert result.ok and result.stdout == "ok\ufffd\ufffdend"


def test_multibyte_characters_split_across_reads_survive(target: Target) -> None:
    # One leading byte puts every 1000-byte read boundary in the middle of a 2-byte "é".
    result = target.run(
        "printf a; i=0; while [ $i -lt 200 ]; do printf %0250d 0; i=$((i+1)); done "
        "| tr 0 '\\351' | iconv -f latin1 -t utf-8",
        timeout=20,
    )
    assert result.ok, result.stderr
    assert result.stdout == "a" + "é" * 50_000


def test_timeout_is_unreachable_and_returns_promptly(target: Target) -> None:
    started = time.monotonic()
    result = target.run("echo begun; sleep 30", timeout=1)
    assert result.outcome is Outcome.UNREACHABLE and result.exit_code is None
    assert result.reason == "timeout after 1s"
    assert time.monotonic() - started < 5


def test_a_timeout_whose_timer_is_still_returning_is_still_a_timeout(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race CI hit: the killed command's end is collected while the timer thread that
    killed it has not returned, so invoke's "timer thread dead?" said no timeout."""
    timer_may_return = threading.Event()
    for runner in (gate.target._LocalRunner, gate.target._RemoteRunner):
        monkeypatch.setattr(runner, "kill", _kill_then_hold(runner.kill, timer_may_return))
    try:
        result = target.run("echo begun; sleep 30", timeout=1)
    finally:
        timer_may_return.set()
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.UNREACHABLE,
        None,
        "timeout after 1s",
    )


def _kill_then_hold(
    kill: Callable[[object], None], release: threading.Event
) -> Callable[[object], None]:
    def kill_and_hold_the_timer_thread(runner: object) -> None:
        kill(runner)
        release.wait(timeout=30)

    return kill_and_hold_the_timer_thread


def test_rc_255_is_unreachable_not_failed(target: Target) -> None:
    result = target.run("exit 255", timeout=10)
    assert (result.outcome, result.exit_code, result.reason) == (
        Outcome.UNREACHABLE,
        None,
        "rc 255",
    )


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "exec"])
def test_local_and_ssh_give_identical_results(sshd: Sshd, tmp_path: Path, persistent: bool) -> None:
    commands = ["echo a; echo b >&2", "exit 3", "exit 255", "cat; printf x", "pwd >/dev/null"]
    remote = ssh_target(sshd, sshd.known_hosts, tmp_path, persistent=persistent)
    with LocalTarget() as local, remote:
        for command in commands:
            assert _timeless(local.run(command, timeout=10, stdin="in")) == _timeless(
                remote.run(command, timeout=10, stdin="in")
            )


def _timeless(result: Result) -> Result:
    return dataclasses.replace(result, duration=0.0)


@pytest.mark.parametrize("target", ["local", "ssh"], indirect=True)
def test_a_timeout_kills_the_whole_command(target: Target, tmp_path: Path) -> None:
    """The background child is in the command's process group: the timeout kills it too.

    Not over `--transport exec`: closing an exec channel leaves the command running (gate's
    own commands are wrapped in `boxtool exec`, which kills the group at its deadline)."""
    pid_file = tmp_path / "child.pid"
    command = f"sh -c 'echo $$ > \"$0\"; exec sleep 30' {quote(str(pid_file))} & sleep 30"
    result = target.run(command, timeout=0.5)
    assert result.reason == "timeout after 0.5s"
    wait_for(pid_file)
    child = Path(f"/proc/{pid_file.read_text().strip()}")
    end = time.monotonic() + 10
    while child.exists() and _state(child) != "Z":
        assert time.monotonic() < end, f"{child} outlived its command's timeout"
        time.sleep(0.02)


def _state(proc: Path) -> str:
    try:
        return proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_timeout_must_be_positive() -> None:
    with pytest.raises(UsageError, match="timeout must be positive"):
        LocalTarget().run("true", timeout=0)


# --- SSH: dropped links ------------------------------------------------------------------


def wait_for(path: Path, deadline: float = 10.0) -> None:
    """Poll for a file the command under test creates: the real signal that it started."""
    end = time.monotonic() + deadline
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "exec"])
def test_sshd_killed_mid_command_is_unreachable_then_reconnects(
    sshd_factory: Callable[[], Sshd], tmp_path: Path, persistent: bool
) -> None:
    server = sshd_factory()
    marker = tmp_path / "started"
    remote = ssh_target(server, server.known_hosts, tmp_path, persistent=persistent)
    killer = threading.Thread(target=lambda: (wait_for(marker), server.kill()))
    killer.start()
    result = remote.run(f"touch {quote(str(marker))}; sleep 30; echo finished", timeout=20)
    killer.join()
    assert result.outcome is Outcome.UNREACHABLE and result.exit_code is None
    assert result.reason.startswith("connection lost"), result.reason
    assert result.duration < 15
    server.start()
    assert remote.run("echo again", timeout=10).stdout == "again\n"


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "exec"])
def test_a_reconnect_keeps_trying_within_the_inventorys_budget(
    sshd_factory: Callable[[], Sshd], tmp_path: Path, persistent: bool
) -> None:
    """sshd is down for about a second: a reconnect with a budget waits it out (a new
    generation: the lock then re-proves itself); without one it is could-not-ask at once."""
    server = sshd_factory()
    patient = ssh_target(
        server, server.known_hosts, tmp_path, persistent=persistent, reconnect_s=30
    )
    hasty = ssh_target(server, server.known_hosts, tmp_path, persistent=persistent)
    assert patient.run("true", timeout=10).ok and hasty.run("true", timeout=10).ok
    server.kill()
    patient.close()
    hasty.close()
    with pytest.raises(Unreachable, match="cannot connect"):
        hasty.open()
    answers: list[Result] = []
    # the reconnect runs in a thread: sshd must be started from this one (it dies with the
    # thread that started it: PR_SET_PDEATHSIG)
    reconnecting = threading.Thread(
        target=lambda: answers.append(patient.run("echo b", timeout=10))
    )
    reconnecting.start()
    time.sleep(1.0)  # the outage under test: sshd stays down about a second
    server.start()
    reconnecting.join(timeout=60)
    assert [a.stdout for a in answers] == ["b\n"]
    assert patient.generation == 2


def test_connect_to_a_closed_port_raises_unreachable(tmp_path: Path) -> None:
    remote = SSHTarget("127.0.0.1", port=free_port(), user="root", known_hosts=tmp_path / "kh")
    with pytest.raises(Unreachable, match=r"cannot connect to 127\.0\.0\.1"):
        remote.run("true", timeout=5)


def test_wrong_identity_is_a_usage_error(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    keygen(stranger, "stranger")
    remote = SSHTarget(
        sshd.host,
        port=sshd.port,
        user=sshd.user,
        identity=stranger,
        known_hosts=sshd.known_hosts,
        user_known_hosts=tmp_path / "none",
    )
    with pytest.raises(UsageError, match="authentication failed"):
        remote.open()


# --- SSH: host keys ----------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_recorded(
    sshd: Sshd, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "inventory" / "known_hosts"
    with pytest.raises(HostKeyError) as raised:
        ssh_target(sshd, known_hosts, tmp_path).run("true", timeout=10)
    message = str(raised.value)
    assert f"unknown host key for 127.0.0.1:{sshd.port}: {sshd.fingerprint}" in message
    assert "--accept-new-host-key" in message
    assert not known_hosts.exists()


def test_accept_new_records_the_key_then_works_without_the_flag(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "inventory" / "known_hosts"
    assert ssh_target(sshd, known_hosts, tmp_path, accept_new=True).run("true", timeout=10).ok
    assert known_hosts.read_text() == sshd.known_hosts_line
    assert ssh_target(sshd, known_hosts, tmp_path).run("echo trusted", timeout=10).ok
    assert known_hosts.read_text() == sshd.known_hosts_line  # not recorded twice


def test_changed_host_key_names_both_fingerprints_even_with_accept_new(
    sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    server = sshd_factory()
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(server.known_hosts, known_hosts)
    recorded = known_hosts.read_text()
    assert ssh_target(server, known_hosts, tmp_path).run("true", timeout=10).ok
    old = server.restart_with_new_host_key()
    assert old != server.fingerprint
    for accept_new in (False, True):
        with pytest.raises(HostKeyError) as raised:
            ssh_target(server, known_hosts, tmp_path, accept_new=accept_new).open()
        assert f"expected {old}, offered {server.fingerprint}" in str(raised.value)
    assert known_hosts.read_text() == recorded  # the new key was not recorded


# --- SSH: specs, aliases -----------------------------------------------------------------


def test_ssh_config_alias_supplies_host_port_user_and_identity(sshd: Sshd, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host stackbox\n  HostName {sshd.host}\n  Port {sshd.port}\n"
        f"  User {sshd.user}\n  IdentityFile {sshd.identity}\n"
    )
    remote = SSHTarget(
        "stackbox",
        known_hosts=sshd.known_hosts,
        ssh_config=config,
        user_known_hosts=tmp_path / "none",
    )
    assert remote.name == f"ssh://{sshd.user}@{sshd.host}:{sshd.port}"
    assert remote.run("echo via-alias", timeout=10).stdout == "via-alias\n"


def test_inventory_file_drives_an_ssh_target(sshd: Sshd, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    shutil.copy(sshd.known_hosts, inventory / "known_hosts")
    (inventory / "box.toml").write_text(
        f'host = "{sshd.host}"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
        f'identity = "{sshd.identity}"\ndir = "/srv/stack"\n'
    )
    spec = resolve_host("box", inventory)
    with target_for(spec) as remote:
        assert isinstance(remote, SSHTarget)
        assert remote.run("echo from-inventory", timeout=10).stdout == "from-inventory\n"


def test_local_spec_gives_a_local_target() -> None:
    assert isinstance(target_for(local_spec("/srv/stack")), LocalTarget)


def test_fixture_fingerprint_matches_ssh_keyscan(sshd: Sshd) -> None:
    """Positive control for the fixture itself: the key sshd serves is the one it reports."""
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(sshd.port), "-t", "ed25519", sshd.host],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    assert sshd.host_public_key.split()[1] in scanned


RESET_SERVER_CLIENT = """
import contextlib, socket, struct, sys, threading
from pathlib import Path
import gate.target
from gate.errors import Unreachable
from gate.target import SSHTarget
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
def reset_every_connection():
    with contextlib.suppress(OSError):
        while True:
            conn, _ = server.accept()
            conn.recv(64)  # the client's banner: it now waits for ours
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST, not FIN
threading.Thread(target=reset_every_connection, daemon=True).start()
target = SSHTarget("127.0.0.1", port=server.getsockname()[1], user="root",
                   known_hosts=Path(sys.argv[1]))
try:
    target.open()
except Unreachable as exc:
    print("unreachable:", exc)
"""


def test_a_connection_reset_in_the_handshake_is_unreachable_with_no_traceback(
    tmp_path: Path,
) -> None:
    """paramiko's own thread logs a traceback for this; none may reach the console.

    A subprocess, because under pytest its logging capture hides what a user would see."""
    done = subprocess.run(
        [sys.executable, "-c", RESET_SERVER_CLIENT, str(tmp_path / "known_hosts")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.startswith("unreachable: cannot connect to 127.0.0.1:"), done
    assert "Traceback" not in done.stderr, done.stderr
