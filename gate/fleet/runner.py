"""Run one gate run per box, all at once, and end with the fleet's one verdict.

Each box's run is a child `gate` process with the same flags and that box's `--host`, its
results under results/<fleet-run-id>/<box>/<run-id>/ and its console in
results/<fleet-run-id>/<box>/console.txt; its lock, baseline, journal and restore are its
own, exactly as a run on one box. The children run in their own sessions: a Ctrl-C or
SIGTERM reaches the fleet, which forwards it to every child still running (each restores
its box, gate/signals.py) and waits for them all. A fleet runner killed outright leaves
its children to finish and restore on their own; their consoles and results still land.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from gate.artifacts import Artifacts, new_run_id
from gate.errors import ExitCode
from gate.fleet.hosts import Fleet, FleetBox
from gate.fleet.verdict import BoxResult, box_result, fleet_summary, markdown, table_lines
from gate.options import Flag, Options
from gate.redact import Redactor
from gate.report import Console
from gate.report.write import STEP_SUMMARY, write_private
from gate.signals import Interrupted, process_guard

POLL_S = 0.1
CONSOLE = "console.txt"
PER_FLEET = frozenset({"host", "out", "json", "summary_md", "list"})
"""Flags the fleet keeps for itself: each child gets its own --host and --out, and the
fleet writes the one --json / --summary-md."""

Launch = Callable[[list[str]], list[str]]
"""Child flags -> the whole command line (tests swap in a stand-in for gate)."""
ChildFlags = Callable[[str, Path], list[str]]
"""(the box's --host entry, its --out dir) -> the flags of its run."""


def gate_launch(program: str) -> Launch:
    """A child run started the way the user started this one, so its hints read the same."""
    head = ["-m", "invoke", "gate"] if program == "invoke gate" else ["-m", "gate.cli.script"]
    return lambda flags: [sys.executable, *head, *flags]


def child_flags(raw: Mapping[str, Any], table: Sequence[Flag], entry: str, out: Path) -> list[str]:
    """The user's flags for one box: every one given, with this box's --host and --out."""
    words = ["--host", entry, "--out", str(out)]
    for flag in table:
        value = raw.get(flag.name)
        if flag.name in PER_FLEET or value in (None, "", False, [], ()):
            continue
        if flag.kind == "bool":
            words.append(flag.option)
        elif flag.kind == "repeat":
            words += [w for item in value for w in (flag.option, str(item))]
        else:
            words += [flag.option, str(value)]
    return words


@dataclass
class Child:
    """One box's run: its process, and how much of its console was shown."""

    box: FleetBox
    dir: Path
    proc: subprocess.Popen[bytes] | None
    started: float
    ended: float | None = None
    shown: int = 0
    partial: bytes = b""
    error: str | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def console(self) -> Path:
        return self.dir / CONSOLE


class FleetRun:
    """Starts every box's run, relays their consoles and signals, and writes the verdict."""

    def __init__(
        self, opts: Options, fleet: Fleet, console: Console, launch: Launch, flags: ChildFlags
    ) -> None:
        self.opts = opts
        self.fleet = fleet
        self.console = console
        self.launch = launch
        self.flags = flags
        self.guard = process_guard()
        self.fleet_id = new_run_id()
        self.artifacts = Artifacts(opts.out, self.fleet_id, Redactor())
        self.width = max(len(label) for label in fleet.labels)
        self.forwarded = 0

    def execute(self) -> int:
        began = time.time()
        self.console.line(
            f"fleet {self.fleet_id}: {len(self.fleet.boxes)} boxes in parallel "
            f"({self.fleet.source}): {', '.join(self.fleet.labels)}",
            "bold",
        )
        try:
            children = [self._start(box) for box in self.fleet.boxes]
            self._wait(children)
        finally:
            self.guard.uninstall()
        results = [self._result(child) for child in children]
        return self._report(results, (began, time.time()))

    def _start(self, box: FleetBox) -> Child:
        where = self.artifacts.dir / box.label
        where.mkdir(mode=0o700)
        argv = self.launch(self.flags(box.entry, where))
        env = {k: v for k, v in os.environ.items() if k != STEP_SUMMARY}  # the fleet's job
        fd = os.open(where / CONSOLE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env,
                start_new_session=True,  # only the fleet hears the terminal; it forwards
            )  # fmt: skip
        except OSError as exc:  # the box's run never began: said in its row, others go on
            return Child(box, where, None, time.monotonic(), time.monotonic(), error=str(exc))
        finally:
            os.close(fd)
        return Child(box, where, proc, time.monotonic())

    def _wait(self, children: list[Child]) -> None:
        """Until every child has ended: relay new console lines, forward new signals."""
        while True:
            self._forward(children)
            running = False
            for child in children:
                if child.proc is not None and child.ended is None:
                    if child.proc.poll() is None:
                        running = True
                    else:
                        child.ended = time.monotonic()
                self._relay(child, final=child.ended is not None)
            if not running:
                return
            time.sleep(POLL_S)  # sleep-ok: the poll interval of a wait on the children

    def _forward(self, children: list[Child]) -> None:
        for signum in self.guard.received[self.forwarded :]:
            live = [c for c in children if c.proc is not None and c.ended is None]
            name = signal.Signals(signum).name
            self.console.line(
                f"fleet: {name}: forwarded to {len(live)} running box run(s); "
                "each restores its box, then the fleet reports",
                "bold yellow",
            )
            for child in live:
                assert child.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signum)
        self.forwarded = len(self.guard.received)

    def _relay(self, child: Child, *, final: bool) -> None:
        """Print the console lines the child wrote since last time, prefixed by its box."""
        with contextlib.suppress(FileNotFoundError), child.console.open("rb") as handle:
            handle.seek(child.shown)
            data = handle.read()
            child.shown += len(data)
            chunk = child.partial + data
            *whole, child.partial = chunk.split(b"\n")
            if final and child.partial:
                whole, child.partial = [*whole, child.partial], b""
            for raw in whole:
                text = raw.decode("utf-8", errors="replace").rstrip("\r")
                self.console.line(f"[{child.box.label:<{self.width}}] {text}")

    def _result(self, child: Child) -> BoxResult:
        duration = (child.ended or time.monotonic()) - child.started
        label, entry, console = child.box.label, child.box.entry, str(child.console)
        if child.proc is None:
            return box_result(label, entry, ExitCode.INCONCLUSIVE, duration, None,
                              f"could not start: {child.error}", console=console)  # fmt: skip
        runs = sorted(p for p in child.dir.iterdir() if p.is_dir())
        found = runs[-1] if runs and (runs[-1] / "summary.json").is_file() else None
        summary = _read_json(found / "summary.json") if found else None
        return box_result(label, entry, int(child.proc.returncode), duration, summary,
                          results=str(found) if found else None, console=console)  # fmt: skip

    def _report(self, boxes: list[BoxResult], times: tuple[float, float]) -> int:
        summary = fleet_summary(self.fleet_id, self.fleet.source, self.opts.mode, boxes, times)
        code = int(summary["exit_code"])
        if self.guard.first is not None and code == ExitCode.PASSED:  # never 0 once signalled
            code = Interrupted(self.guard.first).exit_code
            summary.update(exit_code=code, verdict="interrupted")
        self.artifacts.write_json("summary.json", summary)
        text = self.artifacts.redact(markdown(summary, boxes))
        self.artifacts.write_text("summary.md", text)
        if self.opts.summary_md is not None:
            self.opts.summary_md.parent.mkdir(parents=True, exist_ok=True)
            write_private(self.opts.summary_md, text)
        step = os.environ.get(STEP_SUMMARY)
        if step:
            write_private(Path(step), text + "\n", append=True)
        for line in table_lines(boxes):
            self.console.line(line)
        for box in boxes:
            if box.exit_code and box.error:
                self.console.line(f"  {box.label}: {box.error}", "yellow")
        style = "bold green" if code == ExitCode.PASSED else "bold red"
        self.console.line(f"gate fleet: {summary['verdict']} (exit {code}): the worst of "
                          f"{len(boxes)} boxes", style)  # fmt: skip
        self.console.line(f"results: {self.artifacts.dir}")
        if self.opts.json:
            sys.stdout.write(self.artifacts.redact(json.dumps(summary, indent=2)) + "\n")
        return code


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def run_fleet(
    opts: Options,
    raw: Mapping[str, Any],
    fleet: Fleet,
    stream: TextIO | None = None,
    launch: Launch | None = None,
) -> int:
    """The fleet's exit code: the worst of its boxes' (gate/fleet/verdict.py)."""
    from gate.cli.flags import table  # the flag table imports the phases: only when run

    flags = table()

    def for_box(entry: str, out: Path) -> list[str]:
        return child_flags(raw, flags, entry, out)

    console = Console(Redactor(), stream)
    guard = process_guard()
    if guard.first is not None:  # a Ctrl-C while gate was starting: no box run begins
        guard.uninstall()
        console.line(f"gate: {Interrupted(guard.first)} before the fleet began: nothing touched")
        return Interrupted(guard.first).exit_code
    run = FleetRun(opts, fleet, console, launch or gate_launch(opts.program), for_box)
    return run.execute()
