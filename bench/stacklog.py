"""The sample stack's own word on readiness: its log lines, timestamped as they appear.

The services write one line each when they do what `stackctl status` asks of them
(examples/stack/stacklib/services/): the node when it is synchronized, the pool, proxy,
dashboard and cache when they serve, a worker when its first share is accepted. The logs
carry no timestamps, so `LogWatcher` reads `logs/*.log` as they grow and stamps each new
line with the wall clock (the clock gate's events.jsonl uses); on loopback the box and the
bench share that clock.

"Ready in the stack's own log" is the moment the last of the expected services has
written its ready line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

READY_LINES = {
    "node": "node: synchronized at height ",
    "pool": "pool: tier ",  # "tier X: waiting for the node at ...": it serves /status
    "proxy": "proxy: admitting workers on ",
    "dashboard": "dashboard: serving ",
    "cache": "cache: listening on ",
}
WORKER_READY = ": shares accepted"


@dataclass(frozen=True)
class LogLine:
    """One line a service wrote, and when the watcher first saw it."""

    at: float
    service: str
    text: str


def is_ready_line(line: LogLine) -> bool:
    """Whether the line is its service's statement that it is up (see READY_LINES)."""
    if line.service.startswith("worker-"):
        return line.text == f"{line.service}{WORKER_READY}"
    prefix = READY_LINES.get(line.service)
    return prefix is not None and line.text.startswith(prefix)


def ready_at(lines: Sequence[LogLine], services: Collection[str], since: float) -> float | None:
    """When the last of `services` wrote its first ready line at or after `since`; None
    while any of them has not."""
    first: dict[str, float] = {}
    for line in lines:
        if line.at >= since and line.service in services and is_ready_line(line):
            first.setdefault(line.service, line.at)
    if set(services) - set(first):
        return None
    return max(first.values(), default=since)


def last_ready(lines: Sequence[LogLine], start: float, end: float) -> float | None:
    """The latest ready line of any service in [start, end): where a stack that an apply
    started recreating had said its last "up"; None when no service restarted."""
    found = [line.at for line in lines if start <= line.at < end and is_ready_line(line)]
    return max(found, default=None)


class LogWatcher:
    """Polls `logs/*.log` in a thread; every complete new line becomes a LogLine."""

    def __init__(
        self, logs: Path, interval: float = 0.005, clock: Callable[[], float] = time.time
    ) -> None:
        self.logs, self.interval, self.clock = logs, interval, clock
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, bytes] = {}
        self._lines: list[LogLine] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-watcher", daemon=True)

    def start(self) -> None:
        """Skip what the logs already hold, then watch."""
        for path in self.logs.glob("*.log"):
            self._offsets[path] = path.stat().st_size
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def lines(self) -> list[LogLine]:
        with self._lock:
            return list(self._lines)

    def wait_ready(self, services: Collection[str], since: float, timeout: float) -> float | None:
        """Block until `ready_at` has an answer or `timeout` passes (waits on the log)."""
        deadline = time.monotonic() + timeout
        while (found := ready_at(self.lines(), services, since)) is None:
            if time.monotonic() > deadline:
                return None
            self._stop.wait(self.interval)
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for path in self.logs.glob("*.log"):
                self._read(path)

    def _read(self, path: Path) -> None:
        try:
            size = path.stat().st_size
        except OSError:
            return
        offset = self._offsets.get(path, 0)
        if size == offset:
            return
        if size < offset:  # truncated or replaced: read it from the start
            offset, self._partial[path] = 0, b""
        with path.open("rb") as handle:
            handle.seek(offset)
            fresh = handle.read()
        now = self.clock()
        self._offsets[path] = offset + len(fresh)
        *complete, self._partial[path] = (self._partial.get(path, b"") + fresh).split(b"\n")
        service = path.name.removesuffix(".log")
        with self._lock:
            self._lines += [
                LogLine(now, service, raw.decode("utf-8", "replace")) for raw in complete
            ]
