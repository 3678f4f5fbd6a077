"""Helpers for the sample stack's own tests: drive real boxes in tmp dirs through stackctl.

Waiting is always polling a real signal (status exit code, an HTTP answer, a pid) up to a
deadline; a timeout fails with the last value seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

STACK_SRC = Path(__file__).resolve().parents[2] / "examples" / "stack"
TIME_SCALE = 0.05
STATUS_POLL_S = 0.5
T = TypeVar("T")

# The tests import stacklib from the source tree for its pure functions.
sys.path.insert(0, str(STACK_SRC))


def wait_for(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], bool],
    timeout: float = 30,
    interval: float = 0.2,
) -> T:
    """Poll `probe` until `ok(value)`; on timeout fail showing the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path, skip: tuple[str, ...] = ("logs", "stacklib")) -> dict[str, str]:
    """Hash of every file under root (minus logs and code): 'nothing changed' means equal."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file() or path.name.endswith(".heartbeat"):
            continue
        if rel.parts[0] == "data" and path.name == "chain.json":
            continue  # the node's own progress, not configuration
        out[str(rel)] = file_hash(path)
    return out


class Box:
    """One installed box and helpers to drive it through its stackctl."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / "stackctl"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def status(self) -> tuple[int, dict[str, Any]]:
        proc = self.ctl("status", "--json")
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}

    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "config.json").read_text()))

    def edit(self, **changes: dict[str, Any]) -> None:
        """edit(pool={"tier": "nano"}) merges keys into config.json sections."""
        cfg = self.config()
        for section, values in changes.items():
            cfg.setdefault(section, {}).update(values)
        (self.path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    def env(self) -> dict[str, str]:
        lines = (self.path / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def port(self, section: str, key: str = "port") -> int:
        return int(self.config()[section][key])

    def get(self, section: str, path: str, key: str = "port", token: str = "") -> Any:
        """GET http://127.0.0.1:PORT/path as JSON, or the error as a string."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port(section, key)}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError) as exc:
            return f"error: {exc}"

    def api_state(self) -> Any:
        return self.get("dashboard", "/api/state", token=self.env()["DASHBOARD_TOKEN"])

    def pids(self) -> dict[str, tuple[Any, Any]]:
        _, doc = self.status()
        return {n: (s["pid"], s["started"]) for n, s in doc.get("services", {}).items()}

    # Each status run is a python process (~0.3 s CPU): poll it gently.
    def wait_healthy(self, timeout: float = 45) -> dict[str, Any]:
        what = f"{self.path.name} healthy"
        return wait_for(what, self.status, lambda s: s[0] == 0, timeout, STATUS_POLL_S)[1]

    def wait_exit(self, code: int, timeout: float = 45) -> dict[str, Any]:
        what = f"{self.path.name} status exit {code}"
        return wait_for(what, self.status, lambda s: s[0] == code, timeout, STATUS_POLL_S)[1]


def install(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(STACK_SRC / "install.sh"), str(path), "--time-scale", str(TIME_SCALE), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def kill_leftovers(box: Path) -> None:
    """SIGKILL any process whose command line names this box (supervisord and services)."""
    marker = str(box).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker + b"\0" in cmdline or marker + b"/" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def listen_addresses(port: int) -> set[str]:
    """Local addresses with a LISTEN socket on `port`, from /proc/net/tcp (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        addr_hex, port_hex = fields[1].split(":")
        if fields[3] == "0A" and int(port_hex, 16) == port:
            octets = bytes.fromhex(addr_hex)[::-1]
            found.add(".".join(str(b) for b in octets))
    return found


def services_running_in(box: Path) -> set[str]:
    """Service modules of live processes started for this box (from /proc cmdlines)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "--box" in argv and argv[argv.index("--box") + 1] == str(box) and "--name" in argv:
            found.add(argv[argv.index("--name") + 1])
    return found
