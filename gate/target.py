"""How the gate reaches a box: one small interface, a local and an SSH implementation.

    Target.run(command, timeout=..., stdin=...) -> Result
        ├── LocalTarget   invoke, a /bin/sh subprocess on this machine
        └── SSHTarget     fabric, host keys verified; one persistent command channel
                          (gate/channel.py), or an exec channel per command (`exec`)

`Target.run` owns timing and classification (ok / failed / unreachable); the
implementations override only `_exchange`, the I/O. Third-party errors (paramiko, invoke, socket)
are mapped to gate errors only in the box-access layer: here, hostkeys.py and hold.py.
"""

from __future__ import annotations

import abc
import codecs
import contextlib
import io
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import fabric
import paramiko
from fabric.runners import Remote as _FabricRemote
from invoke.config import Config as InvokeConfig
from invoke.context import Context as InvokeContext
from invoke.exceptions import CommandTimedOut
from invoke.runners import Local as _InvokeLocal
from tenacity import Retrying, retry_if_exception_type, stop_after_delay
from tenacity.wait import wait_exponential

from gate.channel import ChannelDown, NotSent, PersistentChannel
from gate.errormap import LINK_ERRORS, connect_error, first_line, lost
from gate.errors import Unreachable, UsageError
from gate.hold import Hold, hold_channel, hold_local
from gate.hostkeys import RecordingHostKeyPolicy, load_known_hosts
from gate.inventory import HostSpec
from gate.result import Exchange, Outcome, Result

SSH_FAILURE_CODE = 255
"""The exit code ssh itself uses for its own failures: never the command's verdict."""

DEFAULT_PROJECT_KNOWN_HOSTS = Path("inventory/known_hosts")
USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
STDIN_CHUNK = 64 * 1024
MAX_CHANNEL_DEATHS = 3
"""A persistent channel that died this often is not reopened: the run stays on exec."""
EXEC = "each command now gets a fresh SSH channel"
RECONNECT_FIRST_S = 0.25
"""The first pause between reconnect attempts; they double up to 5 s within the budget."""


def quote(*parts: str) -> str:
    """Join words for a POSIX shell so each arrives as exactly one argument."""
    return shlex.join(parts)


