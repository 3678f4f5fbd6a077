"""Fixtures for the kvfront stack's tests: real boxes in tmp dirs, always brought down."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kvbox import Box, install, kill_leftovers

NEEDED = ("nginx", "redis-server", "redis-cli", "webdis", "openssl")


class BoxFactory:
    """Installs (and by default applies) boxes under `root`; close() brings them all down."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.boxes: list[Box] = []

    def make(self, name: str = "box", apply: bool = True, **changes: dict[str, Any]) -> Box:
        missing = [b for b in NEEDED if not shutil.which(b, path="/usr/sbin:/usr/bin:/sbin:/bin")]
        if missing:
            pytest.fail(f"missing {', '.join(missing)}: run `make sysdeps`", pytrace=False)
        box = Box(self.root / name)
        self.boxes.append(box)
        proc = install(box.path)
        assert proc.returncode == 0, proc.stderr
        if changes:
            box.edit(**changes)
        if apply:
            proc = box.ctl("apply", "-y")
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return box

    def close(self) -> None:
        for box in self.boxes:
            if (box.path / "kvctl").exists():
                box.ctl("down")
            kill_leftovers(box.path)


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
    """One healthy box per module for tests that only look (and leave it healthy)."""
    factory = BoxFactory(tmp_path_factory.mktemp("kvshared"))
    b = factory.make()
    b.wait_healthy()
    yield b
    factory.close()
