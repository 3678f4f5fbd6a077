"""The exception tree, and the exit code each branch ends a run with.

    GateError                      any failure the gate itself reports (exit 1 unless below)
    ├── UsageError          (2)    bad flags, inventory, matrix, scenario names; nothing touched
    │   └── HostKeyError    (2)    unknown or changed host key; names the fingerprint
    ├── PreflightError      (2)    the box lacks the stack dir, control command or a tool
    ├── BackupRefused       (2)    --safety-backup's archive is not verified: the destructive
    │                              phases are refused (the box is restored as ever)
    ├── NotRecovered               a healed fault left the stack broken: no later phase runs
    │                              on it (the box is restored as ever)
    ├── Unreachable         (3)    could not ask: connection lost, timeout, rc 255
    │   └── LockLost        (3)    the box lock could not be re-proven after a reconnect;
    │                              nothing more is sent (4 if the box was left dirty)
    ├── BoxLocked          (75)    another run holds the box's lock
    └── BoxDirty            (4)    the box is not as the baseline says and could not be proven
                                   restored, or a previous run left it mid-flight

Third-party errors (paramiko, invoke, socket) are mapped to these in one module,
gate/errormap.py, with `raise ... from exc`.
"""

from __future__ import annotations


class ExitCode:
    """Documented process exit codes (docs/verdicts.md)."""

    PASSED = 0
    FAILED = 1
    USAGE = 2
    INCONCLUSIVE = 3
    DIRTY = 4
    LOCKED = 75
    SIGINT = 130
    SIGTERM = 143
    SIGHUP = 129


class GateError(Exception):
    """Base of every error the gate reports as one clear line."""

    exit_code = ExitCode.FAILED


class UsageError(GateError):
    """Bad input: flags, inventory, matrix. Raised before any side effect."""

    exit_code = ExitCode.USAGE


class HostKeyError(UsageError):
    """The box's host key is unknown or differs from the recorded one."""


class PreflightError(GateError):
    """The box is reachable but cannot be gated (no stack dir, no control command, no tool)."""

    exit_code = ExitCode.USAGE


class BackupRefused(GateError):
    """The safety backup could not be verified: no destructive phase may run."""

    exit_code = ExitCode.USAGE


class NotRecovered(GateError):
    """A fault was healed and the stack did not recover: later phases would only wait out
    their deadlines on a broken stack (exit 1; the engine restores as ever)."""


class Unreachable(GateError):
    """The gate could not ask the box: connection lost, timeout, or rc 255."""

    exit_code = ExitCode.INCONCLUSIVE


class LockLost(Unreachable):
    """The box lock could not be re-proven after a reconnect; nothing more is sent."""


class BoxLocked(GateError):
    """Another run holds the box's lock."""

    exit_code = ExitCode.LOCKED


class BoxDirty(GateError):
    """The box is not in its baseline state and the gate could not prove it restored."""

    exit_code = ExitCode.DIRTY
