"""Running gate as a user does, for the benches: `.venv/bin/invoke gate --host NAME` over a
throwaway loopback sshd, an inventory file for it, and the run's results/<run-id>/.

Extra gate arguments pass through (`--gate-args`), and when gate offers `--transport`
(issue 10's persistent channel) each transport becomes its own variant, unless the extra
arguments already choose one.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.sample_box import REPO
from gate.inventory import TRANSPORTS
from gate.testing.sshd import Sshd, write_inventory

INVOKE = Path(sys.executable).parent / "invoke"
GATE_TIMEOUT = 3600.0


def gate_help() -> str:
    """`invoke --help gate`: the flags this checkout's gate takes."""
    done = subprocess.run(
        [str(INVOKE), "--help", "gate"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return done.stdout


def offers(help_text: str, flag: str) -> bool:
    """Whether `--flag` appears as a flag of its own in the help text."""
    return re.search(rf"(^|[\s,])--{re.escape(flag)}(?![\w-])", help_text) is not None


def variants(extra: Sequence[str], help_text: str) -> list[tuple[str, list[str]]]:
    """(label, gate arguments) to run: one per transport when gate offers `--transport` and
    `extra` does not pick one, else `extra` alone."""
    chosen = any(a == "--transport" or a.startswith("--transport=") for a in extra)
    if chosen or not offers(help_text, "transport"):
        label = " ".join(extra) if extra else "gate defaults"
        return [(label, list(extra))]
    return [(f"--transport {t}", [*extra, "--transport", t]) for t in TRANSPORTS]


def split_args(text: str) -> list[str]:
    return shlex.split(text)


def inventory(sshd: Sshd, where: Path, box: Path, control: str = "") -> Path:
    """inventory/bench.toml reaching `box` over `sshd` (and its control command)."""
    fields: dict[str, Any] = {"dir": str(box), **sshd.inventory_fields()}
    if control:
        fields["control"] = control
    write_inventory(where, "bench", **fields)
    return where


@dataclass(frozen=True)
class GateRun:
    """One gate run: its exit code, its wall-clock window, and its results directory."""

    argv: tuple[str, ...]
    exit_code: int
    began: float
    ended: float
    results: Path | None
    said: str

    @property
    def wall(self) -> float:
        return self.ended - self.began

    def checks(self) -> list[dict[str, Any]]:
        """summary.json's check records (empty when the run wrote none)."""
        if self.results is None or not (self.results / "summary.json").exists():
            return []
        summary = json.loads((self.results / "summary.json").read_text(encoding="utf-8"))
        return list(summary.get("checks", []))

    def events(self) -> list[dict[str, Any]]:
        if self.results is None or not (self.results / "events.jsonl").exists():
            return []
        text = (self.results / "events.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_gate(inventory_dir: Path, out: Path, args: Sequence[str], host: str = "bench") -> GateRun:
    """`invoke gate --host HOST --inventory DIR --out DIR ARGS` from the repo (its
    matrix.py); the wall time is the user's: interpreter start-up to exit."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    argv = (
        str(INVOKE), "gate", "--host", host, "--inventory", str(inventory_dir),
        "--out", str(out), *args,
    )  # fmt: skip
    began = time.time()
    done = subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=GATE_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    ended = time.time()
    fresh = sorted(set(out.iterdir()) - before)
    said = (done.stdout + done.stderr).strip().splitlines()
    return GateRun(argv, done.returncode, began, ended, fresh[-1] if fresh else None,
                   said[-1][:160] if said else "")  # fmt: skip
