"""Detached runs on a real box over a real sshd: the run outlives a dropped link and
`--attach` brings its verdict and results home; `--stop` ends one and the box is restored;
nothing to attach to is one line.

A canary secret is planted in the box's .env: it must not be in anything the runner
printed or fetched (the run on the box scrubs its console and artifacts; the runner's
redactor would not know this value).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import harness
import pytest
from conftest import ssh_args
from harness import (
    Box,
    GateRun,
    Running,
    assert_restore_proven,
    assert_restored,
    config_and_secret_hashes,
    run_gate,
    wait_for,
)

from gate.testing.sshd import Sshd

SCENARIOS = ("--scenario", "local-defaults", "--scenario", "main-secure-strict")


@pytest.fixture
def fast_heartbeat() -> Iterator[None]:
    """A heartbeat every second (the default is 20 s)."""
    harness.EXTRA_ENV["GATE_HEARTBEAT_S"] = "1"
    yield
    harness.EXTRA_ENV.pop("GATE_HEARTBEAT_S", None)


def plant_canary(box: Box) -> str:
    canary = f"canary-detach-{secrets.token_hex(12)}"
    env = box.path / ".env"
    lines = [
        f"PROXY_AUTH_TOKEN={canary}" if line.startswith("PROXY_AUTH_TOKEN=") else line
        for line in env.read_text().splitlines()
    ]
    env.write_text("\n".join(lines) + "\n")
    applied = box.ctl("apply", "-y")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    box.wait_healthy(timeout=60)
    return canary


def detached_dir(box: Box) -> Path:
    pointer = json.loads((box.path / ".gate" / "detached" / "latest.json").read_text())
    return Path(pointer["dir"])


def wait_for_heartbeat(follower: Running, needle: str) -> None:
    """The runner printed a heartbeat whose phase holds `needle` (the run is mid-flight)."""

    def seen() -> tuple[bool, int | None]:
        beats = [line for line in follower.console.splitlines() if line.startswith("heartbeat")]
        return any(needle in line for line in beats), follower.proc.poll()

    got = wait_for(f"a heartbeat in {needle!r}", seen, lambda s: s[0] or s[1] is not None, 240)
    assert got[0], f"the runner ended (exit {got[1]}) first: {follower.console}"


def everything(*runs: GateRun) -> str:
    texts = []
    for run in runs:
        texts.append(run.output)
        texts += [p.read_text(errors="replace") for p in run.out_dir.rglob("*") if p.is_file()]
    return "\n".join(texts)


pytestmark = pytest.mark.usefixtures("fast_heartbeat")


@pytest.mark.slow
def test_a_detached_run_outlives_a_dropped_link_and_attach_brings_its_verdict_home(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    server = sshd_factory()
    box = make_stack_box()
    canary = plant_canary(box)
    before = config_and_secret_hashes(box)
    flags = ssh_args(server, box, tmp_path / "inventory")
    follower = Running([*flags, "--detach", *SCENARIOS], tmp_path / "detached")
    try:
        wait_for_heartbeat(follower, "scenario local-defaults")
        server.drop_links()  # every session and the listener: the runner cannot come back
        cut = follower.finish(timeout=60)
    finally:
        follower.stop()
    run_dir = detached_dir(box)
    assert not (run_dir / "exit").exists(), "the run had ended before the link was cut"
    assert cut.code == 3, cut.output
    assert "--attach" in cut.output and "goes on on the box" in cut.output, cut.output

    ended = wait_for("the run's exit file", lambda: (run_dir / "exit").exists(), bool, 240)
    assert ended
    server.start()  # the link is back; a new runner attaches
    attached = run_gate(*flags, "--attach", out=tmp_path / "attached")
    assert attached.code == 0, attached.output
    assert "gate: passed (exit 0)" in attached.output and "already ended" in attached.output
    verdicts = attached.verdicts()
    for scenario in ("local-defaults", "main-secure-strict"):
        mine = {k: v for k, v in verdicts.items() if k.startswith(f"{scenario}/")}
        assert mine and set(mine.values()) == {"pass"}, (scenario, mine)
    assert attached.summary["exit_code"] == 0
    assert (attached.run_dir / "console.log").is_file() and (
        attached.run_dir / "junit.xml"
    ).is_file()
    assert_restore_proven(attached)
    assert_restored(box, before)
    assert canary not in everything(cut, attached)


@pytest.mark.slow
def test_stop_ends_a_detached_run_which_restores_the_box(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    server = sshd_factory()
    box = make_stack_box()
    canary = plant_canary(box)
    before = config_and_secret_hashes(box)
    flags = ssh_args(server, box, tmp_path / "inventory")
    more = ("--scenario", "nano-cache-lan")
    follower = Running([*flags, "--detach", *SCENARIOS, *more], tmp_path / "detached")
    try:
        wait_for_heartbeat(follower, "scenario local-defaults")
        second = run_gate(*flags, "--detach", "--check", out=tmp_path / "second")
        stopped = run_gate(*flags, "--stop", out=tmp_path / "stopped")
        followed = follower.finish(timeout=120)
    finally:
        follower.stop()
    assert stopped.code == 143, stopped.output
    assert "SIGTERM sent; it ended" in stopped.output and "(SIGKILL)" not in stopped.output
    assert followed.code == 143, followed.output
    assert (detached_dir(box) / "exit").read_text() == "143\n"
    scenarios = {c["scenario"] for c in stopped.summary["checks"] if c["scenario"]}
    assert "nano-cache-lan" not in scenarios, "the run was not stopped mid-way"
    assert_restore_proven(stopped)
    assert_restored(box, before)
    assert second.code == 75 and "is still running on the box" in second.output, second.output
    # the box is free again: a detached --check reuses the venv the first --detach left
    checked = run_gate(*flags, "--detach", "--check", out=tmp_path / "checked")
    assert checked.code == 0, checked.output
    assert "reused (same gate" in checked.output and "wheelhouse" not in checked.output
    assert checked.summary["mode"] == "check"
    assert canary not in everything(stopped, followed, second, checked)


@pytest.mark.slow
def test_ctrl_c_stops_only_the_following_and_attach_follows_the_run_to_its_end(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    server = sshd_factory()
    box = make_stack_box()
    before = config_and_secret_hashes(box)
    flags = ssh_args(server, box, tmp_path / "inventory")
    follower = Running([*flags, "--detach", *SCENARIOS], tmp_path / "detached")
    try:
        wait_for_heartbeat(follower, "scenario local-defaults")
        follower.signal(signal.SIGINT)
        left = follower.finish(timeout=60)
    finally:
        follower.stop()
    run_dir = detached_dir(box)
    assert not (run_dir / "exit").exists(), "the run had ended before the Ctrl-C"
    assert left.code == 130, left.output
    assert "stopped following" in left.output and "--stop" in left.output, left.output
    attached = run_gate(*flags, "--attach", out=tmp_path / "attached")
    assert attached.code == 0, attached.output
    assert "== attached: detached run" in attached.output and "heartbeat" in attached.output
    assert (run_dir / "exit").read_text() == "0\n"
    assert attached.summary["verdict"] == "passed"
    assert_restored(box, before)


@pytest.mark.slow
@pytest.mark.parametrize("watchdog_s", [2, 0], ids=["watchdog", "recover"])
def test_a_stop_that_must_kill_is_exit_4_and_the_box_is_put_back_without_the_run(
    watchdog_s: int,
    sshd_factory: Callable[[], Sshd],
    make_stack_box: Callable[..., Box],
    tmp_path: Path,
) -> None:
    """A drain too short for the run's restore: SIGKILL, exit 4. Then the on-box watchdog
    (the inventory's watchdog_s, shipped with the run) restores the box by itself; with
    the watchdog off, the printed `--recover`, run as printed once the killed run's lock
    has lapsed, does."""
    server = sshd_factory()
    box = make_stack_box()
    before = config_and_secret_hashes(box)
    flags = ssh_args(server, box, tmp_path / "inventory", watchdog_s=watchdog_s)
    follower = Running([*flags, "--detach", *SCENARIOS], tmp_path / "detached")
    try:
        wait_for_heartbeat(follower, "scenario local-defaults")
        harness.EXTRA_ENV["GATE_STOP_DRAIN_S"] = "0.2"
        try:
            killed = run_gate(*flags, "--stop", out=tmp_path / "killed")
        finally:
            harness.EXTRA_ENV.pop("GATE_STOP_DRAIN_S")
        followed = follower.finish(timeout=60)
    finally:
        follower.stop()
    assert killed.code == 4, killed.output
    assert "was killed (SIGKILL)" in killed.output, killed.output
    assert followed.code == 137, followed.output
    assert (detached_dir(box) / "exit").read_text() == "137\n"
    hint = re.search(r"`(invoke gate [^`]*--recover)`", killed.output)
    assert hint, killed.output
    # The killed run's lock is let go by its holder: after the watchdog restored the box,
    # or (watchdog off) GATE_LOCK_GRACE, 30 s, after the run's last command ended.
    holder = box.path / ".gate" / "holder.json"
    assert holder.exists(), "the killed run's lock is not held: nothing to wait for"
    wait_for("the killed run's lock to be let go", holder.exists, lambda held: not held, 120)
    if watchdog_s:
        journal = (box.path / ".gate" / "journal.jsonl").read_text()
        assert '"watchdog-restored"' in journal, journal[-2000:]
    else:
        assert harness.gate_state(box) == "dirty"
        words = shlex.split(hint[1])
        done = harness.run_in_repo([sys.executable, "-m", "invoke", *words[1:]])
        assert done.returncode == 0, done.stdout + done.stderr
    assert_restored(box, before)


def test_attach_and_stop_with_no_detached_run_are_one_line_and_exit_2(
    sshd: Sshd, tmp_path: Path
) -> None:
    stack = tmp_path / "stack"
    stack.mkdir()
    flags = ssh_args(sshd, Box(stack), tmp_path / "inventory")
    for verb, doing in (("--attach", "nothing to attach to"), ("--stop", "nothing to stop")):
        run = run_gate(*flags, verb, out=tmp_path / verb.strip("-"))
        lines = run.output.strip().splitlines()
        assert run.code == 2 and len(lines) == 1 and doing in lines[0], run.output
        assert lines[0].startswith("gate: "), run.output
        assert list(stack.iterdir()) == [], "bad input touched the stack dir"
