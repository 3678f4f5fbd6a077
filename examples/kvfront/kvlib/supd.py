"""One supervisord per box: its config, its unix socket, and an XML-RPC client over it.

Every program runs in its own process group (supervisord does that); stop, kill and the
teardown signal the whole group, so no nginx worker outlives its master.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport  # type: ignore[import-untyped]

MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes with the NUL
STOP_WAIT_S = 5


class SupervisorDown(Exception):
    """supervisord is not running for this box (no socket, or nobody listening)."""


def socket_path(box: Path) -> Path:
    """BOX/run/supervisor.sock, or /tmp/kvfront-<hash>.sock when BOX is too deep for AF_UNIX."""
    path = box / "run" / "supervisor.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(f"/tmp/kvfront-{hashlib.sha256(str(box).encode()).hexdigest()[:12]}.sock")


def render_conf(box: Path, programs: dict[str, dict[str, Any]]) -> str:
    """supervisord.conf; programs: name -> {argv, directory, hash, priority}."""
    sock = socket_path(box)
    lines = [
        "; rendered by kvctl apply; edit config.json instead",
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
        "identifier=kvfront",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{sock}",
    ]
    for name, prog in programs.items():
        env = f'KVFRONT_BOX="{box}",KVFRONT_CONFIG_HASH="{prog["hash"]}"'
        lines += [
            f"[program:{name}]",
            "command=" + " ".join(prog["argv"]),
            f"directory={prog['directory']}",
            f"environment={env}",
            "autostart=true",
            "autorestart=false",  # a killed daemon stays down, like compose without a policy
            "startsecs=0",
            "startretries=0",
            f"stopwaitsecs={STOP_WAIT_S}",
            "stopasgroup=true",
            "killasgroup=true",
            f"priority={prog['priority']}",
            f"stdout_logfile={box / 'logs' / f'{name}.log'}",
            "stdout_logfile_maxbytes=1MB",
            "stdout_logfile_backups=1",
            "redirect_stderr=true",
        ]
    return "\n".join(lines).replace("%", "%%") + "\n"


def conf_hashes(text: str) -> dict[str, str]:
    """program name -> KVFRONT_CONFIG_HASH in a rendered supervisord.conf."""
    out: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("[program:"):
            name = line[len("[program:") : -1]
            out[name] = ""
        elif name and line.startswith("environment="):
            out[name] = line.split('KVFRONT_CONFIG_HASH="', 1)[-1].rstrip('"')
    return out


class Supervisor:
    """Thin XML-RPC client for this box's supervisord."""

    def __init__(self, box: Path) -> None:
        self.box = box
        self.sock = socket_path(box)
        self.rpc: Any = self._connect()

    def _connect(self) -> Any:
        transport = SupervisorTransport("", "", f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def running(self) -> bool:
        try:
            return bool(self.rpc.supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.ProtocolError, http.client.HTTPException):
            self.rpc = self._connect()
            return False

    def processes(self) -> dict[str, dict[str, Any]]:
        """Process info by name; SupervisorDown when nobody listens on the socket."""
        try:
            infos = self.rpc.supervisor.getAllProcessInfo()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise SupervisorDown(str(exc)) from None
        return {info["name"]: info for info in infos}

    def call(self, method: str, *args: Any, ok_faults: tuple[str, ...] = ()) -> Any:
        """supervisor.METHOD(*args); faults named in ok_faults (e.g. NOT_RUNNING) are ignored."""
        try:
            return getattr(self.rpc.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            if any(name in fault.faultString for name in ok_faults):
                return None
            raise

    def stop_many(self, names: list[str]) -> None:
        """Stop the named programs together and wait until their whole groups are gone.

        stopProcess(wait=True) stops one program at a time; asking for all without waiting
        and polling is much faster, and supervisord still records them as STOPPED.
        """
        infos = self.processes()
        live = {n: infos[n]["pid"] for n in names if infos.get(n, {}).get("pid")}
        for name, pid in live.items():
            self.call("stopProcess", name, False, ok_faults=("NOT_RUNNING", "BAD_NAME"))
            _signal_group(pid, signal.SIGCONT)  # a frozen group must wake to see its SIGTERM
        # supervisord sends SIGKILL to a group that outlives stopwaitsecs
        deadline = time.monotonic() + STOP_WAIT_S + 5
        while time.monotonic() < deadline:
            busy = {n for n, info in self.processes().items() if n in live
                    and info["statename"] in ("STARTING", "RUNNING", "STOPPING")}  # fmt: skip
            if not busy and not any(_group_alive(pid) for pid in live.values()):
                return
            time.sleep(0.05)

    def start_daemon(self) -> None:
        """Start this box's supervisord (it forks away) and wait until it answers."""
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c",
             str(self.box / "run" / "supervisord.conf")],
            cwd=self.box, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=30, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"supervisord failed to start: {proc.stderr.strip()[-300:]}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.running():
                return
            time.sleep(0.05)
        raise RuntimeError("supervisord did not answer within 15 s")

    def shutdown(self) -> None:
        """Stop every program, then supervisord, and wait for its pid to go away."""
        pid = self.pid()
        with contextlib.suppress(OSError, xmlrpc.client.Fault, http.client.HTTPException,
                                 SupervisorDown):  # fmt: skip
            self.stop_many(list(self.processes()))
            self.rpc.supervisor.shutdown()
        deadline = time.monotonic() + 15
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def pid(self) -> int | None:
        """supervisord's pid from its pidfile, only while that pid is still this box's
        supervisord (a stale pidfile must not name a stranger to kill)."""
        try:
            pid = int((self.box / "run" / "supervisord.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        conf = str(self.box / "run" / "supervisord.conf").encode()
        return pid if conf in cmdline else None


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader (not yet reaped by supervisord) still counts; check the group's members.
    return any(_pgid_of(p) == pgid and not _zombie(p) for p in _pids())


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)
