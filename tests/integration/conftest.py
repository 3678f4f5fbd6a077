"""Fixtures for integration tests against real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sshd import Sshd, SshdUnavailable  # tests/integration is on sys.path (rootdir-less)

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


@pytest.fixture
def project_known_hosts(tmp_path: Path) -> Path:
    """Where a test's project known_hosts file goes (not created)."""
    return tmp_path / "inventory" / "known_hosts"
