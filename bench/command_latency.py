"""Per-command latency over a loopback sshd: gate's paths against the peers.

    .venv/bin/python -m bench.command_latency [--n 200] [--warmup 10]

Starts its own sshd (gate.testing.sshd) on 127.0.0.1, runs the same trivial command
through each method (warm-up runs excluded) and prints one table: median, p95, ratio to
the fastest and to Fabric `run`. pytest-testinfra and mitogen are installed into this
venv by the bench only; a method that cannot run says why in its row. Figures, never
assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

from bench.stats import Row, table_lines
from gate.result import Result
from gate.target import SSHTarget
from gate.testing.sshd import Sshd, SshdUnavailable

COMMAND = "true"
FABRIC = "fabric run"
PERSISTENT = "gate persistent channel"
Call = Callable[[], object]
Method = Callable[[Sshd], contextlib.AbstractContextManager[Call]]


class NotAvailable(Exception):
    """The method cannot run here; the message is the row's one-line reason."""


# --- the methods: each a context manager that yields one call of COMMAND ---------------


@contextlib.contextmanager
def gate_target(sshd: Sshd, *, persistent: bool) -> Iterator[SSHTarget]:
    """gate's SSHTarget on the bench's sshd, opened (bench/latency_floor.py uses it too)."""
    target = SSHTarget(
        sshd.host,
        port=sshd.port,
        user=sshd.user,
        identity=sshd.identity,
        known_hosts=sshd.known_hosts,
        user_known_hosts=sshd.known_hosts,
        persistent=persistent,
    )
    target.open()
    try:
        yield target
    finally:
        target.close()


@contextlib.contextmanager
def gate_persistent(sshd: Sshd) -> Iterator[Call]:
    """gate's SSHTarget.run over its persistent command channel (the default transport)."""
    with gate_target(sshd, persistent=True) as target:
        yield lambda: _checked(target.run(COMMAND, timeout=30))


@contextlib.contextmanager
def gate_exec(sshd: Sshd) -> Iterator[Call]:
    """gate's SSHTarget.run with `--transport exec`: a fabric exec channel per command."""
    with gate_target(sshd, persistent=False) as target:
        yield lambda: _checked(target.run(COMMAND, timeout=30))


def _checked(result: Result) -> Result:
    """A bench that times failures measures nothing: a failed command stops the row."""
    if not result.ok:
        raise RuntimeError(f"{result.command}: {result.outcome.value} {result.reason}")
    return result


@contextlib.contextmanager
def fabric_run(sshd: Sshd) -> Iterator[Call]:
    """Plain fabric Connection.run, hidden, never raising on the exit code."""
    import fabric

    conn = fabric.Connection(
        sshd.host,
        user=sshd.user,
        port=sshd.port,
        connect_kwargs={"key_filename": [str(sshd.identity)]},
    )
    conn.client.load_host_keys(str(sshd.known_hosts))
    try:
        yield lambda: conn.run(COMMAND, hide=True, warn=True, in_stream=False)
    finally:
        conn.close()


def _ssh_argv(sshd: Sshd, *options: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", str(sshd.identity), "-p", str(sshd.port),
        "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", *options, f"{sshd.user}@{sshd.host}",
    ]  # fmt: skip


def _ssh_call(argv: list[str]) -> Call:
    def call() -> int:
        return subprocess.run([*argv, COMMAND], stdin=subprocess.DEVNULL, check=True).returncode

    return call


@contextlib.contextmanager
def ssh_per_command(sshd: Sshd) -> Iterator[Call]:
    """OpenSSH's client, one connection per command (what a bash harness does)."""
    yield _ssh_call(_ssh_argv(sshd))


@contextlib.contextmanager
def ssh_control_master(sshd: Sshd) -> Iterator[Call]:
    """OpenSSH's client multiplexed over one ControlMaster (started by the warm-up)."""
    path = sshd.workdir / "cm.sock"
    argv = _ssh_argv(sshd, "-o", "ControlMaster=auto", "-o", f"ControlPath={path}",
                     "-o", "ControlPersist=300")  # fmt: skip
    try:
        yield _ssh_call(argv)
    finally:
        subprocess.run([*argv[:-1], "-O", "exit", argv[-1]], capture_output=True, check=False)


