"""A console stream whose reader may go away while the run still has a box to put back.

`invoke gate ... | tee log` whose tee dies, a terminal closed, an SSH session that carried
the output dropped: a write then raises (EPIPE, EIO). Raised inside the engine's restore it
would skip the restore and leave the box dirty, so the console drops what it cannot write
and the run carries on: the evidence still goes to results/.
"""

from __future__ import annotations

import io
from typing import TextIO


class ReaderGone(io.TextIOBase):
    """Writes to `stream` until a write or flush fails, then drops everything quietly."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed under us
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.gone = True

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()
