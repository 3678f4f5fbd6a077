"""supervisord for one box: its config, its unix socket, and an XML-RPC client over that socket.

Each box runs its own supervisord (`-c BOX/run/supervisord.conf`), so boxes never share state.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shlex
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

# AF_UNIX paths are limited to 108 bytes including the NUL; keep a margin.
MAX_SOCKET_PATH = 100
PRIORITY = {"node": 10, "pool": 20, "proxy": 20, "cache": 25, "dashboard": 30}


class SupervisorDown(Exception):
    """supervisord is not running for this box (no socket, or nobody listening)."""


def socket_path(box: Path) -> Path:
    """BOX/run/supervisor.sock, or /tmp/stack-<hash>.sock when BOX is too deep for AF_UNIX."""
    path = box / "run" / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(box).encode()).hexdigest()[:12]
    return Path(f"/tmp/stack-{digest}.sock")


def module_for(name: str) -> str:
    """The python module that implements a program name (workers share one module)."""
    base = "worker" if name.startswith("worker-") else name
    return f"stacklib.services.{base}"


def command_for(box: Path, name: str, settings: dict[str, Any], tier: str) -> list[str]:
    """argv of a program; the pool gets its tier as a flag so it reports what it runs with."""
    argv = [sys.executable, "-m", module_for(name), "--box", str(box), "--name", name]
    if name == "pool":
        argv += ["--tier", tier]
    return argv


def _q(value: str) -> str:
    """Shell-style quoting, which is how supervisord splits `command=`."""
    return shlex.quote(value)


def render_conf(box: Path, programs: dict[str, tuple[list[str], str]]) -> str:
    """supervisord.conf text; `programs` maps name -> (argv, settings hash)."""
    sock = socket_path(box)
    lines = [
        "; rendered by stackctl apply; edit config.json instead",
        "[unix_http_server]",
        f"file={sock}",
        "chmod=0700",
        "[supervisord]",
        f"logfile={box / 'logs' / 'supervisord.log'}",
        "logfile_maxbytes=1MB",
        "logfile_backups=1",
        f"pidfile={box / 'run' / 'supervisord.pid'}",
        f"childlogdir={box / 'logs'}",
        f"directory={box}",
        "identifier=stack",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
    ]
    for name, (argv, digest) in programs.items():
        lines += _program(box, name, argv, digest)
    # supervisord expands %(name)s everywhere; nothing here is meant to be expanded.
    return "\n".join(lines).replace("%", "%%") + "\n"


def _program(box: Path, name: str, argv: list[str], digest: str) -> list[str]:
    """One [program:x]: no autorestart (like compose without a restart policy), quick stop."""
    env = f'PYTHONPATH="{box}",PYTHONUNBUFFERED="1",STACK_SETTINGS_HASH="{digest}"'
    return [
        f"[program:{name}]",
        "command=" + " ".join(_q(a) for a in argv),
        f"directory={box}",
        f"environment={env}",
        "autostart=true",
        "autorestart=false",
        "startsecs=0",
        "startretries=0",
        "stopwaitsecs=2",
        f"priority={PRIORITY.get(name, 40)}",
        f"stdout_logfile={box / 'logs' / f'{name}.log'}",
        "stdout_logfile_maxbytes=1MB",
        "stdout_logfile_backups=1",
        "redirect_stderr=true",
    ]


def conf_programs(text: str) -> list[str]:
    """Program names in a rendered supervisord.conf (to tell re-added from new services)."""
    return [
        line.strip()[len("[program:") : -1]
        for line in text.splitlines()
        if line.strip().startswith("[program:")
    ]


class Supervisor:
    """Thin XML-RPC client for this box's supervisord."""

    def __init__(self, box: Path) -> None:
        self.box = box
        self.sock = socket_path(box)
        self.rpc: Any = self._connect()

    def _connect(self) -> Any:
        """A fresh client: SupervisorTransport keeps one connection, unusable after a failure."""
        transport = SupervisorTransport("", "", f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def running(self) -> bool:
        """True when supervisord answers on this box's socket."""
        try:
            return bool(self.rpc.supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
            self.rpc = self._connect()
            return False

    def processes(self) -> dict[str, dict[str, Any]]:
        """Process info by name; raises SupervisorDown when supervisord is not there."""
        try:
            infos = self.rpc.supervisor.getAllProcessInfo()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorDown(str(exc)) from None
        return {info["name"]: info for info in infos}

    def call(self, method: str, *args: Any, ok_faults: tuple[str, ...] = ()) -> Any:
        """Call supervisor.METHOD; faults named in ok_faults (e.g. NOT_RUNNING) are ignored."""
        try:
            return getattr(self.rpc.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            if any(name in fault.faultString for name in ok_faults):
                return None
            raise

    def stop_many(self, names: list[str]) -> None:
        """Stop these programs together: SIGTERM to all at once, then let supervisord settle.

        supervisord alone stops one group at a time and reaps once a second; a box would take
        seconds per service to go down.
        """
        infos = self.processes()
        targets = [n for n in names if infos.get(n, {}).get("statename") == "RUNNING"]
        for name in targets:
            self.call("signalProcess", name, "TERM", ok_faults=("NOT_RUNNING", "BAD_NAME"))
        deadline = time.monotonic() + 3
        while targets and time.monotonic() < deadline:
            time.sleep(0.05)
            infos = self.processes()
            targets = [n for n in targets if infos.get(n, {}).get("statename") == "RUNNING"]
        for name in names:  # a frozen (SIGSTOP) process gets supervisord's SIGKILL here
            self.call("stopProcess", name, True, ok_faults=("NOT_RUNNING", "BAD_NAME"))

    def start_daemon(self) -> None:
        """Start supervisord for this box and wait until it answers."""
        conf = self.box / "run" / "supervisord.conf"
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            cwd=self.box,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"supervisord failed to start: {proc.stderr.strip()[-300:]}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.05)
        raise RuntimeError("supervisord did not come up within 15 s")

    def shutdown(self) -> None:
        """Stop supervisord (it stops every program first) and wait for its pid to go away."""
        pid = self.pid()
        with contextlib.suppress(OSError, xmlrpc.client.Fault, http.client.HTTPException):
            self.stop_many(list(self.processes()))
            self.rpc.supervisor.shutdown()
        deadline = time.monotonic() + 15
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)

    def pid(self) -> int | None:
        """supervisord's pid from its pidfile, if any."""
        try:
            return int((self.box / "run" / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