@contextlib.contextmanager
def testinfra_paramiko(sshd: Sshd) -> Iterator[Call]:
    """pytest-testinfra's paramiko backend, host keys from the sshd's known_hosts."""
    testinfra = _ensure("testinfra", "pytest-testinfra")
    config = sshd.workdir / "testinfra_ssh_config"
    config.write_text(
        f"Host {sshd.host}\n  UserKnownHostsFile {sshd.known_hosts}\n  StrictHostKeyChecking yes\n"
    )
    host = testinfra.get_host(
        f"paramiko://{sshd.user}@{sshd.host}:{sshd.port}",
        ssh_config=str(config),
        ssh_identity_file=str(sshd.identity),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # its WarningPolicy: see NOTES
        yield lambda: host.run(COMMAND)


@contextlib.contextmanager
def mitogen_call(sshd: Sshd) -> Iterator[Call]:
    """A Mitogen context over ssh; each call is `subprocess.call([COMMAND])` on the far side."""
    _ensure("mitogen", "mitogen")
    master = importlib.import_module("mitogen.master")
    broker = master.Broker()
    try:
        router = master.Router(broker)
        context = router.ssh(
            hostname=sshd.host,
            port=sshd.port,
            username=sshd.user,
            identity_file=str(sshd.identity),
            check_host_keys="enforce",
            ssh_args=["-F", "/dev/null", "-o", f"UserKnownHostsFile={sshd.known_hosts}"],
            python_path=[sys.executable],
        )
        yield lambda: context.call(subprocess.call, [COMMAND])
    finally:
        broker.shutdown()
        broker.join()


METHODS: dict[str, Method] = {
    PERSISTENT: gate_persistent,
    "gate --transport exec": gate_exec,
    FABRIC: fabric_run,
    "ssh per command": ssh_per_command,
    "ssh ControlMaster": ssh_control_master,
    "testinfra paramiko": testinfra_paramiko,
    "mitogen context.call": mitogen_call,
}

NOTES = {
    "testinfra paramiko": "host key NOT verified: the backend ignores UserKnownHostsFile",
    "mitogen context.call": "far side runs subprocess.call(['true'])",
}
PACKAGES = ("fabric", "paramiko", "pytest-testinfra", "mitogen")


# --- running ------------------------------------------------------------------------------


def _ensure(module: str, package: str) -> ModuleType:
    """Import `module`, pip-installing `package` into this venv first if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pass
    pip = [sys.executable, "-m", "pip", "install", "--quiet", package]
    done = subprocess.run(pip, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NotAvailable(
            f"not installed: pip install {package} failed: {_last_line(done.stderr)}"
        )
    importlib.invalidate_caches()
    return importlib.import_module(module)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else "no output"


def measure(name: str, method: Method, sshd: Sshd, n: int, warmup: int) -> Row:
    """Time `n` calls after `warmup` untimed ones; any failure becomes the row's note."""
    try:
        with method(sshd) as call:
            for _ in range(warmup):
                call()
            samples = tuple(_timed(call) for _ in range(n))
        return Row(name, samples, NOTES.get(name, ""))
    except NotAvailable as exc:
        return Row(name, note=str(exc))
    except Exception as exc:
        return Row(name, note=f"failed: {type(exc).__name__}: {_last_line(str(exc))}")


def _timed(call: Call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def header(n: int, warmup: int) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"per-command latency of `{COMMAND}` over a loopback sshd: {n} runs each, "
        f"{warmup} warm-up runs excluded ({now})",
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}",
        "load average at the end (1, 5, 15 min): "
        + " ".join(f"{load:.2f}" for load in os.getloadavg()),
    ]


def versions() -> str:
    """The peers' versions, read after the run (the bench may have installed some)."""
    found = []
    for package in PACKAGES:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{package} absent")
    return "packages: " + ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="timed runs per method")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        sshd = Sshd(Path(tmp))
        try:
            sshd.start()
        except SshdUnavailable as exc:
            print(f"bench: no loopback sshd: {exc}", file=sys.stderr)
            return 1
        try:
            rows = [measure(name, m, sshd, args.n, args.warmup) for name, m in METHODS.items()]
        finally:
            sshd.stop()
    lines = [*header(args.n, args.warmup), versions(), "", *table_lines(rows, FABRIC)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
