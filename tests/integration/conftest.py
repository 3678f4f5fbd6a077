"""Fixtures for integration tests against real processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gate.testing.sshd import (  # tests/integration is on sys.path (rootdir-less)
    Sshd,
    SshdUnavailable,
)

# --- sshd (owned by the box-access layer; keep self-contained) -----------------------------


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Sshd]]:
    """Start fresh sshds for one test (ones it may kill or re-key); all stop at teardown."""
    started: list[Sshd] = []

    def start() -> Sshd:
        server = Sshd(tmp_path_factory.mktemp("sshd"))
        try:
            server.start()
        except SshdUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd shared by the session; tests must not kill or re-key it (use sshd_factory)."""
    server = Sshd(tmp_path_factory.mktemp("sshd-shared"))
    try:
        server.start()
    except SshdUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


# --- gate against real sample-stack boxes ----------------------------------------------------

import harness  # noqa: E402
from harness import Box, install, kill_leftovers, write_inventory  # noqa: E402


@pytest.fixture
def make_stack_box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    """Factory: install, apply and wait healthy; every box is brought down at teardown."""
    boxes: list[Box] = []

    def make(name: str = "box", **changes: dict[str, object]) -> Box:
        box = Box(tmp_path / name)
        proc = install(box.path, "--python", sys.executable)
        assert proc.returncode == 0, proc.stderr
        boxes.append(box)
        if changes:
            box.edit(**changes)
        applied = box.ctl("apply", "-y")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        box.wait_healthy(timeout=60)
        return box

    yield make
    for box in boxes:
        box.ctl("down")
        kill_leftovers(box.path)


@pytest.fixture
def short_lock_grace() -> Iterator[None]:
    """Gate runs started by this test get a 1 s lock grace (a killed run's lock lapses fast)
    and no on-box watchdog: these tests prove what a dirty box and `--recover` do."""
    harness.EXTRA_ENV.update(GATE_LOCK_GRACE="1", GATE_WATCHDOG_S="0")
    yield
    for name in ("GATE_LOCK_GRACE", "GATE_WATCHDOG_S"):
        harness.EXTRA_ENV.pop(name, None)


@pytest.fixture
def stack_box(make_stack_box: Callable[..., Box]) -> Box:
    """A freshly installed, healthy sample-stack box."""
    return make_stack_box()


def ssh_args(
    server: Sshd, box: Box, inventory: Path, name: str = "box", **extra: object
) -> list[str]:
    """Write inventory/NAME.toml for `box` behind `server`; the flags that select it."""
    write_inventory(inventory, name, dir=str(box.path), **server.inventory_fields(), **extra)
    return ["--host", name, "--inventory", str(inventory)]


@pytest.fixture(params=["local", "ssh"])
def via(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Box], list[str]]:
    """The same gate run over each transport: returns the flags that reach a box."""
    if request.param == "local":
        return lambda box: ["--local", "--dir", str(box.path)]
    server: Sshd = request.getfixturevalue("sshd")
    return lambda box: ssh_args(server, box, tmp_path / "inventory")
