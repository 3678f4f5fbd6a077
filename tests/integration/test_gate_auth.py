"""`invoke gate --auth-fail-closed` against real boxes, locally and over the real sshd.

Green on the sample stack over both transports: the proxy starts with its real token (the
positive control), refuses to start with it blanked (`stackctl start proxy` exits 1, the
refusal in its log), and the exact .env comes back; meanwhile a thread samples `ps -eo
args` and the planted canary token is never on any command line, nor in anything gate
printed or wrote. Red: the box's own proxy patched (a defect switch) to start with an
empty token fails the run, and the box still comes back byte for byte. A SIGINT in the
middle of the phase (the env file blanked) puts the file back before the restore proves the
box. And kvfront: kvctl refuses to start redis without REDIS_PASSWORD.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Box,
    GateRun,
    Running,
    assert_restore_proven,
    config_and_secret_hashes,
    file_hash,
    gate_state,
    run_gate,
    wait_for,
)
from kvfront_box import CONTRACT as KV_CONTRACT
from kvfront_box import KvBoxes, kv_hashes, leaked

pytestmark = pytest.mark.slow

FLAGS = ("--auth-fail-closed", "--safety-backup", "--scenario", "local-defaults")
PHASE = "auth-fail-closed"
REFUSED = f"{PHASE}: proxy refuses to start without PROXY_AUTH_TOKEN"
CONTROL = f"{PHASE}: proxy starts with the real PROXY_AUTH_TOKEN (positive control)"
BYTES = f"{PHASE}: .env bytes equal the ones before"


def plant_canary(box: Box) -> str:
    """A recognisable PROXY_AUTH_TOKEN, applied and healthy: what must never leak."""
    canary = f"canary-authfc-{secrets.token_hex(12)}"
    env = box.path / ".env"
    lines = [
        f"PROXY_AUTH_TOKEN={canary}" if line.startswith("PROXY_AUTH_TOKEN=") else line
        for line in env.read_text().splitlines()
    ]
    env.write_text("\n".join(lines) + "\n")
    applied = box.ctl("apply", "-y")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    box.wait_healthy(timeout=60)
    assert box.env()["PROXY_AUTH_TOKEN"] == canary
    return canary


class PsSampler:
    """Samples every process's argv (`ps -eo args`) in a thread until stopped."""

    def __init__(self) -> None:
        self.lines: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            ps = subprocess.run(
                ["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False
            )
            with self._lock:
                self.lines.update(ps.stdout.splitlines())
                self.samples += 1
            self._stop.wait(0.1)

    def __enter__(self) -> PsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def saw(self, text: str) -> list[str]:
        with self._lock:
            return [line for line in self.lines if text in line]


def sees_an_argv(sampler: PsSampler) -> bool:
    """The sampler's positive control: a process with a marker in its argv is seen."""
    marker = f"ps-control-{secrets.token_hex(6)}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        return bool(wait_for("the marker in ps", lambda: sampler.saw(marker), bool, 30))
    finally:
        child.kill()
        child.wait()


def assert_green_and_put_back(run: GateRun, env_before: str, hashes: dict[str, str]) -> None:
    assert run.code == 0, run.output
    phase = {c["name"]: c for c in run.summary["checks"] if c["phase"] == PHASE}
    assert {c["verdict"] for c in phase.values()} == {"pass"}, phase
    assert phase[REFUSED]["observed"] == "start exited 1"
    assert "refusing to start an unauthenticated proxy control API" in phase[REFUSED]["evidence"]
    assert CONTROL in phase and BYTES in phase
    assert "restore proven" in run.output


def aside_left(box: Box) -> list[Path]:
    return list((box.path / ".gate").glob("aside-*"))


# --- the sample stack -----------------------------------------------------------------------


def test_green_the_token_never_on_a_command_line_nor_in_any_output(
    make_stack_box: Callable[..., Box],
    via: Callable[[Box], list[str]],
    tmp_path: Path,
) -> None:
    box = make_stack_box()
    canary = plant_canary(box)
    env_before, hashes = file_hash(box.path / ".env"), config_and_secret_hashes(box)
    with PsSampler() as sampler:
        assert sees_an_argv(sampler), "the ps sampler does not see argv"
        run = run_gate(*via(box), *FLAGS, out=tmp_path / "green")
    assert_green_and_put_back(run, env_before, hashes)
    assert file_hash(box.path / ".env") == env_before
    assert config_and_secret_hashes(box) == hashes
    assert not aside_left(box)
    box.wait_healthy(timeout=60)
    # the secret: never in argv (sampled throughout), never in what gate sent or wrote
    assert sampler.samples > 20, sampler.samples
    assert sampler.saw("start proxy"), "the sampler never saw one of gate's own commands"
    assert sampler.saw(canary) == []
    assert not [e["command"] for e in run.events if canary in e["command"]]
    written = run.everything_written()
    assert "PROXY_AUTH_TOKEN" in written, "the search would find nothing anyway"
    assert canary not in written


def test_red_a_proxy_that_starts_with_an_empty_token_fails_and_the_box_comes_back(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    (box.path / "defects.json").write_text(json.dumps({"start_proxy_without_token": True}))
    env_before, hashes = file_hash(box.path / ".env"), config_and_secret_hashes(box)
    run = run_gate("--local", "--dir", str(box.path), *FLAGS, out=tmp_path / "red")
    assert run.code == 1, run.output
    refused = next(c for c in run.summary["checks"] if c["name"] == REFUSED)
    assert refused["verdict"] == "fail"
    assert refused["observed"] == "started with an empty PROXY_AUTH_TOKEN (exit 0)"
    assert run.verdict(CONTROL) == "pass"
    assert run.verdict(BYTES) == "pass"
    assert "restore proven" in run.output
    assert file_hash(box.path / ".env") == env_before
    assert config_and_secret_hashes(box) == hashes
    assert not aside_left(box)
    token = box.env()["PROXY_AUTH_TOKEN"]
    code, status = box.status()
    assert code == 0, status
    answer = box.get("proxy", "/stats")
    assert isinstance(answer, dict) and answer["admitting"] is True, answer
    assert token not in run.everything_written()


SLOW_REFUSAL = (
    '    if not token and not _defect(rt, "start_proxy_without_token"):\n',
    '    if not token and not _defect(rt, "start_proxy_without_token"):\n'
    "        time.sleep(3)  # the test's window: SIGINT lands while .env is blank\n",
)


def test_sigint_in_the_middle_puts_the_env_file_back_byte_for_byte(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    source = box.path / "stacklib" / "services" / "proxy.py"
    text = source.read_text()
    assert SLOW_REFUSAL[0] in text, "the patch found nothing to change"
    source.write_text(text.replace(*SLOW_REFUSAL))
    env_before, hashes = (box.path / ".env").read_bytes(), config_and_secret_hashes(box)
    gate = Running(["--local", "--dir", str(box.path), *FLAGS], tmp_path / "sigint")
    try:
        gate.after("boxtool.py blank")
        assert (box.path / ".env").read_bytes() != env_before, "precondition: the token is blank"
        gate.signal(signal.SIGINT)
        run = gate.finish()
    finally:
        gate.stop()
    assert run.code == 130, run.console
    commands = [e["command"] for e in run.events]
    blank = next(i for i, c in enumerate(commands) if "boxtool.py blank" in c)
    assert any("boxtool.py putback" in c for c in commands[blank:]), commands[blank:]
    assert run.verdict("repair: .env put back, proxy started") == "pass"
    assert_restore_proven(run)
    assert (box.path / ".env").read_bytes() == env_before
    assert config_and_secret_hashes(box) == hashes
    assert not aside_left(box)
    assert gate_state(box) == "clean"
    code, status = box.status()
    assert code == 0, status


# --- kvfront --------------------------------------------------------------------------------


@pytest.fixture
def kv_box(tmp_path: Path) -> Iterator[Any]:
    boxes = KvBoxes(tmp_path)
    yield boxes.make()
    boxes.close()


def test_kvfront_redis_refuses_without_its_password_and_the_box_comes_back(
    kv_box: Any, via: Callable[[Any], list[str]], tmp_path: Path
) -> None:
    before = kv_hashes(kv_box)
    flags = [*via(kv_box), "--matrix", str(KV_CONTRACT), "--auth-fail-closed", "--safety-backup"]
    run = run_gate(*flags, "--scenario", "tls-combined-lru", out=tmp_path / "results")
    assert run.code == 0, run.output
    phase = {c["name"]: c for c in run.summary["checks"] if c["phase"] == PHASE}
    refused = phase[f"{PHASE}: redis refuses to start without REDIS_PASSWORD"]
    assert refused["verdict"] == "pass" and refused["observed"] == "start exited 1"
    assert "refusing to start redis without a password" in refused["evidence"]
    assert {c["verdict"] for c in phase.values()} == {"pass"}, phase
    assert "restore proven" in run.output
    now = kv_hashes(kv_box)  # (the TLS scenario's apply mints a cert pair that stays)
    assert {path: now.get(path) for path in before} == before
    assert not list((kv_box.path / ".gate").glob("aside-*"))
    assert not leaked(kv_box, run.everything_written())
