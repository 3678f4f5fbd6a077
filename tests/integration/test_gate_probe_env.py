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
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import run_gate
from kvfront_box import CONTRACT, Box, KvBoxes, secret_values, wait_for

pytestmark = pytest.mark.slow

PROBE = ("redis-cli -h 127.0.0.1", "INFO replication")
"""What the probe's processes carry in their arguments (sh -c, redis-cli)."""

HELD_PROBE = """
import dataclasses, importlib.util
_spec = importlib.util.spec_from_file_location("kvfront_matrix", {contract!r})
_kv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kv)


def _held(probe):
    if probe.name != "redis-replication":
        return probe
    ask = probe.command
    wait = " && until [ -e {seen!r} ]; do sleep 0.01; done"
    return dataclasses.replace(probe, command=lambda cfg: ask(cfg) + wait)


CONTRACT = dataclasses.replace(_kv.CONTRACT, probes=tuple(map(_held, _kv.CONTRACT.probes)))
MATRIX = _kv.MATRIX
"""
"""kvfront's contract with its `redis-replication` probe held open after redis-cli answered,
until the sampler has seen it in flight (the file `seen`): a probe lives for milliseconds,
and the test must not depend on sampling luck."""


class Sampler(threading.Thread):
    """Every distinct `ps -ww -eo args` line (whole, never cut) seen while it runs; once a
    line of the probe is seen, it touches `seen` (the held probe then ends)."""

    def __init__(self, seen: Path) -> None:
        super().__init__(daemon=True)
        self.lines: set[str] = set()
        self.samples = 0
        self.seen = seen
        self.started = self.finished = 0.0
        """When the last sample began, and when the last finished sample had begun."""
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.started = time.monotonic()
            out = subprocess.run(
                ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False
            ).stdout
            self.lines.update(out.splitlines())
            self.samples += 1
            self.finished = self.started
            if self.probe_lines():
                self.seen.touch()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)

    def holds(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def probe_lines(self) -> int:
        return sum(all(p in line for p in PROBE) for line in list(self.lines))


@pytest.fixture
def sampler(tmp_path: Path) -> Iterator[Sampler]:
    thread = Sampler(tmp_path / "probe-seen")
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
    gone = time.monotonic()  # a sample begun before now may still add the control's line
    wait_for("a sample begun after the control ended", lambda: sampler.finished > gone, bool)
    sampler.lines.clear()

    contract = tmp_path / "held_probe.py"
    contract.write_text(HELD_PROBE.format(contract=str(CONTRACT), seen=str(sampler.seen)))
    run = run_gate(*via(kv_box), "--matrix", str(contract), "--check", out=tmp_path / "check")
    sampler.stop()
    assert run.code == 0, run.output
    assert sampler.probe_lines(), f"ps never caught the probe ({sampler.samples} samples)"
    leaked = sampler.holds(password)
    assert not leaked, "the redis password was in a process's arguments"
    # and it did authenticate with it: redis answered the probe (no NOAUTH)
    assert run.verdict("redis-replication: primary") == "pass"
