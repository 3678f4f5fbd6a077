"""The one place third-party errors (paramiko, invoke, the socket layer) become gate's.

    connect_error(exc, ...)   a failed connect -> HostKeyError / UsageError (2) / Unreachable (3)
    LINK_ERRORS               what a dropped link raises mid-command: caught as could-not-ask
    lost(exc)                 the one-line reason a command could not be asked

Everything else in gate/ speaks only gate.errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import paramiko
from invoke.exceptions import ThreadException

from gate.errors import GateError, HostKeyError, Unreachable, UsageError
from gate.hostkeys import changed_key_message

LINK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    paramiko.SSHException,
    ThreadException,
)

_NO_AUTH = "No authentication methods available"

# paramiko's transport thread logs a failed handshake's traceback (e.g. a reset during the
# banner on a reconnect); with no handler Python prints it on stderr, into the console. The
# failure itself reaches the gate as an exception and is mapped below.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def connect_error(
    exc: BaseException, *, where: str, user: str, known_hosts: list[Path], timeout: float
) -> GateError | None:
    """The gate error a failed SSH connect means, or None for an error that is not ours."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyError(changed_key_message(where, exc, known_hosts))
    if isinstance(exc, paramiko.AuthenticationException) or _NO_AUTH in str(exc):
        return UsageError(
            f"SSH authentication failed for {user}@{where}: {first_line(exc)} "
            "(set `identity` in the inventory, or load a key into ssh-agent)"
        )
    if isinstance(exc, TimeoutError):
        return Unreachable(f"cannot connect to {where}: timed out after {timeout:g}s")
    if isinstance(exc, LINK_ERRORS):
        return Unreachable(f"cannot connect to {where}: {first_line(exc)}")
    return None


def lost(exc: BaseException) -> str:
    """Why a command could not be asked, in one line."""
    return f"connection lost: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
