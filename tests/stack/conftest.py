"""Fixtures for the sample stack's own tests: real boxes in tmp dirs, torn down for sure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from stackbox import Box, install, kill_leftovers


class BoxFactory:
    """Installs (and by default applies) boxes under `root`; close() brings them all down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.boxes: list[Box] = []

    def make(self, name: str = "box", apply: bool = True, **changes: dict[str, Any]) -> Box:
        box = Box(self.root / name)
        proc = install(box.path, "--python", sys.executable)
        assert proc.returncode == 0, proc.stderr
        self.boxes.append(box)
        if changes:
            box.edit(**changes)
        if apply:
            proc = box.ctl("apply", "-y")
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return box

    def close(self) -> None:
        """Queue every box for `stackctl down` plus a leftover sweep (see _reaper)."""
        for box in self.boxes:
            _PENDING.append(_REAPER.submit(_bring_down, box))


def _bring_down(box: Box) -> None:
    box.ctl("down")
    kill_leftovers(box.path)


# `down` spends ~2 s waiting on supervisord's 1 s ticks; doing it in the background lets the
# next test start meanwhile. The session fixture below waits for all of them, so no
# supervisord outlives the test session.
_REAPER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="box-reaper")
_PENDING: list[Future[None]] = []


@pytest.fixture(scope="session", autouse=True)
def _reaper() -> Iterator[None]:
    yield
    for future in _PENDING:
        future.result()
    _REAPER.shutdown(wait=True)


@pytest.fixture
def make_box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    """Factory for boxes private to one test."""
    factory = BoxFactory(tmp_path)
    yield factory.make
    factory.close()


@pytest.fixture
def box(make_box: Callable[..., Box]) -> Box:
    """A freshly installed, applied and healthy box, private to the test."""
    b = make_box()
    b.wait_healthy()
    return b


@pytest.fixture(scope="module")
def shared_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """One healthy box per module for tests that only look (and must leave it healthy)."""
    factory = BoxFactory(tmp_path_factory.mktemp("shared"))
    b = factory.make()
    b.wait_healthy()
    yield b
    factory.close()
