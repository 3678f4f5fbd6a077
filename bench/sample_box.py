"""Sample-stack boxes for the benches: installed in a temp dir, brought to a time scale,
and always brought down (with any leftover process) afterwards.

A box is installed at a fast time scale so its first cold sync is short, then switched to
the scale the bench asks for and applied again (a warm start): a bench at `--time-scale
10` does not wait 200 s for a sync nobody measures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "examples" / "stack" / "install.sh"
SETUP_SCALE = "0.05"


class BoxError(RuntimeError):
    """The box could not be set up: the message says which step and what it printed."""


def stackctl(box: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(box / "stackctl"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def config(box: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((box / "config.json").read_text(encoding="utf-8"))
    return loaded


def edit(box: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Merge `{section: {key: value}}` into config.json."""
    cfg = config(box)
    for section, values in changes.items():
        cfg.setdefault(section, {}).update(values)
    (box / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def apply(box: Path) -> None:
    done = stackctl(box, "apply", "-y")
    if done.returncode != 0:
        raise BoxError(f"apply on {box.name} exited {done.returncode}: {_tail(done)}")


def wait_healthy(box: Path, timeout: float) -> None:
    """Poll `stackctl status` to exit 0 (a real signal, to a deadline)."""
    deadline = time.monotonic() + timeout
    while (done := stackctl(box, "status")).returncode != 0:
        if time.monotonic() > deadline:
            raise BoxError(f"{box.name} not healthy after {timeout:g}s: {_tail(done)}")
        time.sleep(0.2)  # sleep-ok: the set-up's own poll of a real signal


def install(box: Path, scale: float, changes: dict[str, dict[str, Any]] | None = None) -> Path:
    """Install, apply and wait healthy at SETUP_SCALE, then switch to `scale` (and
    `changes`) and wait healthy again."""
    done = subprocess.run(
        [str(INSTALL), str(box), "--time-scale", SETUP_SCALE, "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BoxError(f"install {box.name} exited {done.returncode}: {_tail(done)}")
    if changes:
        edit(box, changes)
    apply(box)
    wait_healthy(box, 60)
    edit(box, {"stack": {"time_scale": scale}})
    apply(box)
    wait_healthy(box, 60 + 40 * scale)  # a warm start verifies for 2 s x scale
    return box


def bring_down(box: Path) -> None:
    """`stackctl down`, then SIGKILL anything still naming the box (supervisord, services)."""
    if (box / "stackctl").exists():
        with contextlib.suppress(subprocess.TimeoutExpired):
            stackctl(box, "down", timeout=60)
    marker = str(box).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if marker + b"\0" in cmdline or marker + b"/" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def boxes(*paths: Path) -> Iterator[None]:
    """Bring every box in `paths` down on the way out, whatever happened."""
    try:
        yield
    finally:
        for path in paths:
            bring_down(path)


def seed_compact(data_dir: Path, work: Path) -> None:
    """A spare data dir in the compact format with a synced chain in it, made by the stack
    itself: a throwaway box with node.compact and that data dir, synced, then brought down.
    The matrix's compact scenario then warm-starts on it instead of syncing from zero."""
    seeder = work / "seed-compact"
    data_dir.mkdir(parents=True, exist_ok=True)
    with boxes(seeder):
        install(seeder, float(SETUP_SCALE), {"node": {"compact": True, "data_dir": str(data_dir)}})
    if not (data_dir / "chain.json").exists():
        raise BoxError(f"the compact seed box left no chain.json in {data_dir}")


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return text.splitlines()[-1][:200] if text else "no output"
