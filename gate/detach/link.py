"""The runner's line to a box for a detached run.

Commands go through the gate's own SSH target (host keys verified, the inventory's
reconnect budget); bytes (the wheelhouse out, results/ back) go as tar streams over their
own exec channels on the same connection, so no SFTP subsystem is needed on the box.
Every answer of the box-side helper (gate/detach/boxside.py) is one JSON line.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from gate.errormap import LINK_ERRORS, lost
from gate.errors import PreflightError, Unreachable
from gate.result import Outcome
from gate.target import SSHTarget, Target, quote

READ_CHUNK = 256 * 1024
HELPER = ".gate/detached/boxside.py"
COMMAND_NOT_FOUND = 127


class HelperFailed(Exception):
    """The box-side helper answered with an error (its one line says why)."""


class BoxLink:
    """One box, one stack dir: the helper's verbs, and tar streams both ways."""

    def __init__(self, target: Target, stack: str) -> None:
        self.target = target
        self.stack = stack
        """The stack dir as the box resolves it (absolute after `prepare`)."""

    @property
    def helper(self) -> str:
        return f"{self.stack}/{HELPER}"

    def install_helper(self) -> None:
        """Write this gate's box-side helper into <stack>/.gate/detached/ (mode 0700 dirs)."""
        source = resources.files("gate.detach").joinpath("boxside.py").read_text()
        script = (
            f"cd {quote(self.stack)} && umask 077 && mkdir -p .gate/detached && "
            f"chmod 700 .gate .gate/detached && cat > {HELPER}.tmp && mv {HELPER}.tmp {HELPER}"
        )
        result = self.target.run(script, timeout=30, stdin=source)
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"could not reach the box: {result.reason}")
        if result.exit_code != 0:
            said = result.stderr.strip().splitlines()
            raise PreflightError(
                f"cannot use the stack dir {self.stack!r} on the box: "
                f"{said[-1] if said else f'exit {result.exit_code}'}"
            )

    def has_runs(self) -> bool:
        """Whether any detached run was ever started under the stack dir (read-only: an
        --attach or --stop with none is refused before the helper is written)."""
        latest = f"{self.stack}/.gate/detached/latest.json"
        result = self.target.run(f"test -e {quote(latest)} && echo yes || echo no", timeout=30)
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"could not reach the box: {result.reason}")
        return result.stdout.strip() == "yes"

    def call(self, verb: str, *args: str, timeout: float = 60) -> dict[str, Any]:
        """Run one helper verb with the box's python3; its JSON answer."""
        result = self.target.run(quote("python3", self.helper, verb, *args), timeout=timeout)
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"could not ask the box ({verb}): {result.reason}")
        if result.exit_code == COMMAND_NOT_FOUND:
            raise PreflightError("the box has no python3 (detached runs need it, as gate does)")
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise HelperFailed(
                f"{verb}: exit {result.exit_code}: {said[-1] if said else 'no answer'}"
            ) from exc
        if not isinstance(answer, dict):
            raise HelperFailed(f"{verb}: not a JSON object: {answer!r}")
        if "error" in answer:
            raise HelperFailed(f"{verb}: {answer['error']}")
        return answer

    def mkdir(self, path: str) -> None:
        """`mkdir -p` on the box, private (umask 077)."""
        result = self.target.run(f"umask 077 && mkdir -p {quote(path)}", timeout=30)
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"could not make {path} on the box: {result.reason}")
        if result.exit_code != 0:
            raise PreflightError(f"cannot make {path} on the box: {result.stderr.strip()}")

    def put_text(self, path: str, text: str) -> None:
        """A private file (0600) on the box, written whole then renamed into place."""
        script = f"umask 077 && cat > {quote(path + '.tmp')} && mv {quote(path + '.tmp')} " + quote(
            path
        )
        result = self.target.run(script, timeout=30, stdin=text)
        if result.outcome is Outcome.UNREACHABLE:
            raise Unreachable(f"could not write {path} on the box: {result.reason}")
        if result.exit_code != 0:
            raise HelperFailed(f"cannot write {path} on the box: {result.stderr.strip()}")

    def send_tar(self, data: bytes, dest: str, timeout: float = 600) -> None:
        """Unpack a tar stream into `dest` on the box (created, 0700)."""
        command = f"umask 077 && mkdir -p {quote(dest)} && tar -C {quote(dest)} -xf -"
        code, _out, err = self._exec_bytes(command, data, timeout)
        if code != 0:
            raise HelperFailed(f"unpacking into {dest} on the box failed (exit {code}): {err}")

    def fetch_tar(self, source: str, timeout: float = 600) -> bytes:
        """`source` on the box as a tar stream (its contents, relative to it)."""
        code, out, err = self._exec_bytes(f"tar -C {quote(source)} -cf - .", None, timeout)
        if code != 0:
            raise HelperFailed(f"packing {source} on the box failed (exit {code}): {err}")
        return out

    def _exec_bytes(
        self, command: str, data: bytes | None, timeout: float
    ) -> tuple[int, bytes, str]:
        """One exec channel: send `data` as stdin, read stdout to the end, the exit code."""
        if not isinstance(self.target, SSHTarget):
            raise PreflightError("detached runs reach their box over SSH only")
        self.target.open()
        try:
            channel = self.target.transport.open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if data:
                channel.sendall(data)
            channel.shutdown_write()
            chunks = []
            while chunk := channel.recv(READ_CHUNK):
                chunks.append(chunk)
            code = channel.recv_exit_status()
            err = channel.recv_stderr(64 * 1024).decode(errors="replace").strip()
            channel.close()
        except LINK_ERRORS as exc:
            raise Unreachable(lost(exc)) from exc
        return code, b"".join(chunks), err[-300:]
