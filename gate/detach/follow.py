"""Following a detached run from the runner: a heartbeat while it runs, then its summary,
its results fetched home, and its exit code.

Everything shown comes from the run's own console on the box (already scrubbed there by
the run) and passes the runner's redactor once more on the way to the screen.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.detach.boxside import ENDED, RUNNING
from gate.detach.link import BoxLink, HelperFailed
from gate.errors import ExitCode
from gate.redact import Redactor
from gate.report import Console
from gate.report.write import write_views
from gate.signals import SignalGuard

POLL_S = 2.0
"""How often the runner asks whether the run ended (a heartbeat is printed less often)."""
TAIL_LINES = 3
FINAL_LINES = 400
SUMMARY_MARKS = ("  FAIL", "  INCONCLUSIVE", "gate:")


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def summary_lines(lines: list[str], limit: int = 40) -> list[str]:
    """What to show at the end: every failed or inconclusive check line and the gate's own
    lines (the verdict last), from the run's console."""
    picked = [line for line in lines if line.startswith(SUMMARY_MARKS)]
    return picked[-limit:]


@dataclass
class Follower:
    """Follows one detached run under one stack dir until it ends: `run_dir`, the run this
    runner started or found (latest.json may name another run by then), else the latest."""

    link: BoxLink
    console: Console
    guard: SignalGuard
    heartbeat_s: float
    run_dir: str | None = None

    def poll(self, lines: int) -> dict[str, Any]:
        pinned = () if self.run_dir is None else (self.run_dir,)
        return self.link.call("poll", self.link.stack, str(lines), *pinned)

    def until_end(self) -> dict[str, Any]:
        """Poll until the run is no longer running; a heartbeat every `heartbeat_s`."""
        started = time.monotonic()
        next_beat = started + self.heartbeat_s
        while True:
            found = self.poll(TAIL_LINES)
            if found["status"] != RUNNING:
                return found
            now = time.monotonic()
            if now >= next_beat:
                self.beat(found, now - started)
                next_beat = now + self.heartbeat_s
            self.pause(min(POLL_S, self.heartbeat_s))

    def beat(self, found: dict[str, Any], elapsed: float) -> None:
        run_id = found.get("state", {}).get("run_id", "?")
        phase = found.get("phase") or "starting"
        self.console.line(f"heartbeat {clock(elapsed)} {run_id}: {phase}", "cyan")
        for line in found.get("tail", []):
            self.console.line(f"  | {line}")

    def pause(self, seconds: float) -> None:
        """Sleep, answering a signal within a tenth of a second."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.guard.checkpoint()
            time.sleep(0.1)  # sleep-ok: the tick of a pause that answers signals
        self.guard.checkpoint()

    def verdict(self, found: dict[str, Any]) -> int:
        """Show how the run ended; its exit code (3 when it vanished without one)."""
        final = self.poll(FINAL_LINES)
        if final["status"] == RUNNING:  # cannot happen after until_end; keep the last answer
            final = found
        for line in summary_lines(final.get("tail", [])):
            self.console.line(line, "bold" if line.startswith("gate:") else "")
        if final["status"] == ENDED:
            code = int(final["exit_code"])
            style = "bold green" if code == 0 else "bold red"
            self.console.line(f"detached run ended: exit {code}", style)
            return code
        # vanished, or none: its dir (state file and all) was removed under us
        self.console.line(
            f"detached run vanished: {final.get('why')}; its verdict is unknown (exit 3)",
            "bold red",
        )
        return ExitCode.INCONCLUSIVE

    def fetch(self, found: dict[str, Any], out: Path) -> Path | None:
        """results/ from the box into `out` (a tar stream); the run's dir there, if one."""
        results = found.get("state", {}).get("results")
        if not isinstance(results, str):
            return None
        try:
            data = self.link.fetch_tar(results)
        except HelperFailed as exc:
            self.console.line(f"no results to fetch from the box: {exc}", "yellow")
            return None
        return unpack(data, out)


def unpack(data: bytes, out: Path, redact: Redactor | None = None) -> Path | None:
    """Extract a results tar into `out` (no member may leave it); the one run dir in it.

    The run on the box scrubbed its artifacts; every text file passes this runner's
    redactor too, as everything gate writes does."""
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = [m for m in archive.getmembers() if Path(m.name).parts]
        archive.extractall(out, filter="data")
    redact = redact or Redactor()
    for member in members:
        if member.isfile():
            scrub(out / member.name, redact)
    runs = sorted({out / Path(m.name).parts[0] for m in members if m.isdir()})
    return runs[-1] if runs else None


def scrub(path: Path, redact: Redactor) -> None:
    """Rewrite a text file whose redacted form differs (binary files are left as they are)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return
    clean = redact(text)
    if clean != text:
        path.write_text(clean, encoding="utf-8")


def render_views(run_dir: Path, summary_md: Path | None, env: dict[str, str]) -> None:
    """report.html and summary.md again from the fetched artifacts (the comparison with
    the last passing run uses this runner's results), --summary-md, the CI step summary."""
    write_views(run_dir, Redactor(), summary_md, env)


def print_json(run_dir: Path) -> None:
    summary = run_dir / "summary.json"
    if summary.is_file():
        print(json.dumps(json.loads(summary.read_text()), indent=2))
