"""A real, throwaway OpenSSH server on 127.0.0.1 for integration tests.

Each `Sshd` owns a temp folder with its own host key, client key, authorized_keys,
sshd_config and log, runs `/usr/sbin/sshd -D -e` as a child, and can be killed
(dropping live connections), restarted, or restarted under a new host key.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_DEADLINE = 10.0
PR_SET_PDEATHSIG = 1


class SshdUnavailable(RuntimeError):
    """sshd is not installed or cannot start: the message says how to fix it."""


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str) -> None:
    """A fresh passphrase-less ed25519 key pair at `path` and `path.pub`."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


class Sshd:
    """One sshd: start it, stop it, kill it mid-session, rotate its host key."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.user = getpass.getuser()
        self.identity = workdir / "client_key"
        self.host_key = workdir / "host_key"
        self.known_hosts = workdir / "known_hosts"
        self.config = workdir / "sshd_config"
        self.log = workdir / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None
        keygen(self.identity, "gate-test-client")
        keygen(self.host_key, "gate-test-host")
        shutil.copy(f"{self.identity}.pub", workdir / "authorized_keys")
        self._write_config()
        self._write_known_hosts()

    # --- facts the tests assert against -------------------------------------------------

    @property
    def host_public_key(self) -> str:
        return Path(f"{self.host_key}.pub").read_text().strip()

    @property
    def fingerprint(self) -> str:
        """The host key's fingerprint, from `ssh-keygen -l` itself: `ED25519 SHA256:...`."""
        listing = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{self.host_key}.pub"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        # "256 SHA256:xxxx comment (ED25519)"
        return f"{listing[-1].strip('()')} {listing[1]}"

    @property
    def known_hosts_line(self) -> str:
        key_type, blob = self.host_public_key.split()[:2]
        return f"[{self.host}]:{self.port} {key_type} {blob}\n"

    def inventory_fields(self) -> dict[str, Any]:
        """What an inventory file needs to reach this server (see `write_inventory`)."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity": str(self.identity),
            "known_hosts": str(self.known_hosts),
        }

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run sshd in the foreground and return once it speaks SSH on its port."""
        _ensure_privsep_dir()
        log = self.log.open("ab")
        self._process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_for_banner()

    def stop(self) -> None:
        """Teardown: the same as kill (nothing here needs a graceful exit); idempotent."""
        self.kill()

    def kill(self) -> None:
        """SIGKILL sshd and its session children, so live connections drop at once."""
        self._signal_tree(signal.SIGKILL)

    def drop_links(self) -> None:
        """SIGKILL only the sshd processes (listener and sessions): every connection drops.
        The listener is stopped first, so a client reconnecting at once (a persistent
        channel notices the drop within milliseconds) cannot slip a new session in.

        The commands they ran are left to end on their own, as a real dropped link leaves
        them (a SIGKILLed login shell can leave a half-done dotfile step behind).
        """
        if self._process is None:
            return
        listener = self._process.pid
        os.kill(listener, signal.SIGSTOP)  # first: no new session can start while we kill
        for pid in [*_descendants(listener), listener]:
            if _command_name(pid).startswith("sshd"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def restart_with_new_host_key(self) -> str:
        """Rotate the host key and restart; returns the old fingerprint."""
        old = self.fingerprint
        self.stop()
        keygen(self.host_key, "gate-test-host-rotated")
        self._write_known_hosts()
        self.start()
        return old

    # --- internals --------------------------------------------------------------------------

    def _write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
                    f"PidFile {self.workdir / 'sshd.pid'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    # The test user's own login shell runs every command; Debian's bash
                    # sources ~/.bashrc for non-interactive commands sent over SSH unless
                    # it is a nested shell (SHLVL >= 2). Starting at SHLVL=1 keeps the
                    # runner's dotfiles out: a CI/dev ~/.bashrc running `pyenv init`
                    # (a `pyenv rehash` under a machine-wide lock) made each command
                    # cost ~0.5 s, 7+ s under parallel runs, and leaked rehash errors
                    # into stderr.
                    "SetEnv SHLVL=1",
                    "",
                ]
            )
        )

    def _write_known_hosts(self) -> None:
        self.known_hosts.write_text(self.known_hosts_line)

    def _wait_for_banner(self) -> None:
        """Poll until the port answers with an SSH banner; fail with sshd's log if it died."""
        deadline = time.monotonic() + START_DEADLINE
        last_error = "no attempt"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SshdUnavailable(f"sshd exited with {self._process.returncode}: {self._log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.02)  # sleep-ok: the poll interval of a wait on a real signal
        raise SshdUnavailable(f"sshd did not answer on {self.port}: {last_error}; {self._log()}")

    def _log(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _signal_tree(self, sig: signal.Signals) -> None:
        """Signal sshd and all its descendants, found before any of them is reparented."""
        if self._process is None:
            return
        for pid in [*_descendants(self._process.pid), self._process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self._process.wait(timeout=10)
        self._process = None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _die_with_parent() -> None:
    """Linux: SIGKILL sshd if pytest itself is killed, so no listener outlives the run."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _ensure_privsep_dir() -> None:
    if not SSHD.exists():
        raise SshdUnavailable(
            f"{SSHD} is missing: the integration tests need a real OpenSSH server; "
            "run `make sysdeps` (it apt-get installs openssh-server)"
        )
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise SshdUnavailable(f"cannot create {PRIVSEP_DIR} for sshd: {exc}") from exc


def _descendants(root: int) -> list[int]:
    """Every live process below `root`, children first, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def write_inventory(directory: Path, name: str, **fields: Any) -> Path:
    """Write inventory/NAME.toml from scalar fields and tables (dicts); returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    lines, tables = [], []
    for key, value in fields.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path = directory / f"{name}.toml"
    path.write_text("\n".join(lines + tables) + "\n")
    return path
