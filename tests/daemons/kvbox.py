"""Helpers for the kvfront stack's own tests: real daemons in tmp boxes, driven through kvctl.

Waiting always polls a real signal (a status exit code, an HTTP answer, a redis reply) up to
a deadline on the monotonic clock; a timeout fails with the last value seen.

Secrets never reach an assertion message: helpers take the *name* of a secret (`"ADMIN_TOKEN"`)
and read its value themselves, and comparisons go through sha256 digests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

KV_SRC = Path(__file__).resolve().parents[2] / "examples" / "kvfront"
STATUS_POLL_S = 0.2
DAEMON_EXES = {"nginx", "redis-server", "redis-check-rdb", "webdis"}
T = TypeVar("T")

# The tests import kvlib from the source tree for its pure functions.
if str(KV_SRC) not in sys.path:
    sys.path.insert(0, str(KV_SRC))


def wait_for(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], bool],
    timeout: float = 20,
    interval: float = 0.1,
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


def digest(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def tree_hashes(root: Path, skip: tuple[str, ...] = ("logs", "kvlib", "data")) -> dict[str, str]:
    """Digest of every file under root but logs, code and redis data: equal = untouched."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or not path.is_file():
            continue
        out[str(rel)] = digest(path.read_bytes())
    return out


def install(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(KV_SRC / "install.sh"), str(path), "--python", sys.executable, "--no-apt", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


class Box:
    """One installed kvfront box and the probes the tests read it with."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # --- kvctl -------------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / "kvctl"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def status(self) -> tuple[int, dict[str, Any]]:
        proc = self.ctl("status", "--json")
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}

    def pids(self) -> dict[str, Any]:
        return {s["name"]: s["pid"] for s in self.status()[1].get("services", [])}

    def states(self) -> dict[str, str]:
        return {s["name"]: s["state"] for s in self.status()[1].get("services", [])}

    def wait_healthy(self, timeout: float = 20) -> dict[str, Any]:
        what = f"{self.path.name} healthy"
        return wait_for(what, self.status, lambda s: s[0] == 0, timeout, STATUS_POLL_S)[1]

    def wait_state(
        self, name: str, state: str, code: int = 1, timeout: float = 20
    ) -> dict[str, Any]:
        """Poll status until service `name` is in `state` and status exits `code`; the doc."""
        return wait_for(
            f"{name} {state} (status exit {code})",
            self.status,
            lambda s: s[0] == code and _state(s[1], name) == state,
            timeout,
            STATUS_POLL_S,
        )[1]

    # --- files -------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.path / "config.json").read_text()))

    def edit(self, **changes: dict[str, Any]) -> None:
        """edit(redis={"maxmemory_policy": "allkeys-lru"}) merges keys into sections."""
        cfg = self.config()
        for section, values in changes.items():
            cfg.setdefault(section, {}).update(values)
        (self.path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    def env_keys(self) -> list[str]:
        return sorted(self._env())

    def secret_digest(self, key: str) -> str:
        return digest(self._env()[key])

    def file_holds_secret(self, rel: str, key: str) -> bool:
        return self._env()[key] in (self.path / rel).read_text()

    def any_file_holds_secret(self, folder: str, key: str) -> list[str]:
        """Files under BOX/folder whose bytes contain the secret (their names only)."""
        needle = self._env()[key].encode()
        return [
            str(p.relative_to(self.path))
            for p in (self.path / folder).rglob("*")
            if p.is_file() and needle in p.read_bytes()
        ]

    def text_holds_secret(self, text: str) -> list[str]:
        return [k for k, v in self._env().items() if v and v in text]

    def _env(self) -> dict[str, str]:
        lines = (self.path / ".env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    # --- the stack's own probes --------------------------------------------------------------
    def port(self, section: str) -> int:
        return int(self.config()[section]["port"])

    def front(self, path: str, auth: str = "", header: str = "", tls: bool | None = None) -> Any:
        """(HTTP code, JSON or text) from the front; `auth` names the .env key sent as bearer
        token, `header` is a literal Authorization value (never a secret)."""
        tls = self.config()["front"]["tls"] if tls is None else tls
        url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port('front')}{path}"
        req = urllib.request.Request(url)
        if auth:
            req.add_header("Authorization", f"Bearer {self._env()[auth]}")
        elif header:
            req.add_header("Authorization", header)
        return http_get(req, cafile=self.path / "secrets" / "front.crt" if tls else None)

    def redis_cli(self, *args: str, replica: bool = False, auth: bool = True) -> str:
        """redis-cli itself (the raw source), the password in REDISCLI_AUTH, never in argv."""
        port = self.port("replica" if replica else "redis")
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if auth:
            env["REDISCLI_AUTH"] = self._env()["REDIS_PASSWORD"]
        proc = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return (proc.stdout + proc.stderr).strip()

    def config_get(self, key: str) -> str:
        """`CONFIG GET key` through redis-cli: the value line."""
        lines = self.redis_cli("CONFIG", "GET", key).splitlines()
        return lines[1] if len(lines) == 2 and lines[0] == key else f"unexpected: {lines!r}"


def http_get(req: urllib.request.Request | str, cafile: Path | None = None) -> Any:
    """(code, JSON body, or text when not JSON); (None, error) when nothing answered."""
    ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=3, context=ctx) as resp:
            return resp.status, _body(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, _body(exc.read()), dict(exc.headers)
    except (OSError, ValueError) as exc:
        return None, f"error: {exc}", {}


def _body(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _state(doc: dict[str, Any], name: str) -> str | None:
    return next((s["state"] for s in doc.get("services", []) if s["name"] == name), None)


# --- processes and sockets -------------------------------------------------------------------
def box_processes(box: Path) -> dict[int, str]:
    """pid -> exe name of every live process of the box: a daemon (by cmdline or cwd inside
    the box) or anything whose command line names a path in the box (supervisord)."""
    marker = str(box)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            exe = os.path.basename(os.readlink(entry / "exe"))
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        words = " ".join(words).split()
        named = any(w == marker or w.startswith(marker + "/") for w in words)
        inside = cwd == marker or cwd.startswith(marker + "/")
        if named or (exe in DAEMON_EXES and inside):
            found[int(entry.name)] = exe
    return found


def kill_leftovers(box: Path) -> None:
    for pid in box_processes(box):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def listening(pids: set[int] | None = None) -> set[tuple[str, int]]:
    """(address, port) of LISTEN TCP sockets (IPv4 and IPv6), optionally only of `pids`."""
    inodes: set[str] | None = None
    if pids is not None:
        inodes = set()
        for pid in pids:
            with contextlib.suppress(OSError):
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    with contextlib.suppress(OSError):
                        link = os.readlink(fd)
                        if link.startswith("socket:["):
                            inodes.add(link[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or (inodes is not None and fields[9] not in inodes):
                continue
            addr_hex, port_hex = fields[1].split(":")
            found.add((_addr(addr_hex), int(port_hex, 16)))
    return found


def _addr(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b.hex() for b in words)
