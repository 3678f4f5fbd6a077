"""Fixtures for the sample stack's own tests: real boxes in tmp dirs, torn down for sure."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from stackbox import Box, install, kill_leftovers


@pytest.fixture
def make_box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    """Factory: install (and by default apply) a box; every box is brought down afterwards."""
    boxes: list[Box] = []

    def make(name: str = "box", apply: bool = True, **changes: dict[str, Any]) -> Box:
        box = Box(tmp_path / name)
        proc = install(box.path, "--python", sys.executable)
        assert proc.returncode == 0, proc.stderr
        boxes.append(box)
        if changes:
            box.edit(**changes)
        if apply:
            proc = box.ctl("apply", "-y")
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return box

    yield make
    # Bring boxes down in parallel (each takes ~2 s of supervisord ticks), then make sure.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda b: b.ctl("down"), boxes))
    for box in boxes:
        kill_leftovers(box.path)


@pytest.fixture
def box(make_box: Callable[..., Box]) -> Box:
    """A freshly installed, applied and healthy box."""
    b = make_box()
    b.wait_healthy()
    return b
