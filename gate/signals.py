"""Turning SIGINT, SIGTERM and SIGHUP into one orderly unwind, and shielding the restore.

The first signal raises `Interrupted` in the main thread so every `finally` runs. While a
restore is shielded, signals are only counted: a second Ctrl-C must not cut it short.
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
        self._previous: dict[int, object] = {}

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._shielded == 0 and len(self.received) == 1:
            raise Interrupted(signum)

    def install(self) -> None:
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)

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
