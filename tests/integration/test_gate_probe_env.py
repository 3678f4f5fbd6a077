"""A Command probe's secret goes to its process by environment, never by argv: `ps` proves it.

kvfront's `redis-replication` probe runs the stock redis-cli with REDISCLI_AUTH set on the
box from .env (`env={"REDISCLI_AUTH": "REDIS_PASSWORD"}`, boxtool `exec ... VAR=ENV_KEY`).
A thread samples `ps -ww -eo args` as fast as it can while `gate --check` runs (`-ww`: a
piped ps cuts every line at 80 columns, and the control below fails without it): the password
never appears in any process's arguments, and the sampler did see the probe's process (else
the test proves nothing). A positive control first shows that the sampler does see a
secret that is on a command line.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import run_gate
from kvfront_box import CONTRACT, Box, KvBoxes, secret_values, wait_for

pytestmark = pytest.mark.slow

PROBE = ("redis-cli -h 127.0.0.1", "INFO replication")
"""What the probe's processes carry in their arguments (boxtool exec, sh -c, redis-cli)."""
ATTEMPTS = 5
"""--check runs until the sampler caught the probe in flight at least once (it lives for
milliseconds; a loaded box may run ps slower than that)."""


class Sampler(threading.Thread):
    """Every distinct `ps -ww -eo args` line (whole, never cut) seen while it runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lines: set[str] = set()
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            out = subprocess.run(
                ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False
            ).stdout
            self.lines.update(out.splitlines())
            self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)

    def holds(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def probe_lines(self) -> int:
        return sum(all(p in line for p in PROBE) for line in list(self.lines))


@pytest.fixture
def sampler() -> Iterator[Sampler]:
    thread = Sampler()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def kv_box(tmp_path: Path) -> Iterator[Box]:
    boxes = KvBoxes(tmp_path)
    yield boxes.make()
    boxes.close()


def test_a_command_probes_secret_is_in_no_process_argv(
    kv_box: Box, sampler: Sampler, via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    """Locally and over the real sshd (the session's shell is a process too)."""
    password = secret_values(kv_box)["REDIS_PASSWORD"]
    # the positive control: a secret on a command line is seen by this very sampler
    control = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", password], stdin=subprocess.PIPE
    )
    try:
        wait_for("the control's argv in ps", lambda: sampler.holds(password), bool, timeout=60)
    finally:
        assert control.stdin is not None
        control.stdin.close()
        control.wait(timeout=30)
    sampler.lines.clear()

    flags = [*via(kv_box), "--matrix", str(CONTRACT), "--check"]
    runs = []
    for attempt in range(ATTEMPTS):
        runs.append(run_gate(*flags, out=tmp_path / f"check-{attempt}"))
        assert runs[-1].code == 0, runs[-1].output
        if sampler.probe_lines():
            break
    sampler.stop()

    assert sampler.probe_lines(), (
        f"ps never caught the probe in flight ({sampler.samples} samples, {len(runs)} runs)"
    )
    leaked = sampler.holds(password)
    assert not leaked, "the redis password was in a process's arguments"
    # and it did authenticate with it: redis answered the probe (no NOAUTH)
    assert runs[-1].verdict("redis-replication: primary") == "pass"