class Target(abc.ABC):
    """A box the gate can run shell commands on."""

    name: str
    generation: int = 0
    """How many times the link was (re)established; a change means a reconnect happened."""
    notice: Callable[[str], None] = staticmethod(lambda _text: None)
    """Where the target reports a change of its own (a transport fallback): the run's notes."""

    def run(self, command: str, *, timeout: float, stdin: str | None = None) -> Result:
        """Run `command` under a POSIX shell; a lost link or timeout is UNREACHABLE, not raised."""
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, got {timeout!r} for {command!r}")
        started = time.monotonic()
        exchange = self._exchange(command, timeout=timeout, stdin=stdin or "")
        return _classify(command, exchange, time.monotonic() - started)

    @abc.abstractmethod
    def _exchange(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        """Send the command, feed stdin, collect output: the only I/O a target does."""

    @abc.abstractmethod
    def hold(self, command: str, *, ready: str, timeout: float) -> Hold | Result:
        """Keep `command` running on the box until released; its Result if it never got ready."""

    @abc.abstractmethod
    def open(self) -> None:
        """Establish the link now instead of on the first `run`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the link; `run` reopens it lazily."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _classify(command: str, exchange: Exchange, duration: float) -> Result:
    """Turn raw output into a verdict: rc 255 and lost links are could-not-ask, not failures."""
    outcome, reason = Outcome.OK, ""
    if exchange.lost or exchange.exit_code is None:
        outcome, reason = Outcome.UNREACHABLE, exchange.lost or "no exit status"
    elif exchange.exit_code == SSH_FAILURE_CODE:
        outcome, reason = Outcome.UNREACHABLE, f"rc {SSH_FAILURE_CODE}"
    elif exchange.exit_code != 0:
        outcome = Outcome.FAILED
    exit_code = None if outcome is Outcome.UNREACHABLE else exchange.exit_code
    return Result(
        command=command,
        outcome=outcome,
        exit_code=exit_code,
        stdout=exchange.stdout,
        stderr=exchange.stderr,
        duration=duration,
        reason=reason,
    )


def _timeout_reason(timeout: float) -> str:
    return f"timeout after {timeout:g}s"


# --- runners: invoke/fabric's own, with the I/O details the gate needs -------------------


class _StreamsMixin:
    """Whole-chunk stdin and UTF-8 decoding that survives split and invalid sequences.

    invoke reads a non-terminal in_stream one byte per 10 ms, which makes writing a
    file through stdin take seconds, and decodes each output chunk on its own, which
    mangles a multi-byte character that straddles two chunks.
    """

    read_chunk_size: int
    _stdin_refused = False
    _timer_fired = False

    def kill(self) -> None:
        """Only invoke's timeout timer calls this: remember that it fired."""
        self._timer_fired = True
        super().kill()  # type: ignore[misc]

    @property
    def timed_out(self) -> bool:
        """invoke asks "is the timer thread dead?", which races: the killed command's end
        can be collected while `kill` is still returning. That race turned a timeout into
        "no exit status" (ssh) or a -9 exit (local) on a loaded machine."""
        return self._timer_fired

    def read_our_stdin(self, input_: IO[str]) -> str:
        return "" if self._stdin_refused else input_.read(STDIN_CHUNK)

    def write_proc_stdin(self, data: str) -> None:
        """A command that stops reading (`head -1`, killed, link gone) is not our error."""
        try:
            super().write_proc_stdin(data)  # type: ignore[misc]
        except (OSError, EOFError):
            self._stdin_refused = True

    def close_proc_stdin(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            super().close_proc_stdin()  # type: ignore[misc]

    def read_proc_output(self, reader: Any) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while data := reader(self.read_chunk_size):
            if text := decoder.decode(data):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


class _LocalRunner(_StreamsMixin, _InvokeLocal):  # type: ignore[misc]
    """invoke's Local, but the command gets its own session so a timeout kills all of it."""

    def start(self, command: str, shell: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            shell=True,
            executable=shell,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE,
            start_new_session=True,
        )

    def _write_proc_stdin(self, data: bytes) -> None:
        """Write all of it (invoke's os.write may write part) and let a closed pipe surface."""
        stream = self.process.stdin
        if stream is None:
            raise BrokenPipeError("the command has no stdin pipe")
        stream.write(data)
        stream.flush()

    def kill(self) -> None:
        self._timer_fired = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


class _RemoteRunner(_StreamsMixin, _FabricRemote):  # type: ignore[misc]
    """fabric's Remote with the gate's stream handling."""


# --- local ----------------------------------------------------------------------------


class LocalTarget(Target):
    """This machine, through invoke; used by `--local` and as the twin of SSHTarget in tests."""

    def __init__(self, shell: str = "/bin/sh") -> None:
        self.name = "local"
        self._shell = shell
        config = InvokeConfig(overrides={"runners": {"local": _LocalRunner}})
        self._context = InvokeContext(config=config)

    def _exchange(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        try:
            result = self._context.run(command, **_run_options(timeout, stdin), shell=self._shell)
        except CommandTimedOut as exc:
            return _partial(exc.result, _timeout_reason(timeout))
        except LINK_ERRORS as exc:
            return Exchange(None, "", "", lost=f"could not run locally: {first_line(exc)}")
        if result is None:  # invoke's Result is falsy when the command failed; None is no result
            return _NO_RESULT
        return Exchange(result.exited, result.stdout, result.stderr)

    def hold(self, command: str, *, ready: str, timeout: float) -> Hold | Result:
        return hold_local(command, ready=ready, timeout=timeout)

    def open(self) -> None:
        """Nothing to open: each command is its own subprocess."""

    def close(self) -> None:
        """Nothing to close."""


_NO_RESULT = Exchange(None, "", "", lost="the runner returned no result")


def _run_options(timeout: float, stdin: str) -> dict[str, Any]:
    """The invoke options every command gets: quiet, never raising on rc, bounded, fed."""
    return {
        "hide": True,
        "warn": True,
        "pty": False,
        "timeout": timeout,
        "in_stream": io.StringIO(stdin),
        "encoding": "utf-8",
    }


def _partial(result: Any, lost: str) -> Exchange:
    """What a cut-short command printed before it was cut short."""
    return Exchange(None, result.stdout, result.stderr, lost=lost)


# --- ssh -------------------------------------------------------------------------------


class SSHTarget(Target):
    """A box over SSH, through fabric, host keys verified: commands go over one persistent
    channel (gate/channel.py), or a fresh exec channel each with `persistent=False`
    (`--transport exec`), which is also the fallback when the persistent channel fails.

    `host` may be an address or an ~/.ssh/config alias; `port`/`user`/`identity` left at
    None are resolved by that config, then by fabric's defaults.
    """

    def __init__(
        self,
        host: str,
        *,
        port: int | None = None,
        user: str | None = None,
        identity: Path | None = None,
        known_hosts: Path = DEFAULT_PROJECT_KNOWN_HOSTS,
        accept_new: bool = False,
        connect_timeout: float = 10.0,
        ssh_config: Path | None = None,
        user_known_hosts: Path = USER_KNOWN_HOSTS,
        persistent: bool = True,
        reconnect_s: float = 0.0,
    ) -> None:
        self.persistent = persistent
        self.reconnect_s = reconnect_s
        """Commands go over one persistent channel (gate/channel.py); False: exec per command."""
        self._channel: PersistentChannel | None = None
        self._channel_generation = -1
        self._channel_deaths = 0
        self._known_hosts = [user_known_hosts.expanduser(), known_hosts.expanduser()]
        self._policy = RecordingHostKeyPolicy(known_hosts.expanduser(), accept_new=accept_new)
        self._connect_timeout = connect_timeout
        self._connection = self._make_connection(host, port, user, identity, ssh_config)
        self._connection.connect_timeout = connect_timeout
        self._connection.client = self._new_client()
        conn = self._connection
        self.name = f"ssh://{conn.user}@{conn.host}:{conn.port}"

    @staticmethod
    def _make_connection(
        host: str,
        port: int | None,
        user: str | None,
        identity: Path | None,
        ssh_config: Path | None,
    ) -> Any:
        config = fabric.Config(
            runtime_ssh_path=str(ssh_config) if ssh_config else None,
            overrides={"runners": {"remote": _RemoteRunner}},
        )
        connect_kwargs = {"key_filename": [str(identity.expanduser())]} if identity else None
        try:
            return fabric.Connection(
                host, user=user, port=port, config=config, connect_kwargs=connect_kwargs
            )
        except (OSError, ValueError, paramiko.SSHException) as exc:
            raise UsageError(f"cannot set up SSH to {host!r}: {exc}") from exc

    @property
    def transport(self) -> paramiko.Transport:
        """The live SSH transport, for channels that outlive one command (gate/hold.py)."""
        transport: paramiko.Transport | None = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise Unreachable(f"no live SSH transport to {self.host_port}")
        return transport

    @property
    def host_port(self) -> str:
        return f"{self._connection.host}:{self._connection.port}"

    def open(self) -> None:
        """Connect and authenticate; raises HostKeyError or Unreachable if that fails.

        A reconnect (the link was up before) keeps trying, backing off, for `reconnect_s`
        seconds (the inventory's budget; 0: one try); the first connect never waits."""
        if self._connection.is_connected:
            return
        budget = self.reconnect_s if self.generation else 0.0
        Retrying(
            stop=stop_after_delay(budget),
            wait=wait_exponential(multiplier=RECONNECT_FIRST_S, min=RECONNECT_FIRST_S, max=5.0),
            retry=retry_if_exception_type(Unreachable),
            reraise=True,
        )(self._open_once)

    def _open_once(self) -> None:
        client = self._new_client()
        self._connection.client = client
        try:
            self._connect()
        except BaseException:
            client.close()
            raise
        self.generation += 1

    def hold(self, command: str, *, ready: str, timeout: float) -> Hold | Result:
        self.open()
        return hold_channel(self.transport, command, ready=ready, timeout=timeout)

    def _new_client(self) -> paramiko.SSHClient:
        """A client that knows only the known_hosts files and our policy (never AutoAdd)."""
        client = paramiko.SSHClient()
        load_known_hosts(client, self._known_hosts)
        client.set_missing_host_key_policy(self._policy)
        return client

    def _connect(self) -> None:
        conn = self._connection
        try:
            conn.open()
        except Exception as exc:
            mapped = connect_error(
                exc,
                where=self.host_port,
                user=conn.user,
                known_hosts=self._known_hosts,
                timeout=self._connect_timeout,
            )
            if mapped is None:
                raise
            raise mapped from exc

    def close(self) -> None:
        self._close_channel()
        self._connection.close()
        self._connection.client.close()

    def _exchange(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        self.open()
        channel = self._command_channel()
        if channel is None:
            return self._exec(command, timeout=timeout, stdin=stdin)
        try:
            exchange = channel.run(command, timeout=timeout, stdin=stdin)
        except NotSent as exc:
            self._give_up_channel(str(exc))
            return self._exec(command, timeout=timeout, stdin=stdin)  # refuses a dead link
        if channel.dead:
            self._give_up_channel(channel.dead)
        return exchange

    def _command_channel(self) -> PersistentChannel | None:
        """This connection's persistent channel, started on first use; None: use exec."""
        if not self.persistent:
            return None
        channel = self._channel
        if channel is not None and self._channel_generation == self.generation:
            return channel
        self._close_channel()
        try:
            channel = PersistentChannel(self.transport)
        except Unreachable:
            return None  # the link is gone: the exec path reports it as could-not-ask
        except ChannelDown as exc:
            if self._connection.is_connected:
                self.persistent = False
                self.notice(f"transport: no persistent channel to {self.host_port} ({exc}); {EXEC}")
            return None
        self._channel, self._channel_generation = channel, self.generation
        return channel

    def _give_up_channel(self, why: str) -> None:
        """Drop a channel that can carry no more commands; after a few, stay on exec."""
        self._close_channel()
        if not self._connection.is_connected:
            return  # the link dropped: the reconnect opens a new channel, nothing died
        self._channel_deaths += 1
        if self._channel_deaths >= MAX_CHANNEL_DEATHS:
            self.persistent = False
        then = "a new one opens for the next command" if self.persistent else EXEC
        self.notice(f"transport: {why}; {then}")

    @property
    def command_channel(self) -> PersistentChannel | None:
        """The persistent channel now open, if any (the tests watch it die)."""
        return self._channel

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _exec(self, command: str, *, timeout: float, stdin: str) -> Exchange:
        """The command on a fresh exec channel (fabric `run`): `--transport exec`, the fallback.

        Never on a link that dropped since `open()`: fabric would reconnect unseen, and the
        reconnect must go through `open()` (a new generation: the lock re-proves itself)."""
        if not self._connection.is_connected:
            return Exchange(None, "", "", lost="connection lost: the link dropped before sending")
        try:
            result = self._connection.run(command, **_run_options(timeout, stdin))
        except CommandTimedOut as exc:
            return _partial(exc.result, _timeout_reason(timeout))
        except LINK_ERRORS as exc:
            return Exchange(None, "", "", lost=lost(exc))
        if result is None:
            return _NO_RESULT
        if result.exited == -1 or not self._connection.is_connected:
            return _partial(result, "connection lost: no exit status from the box")
        return Exchange(result.exited, result.stdout, result.stderr)


# --- choosing a target -------------------------------------------------------------------


def target_for(
    spec: HostSpec,
    *,
    accept_new: bool = False,
    ssh_config: Path | None = None,
    connect_timeout: float = 10.0,
) -> Target:
    """The target a host spec describes: local for `--local`, SSH otherwise."""
    if spec.local:
        return LocalTarget()
    return SSHTarget(
        spec.host,
        port=spec.port,
        user=spec.user,
        identity=spec.identity,
        known_hosts=spec.known_hosts or DEFAULT_PROJECT_KNOWN_HOSTS,
        accept_new=accept_new,
        connect_timeout=connect_timeout,
        ssh_config=ssh_config,
        persistent=spec.transport == "persistent",
        reconnect_s=spec.reconnect_s,
    )
