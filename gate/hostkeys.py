"""Host keys: verified against known_hosts, recorded only when the user says so.

An unknown key is refused with its fingerprint unless `--accept-new-host-key` was given,
and then it is written to the project's known_hosts file; a changed key is always refused
naming both fingerprints. Nothing is ever added silently.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import paramiko

from gate.errors import HostKeyError, UsageError

ACCEPT_FLAG = "--accept-new-host-key"


def fingerprint(key: paramiko.PKey) -> str:
    """A key as OpenSSH prints it: `ED25519 SHA256:<unpadded base64>`."""
    digest = hashlib.sha256(key.asbytes()).digest()
    encoded = base64.b64encode(digest).decode("ascii").rstrip("=")
    return f"{_key_type(key)} SHA256:{encoded}"


def _key_type(key: paramiko.PKey) -> str:
    name = key.get_name().removeprefix("ssh-")
    return "ECDSA" if name.startswith("ecdsa") else name.upper()


class RecordingHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or (opted in) record them in the project known_hosts."""

    def __init__(self, record_to: Path, *, accept_new: bool) -> None:
        self.record_to = record_to
        self.accept_new = accept_new

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise HostKeyError(
                f"unknown host key for {_display_name(hostname)}: {fingerprint(key)}; "
                f"re-run with {ACCEPT_FLAG} to trust and record it"
            )
        self.record(hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)

    def record(self, hostname: str, key: paramiko.PKey) -> None:
        """Append one OpenSSH-format line, creating the file (and its folder) if needed."""
        self.record_to.parent.mkdir(parents=True, exist_ok=True)
        with self.record_to.open("a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def _display_name(known_hosts_entry: str) -> str:
    """`[h]:p` -> `h:p`, `h` -> `h:22`: how the error names a host."""
    if known_hosts_entry.startswith("["):
        host, _, port = known_hosts_entry[1:].partition("]:")
        return f"{host}:{port}"
    return f"{known_hosts_entry}:22"


def load_known_hosts(client: paramiko.SSHClient, paths: list[Path]) -> None:
    for path in paths:
        if not path.is_file():
            continue
        try:
            client.load_system_host_keys(str(path))
        except (OSError, paramiko.SSHException) as exc:
            raise UsageError(f"{path}: cannot read known_hosts: {exc}") from exc


def changed_key_message(where: str, exc: paramiko.BadHostKeyException, files: list[Path]) -> str:
    listed = ", ".join(str(path) for path in files if path.is_file())
    return (
        f"host key for {where} CHANGED: expected {fingerprint(exc.expected_key)}, "
        f"offered {fingerprint(exc.key)}; if the change is legitimate, remove the old "
        f"entry from {listed} (ssh-keygen -R) and re-run"
    )
