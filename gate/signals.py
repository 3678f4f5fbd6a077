"""Turning SIGINT, SIGTERM and SIGHUP into one orderly unwind, and shielding the restore.

A signal is only recorded when it arrives; `checkpoint()` (called before every command on
the box) raises `Interrupted` at the next safe point, so no command is abandoned half-way
on the box. While a restore is shielded, checkpoints pass: a second Ctrl-C must not cut
it short.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from gate.errors import ExitCode

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_CODES = {
    signal.SIGINT: ExitCode.SIGINT,
    signal.SIGTERM: ExitCode.SIGTERM,
    signal.SIGHUP: ExitCode.SIGHUP,
}


class Interrupted(BaseException):
    """A signal asked the run to stop; the run restores, then exits with `exit_code`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signal.Signals(signum), ExitCode.SIGINT)


class SignalGuard:
    """Owns the handlers for one run."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._shielded = 0
        self._raised = False
        self._previous: dict[int, object] = {}

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def checkpoint(self) -> None:
        """Raise `Interrupted` once if a signal came in, unless a restore is shielded."""
        if self.received and not self._raised and self._shielded == 0:
            self._raised = True
            raise Interrupted(self.received[0])

    def install(self) -> None:
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @contextmanager
    def shielded(self) -> Iterator[None]:
        """Signals inside this block are recorded, not raised."""
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1


_PROCESS_GUARD: SignalGuard | None = None


def process_guard() -> SignalGuard:
    """The process's one guard, installed at the first call: call it as early as possible.

    tasks.py and the `gate` script call it before importing anything heavy, so a Ctrl-C in
    the first moments is recorded and answered with 130, not lost in a parser's exit 1.
    """
    global _PROCESS_GUARD
    if _PROCESS_GUARD is None or not _PROCESS_GUARD.installed:
        _PROCESS_GUARD = SignalGuard()
        _PROCESS_GUARD.install()
    return _PROCESS_GUARD
