"""Gate overhead on the full sample matrix: wall time minus the stack's intrinsic time, as a
share, at the sample stack's normal speed and at time scale 10.

    .venv/bin/python -m bench.gate_overhead [--n 1] [--time-scales 1,10] [--gate-args "..."]

For each time scale: a fresh sample box at that scale (the stack's `stack.time_scale`:
every sync, verify, share interval and debounce multiplied), a second box whose node
stands in for the remote node, a spare compact data dir synced by the stack itself, and
`invoke gate --host bench` over a throwaway loopback sshd with every fact (the whole
declared matrix, then restore and prove), as scripts/demo.py runs it. Then:

- the stack's commands' own run time: the inventory's control command is a wrapper that
  times `stackctl` on the box (bash's EPOCHREALTIME, around the call only);
- convergence: after each apply, up, restart or start, until the last ready line its
  services wrote in their logs (bench/stacklog.py watches them as they grow);
- gate's commands: results/<run-id>/events.jsonl.

Overhead = wall - (stack commands on the box U convergence): bench/overhead.py. The
wrapper's own bash start-up (a few ms a command) counts as overhead. Figures, never
assertions.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import gaterun
from bench.machine import Started
from bench.overhead import Breakdown, breakdown, commands_from, parse_stack_runs, waits_of
from bench.sample_box import REPO, BoxError, boxes, config, install, seed_compact
from bench.stacklog import LogWatcher
from bench.stats import aligned, median, p95, percent, ratio
from gate.options import load_contract_file
from gate.testing.sshd import Sshd, SshdUnavailable

TARGETS = {1.0: 0.05, 10.0: 0.02}
WRAPPER = """#!/bin/bash
# bench/gate_overhead.py: the sample stack's control command, timed on the box.
started=$EPOCHREALTIME
{stackctl} "$@"
code=$?
printf '%s %s %s %s\\n' "$started" "$EPOCHREALTIME" "$code" "${{1:-none}}" >> {log}
exit $code
"""


@dataclass(frozen=True)
class Measured:
    scale: float
    label: str
    run: gaterun.GateRun
    split: Breakdown


@dataclass(frozen=True)
class Setup:
    """What every gate run of one time scale shares."""

    scale: float
    box: Path
    wrapper: Path
    timings: Path
    inventory: Path
    facts: tuple[str, ...]
    counters: frozenset[str]
    """The check records that are waits for a counter to grow."""


def write_wrapper(path: Path, box: Path, timings: Path) -> Path:
    text = WRAPPER.format(
        stackctl=shlex.quote(str(box / "stackctl")), log=shlex.quote(str(timings))
    )
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def one_run(setup: Setup, label: str, args: Sequence[str], out: Path) -> Measured:
    setup.timings.write_text("", encoding="utf-8")
    watcher = LogWatcher(setup.box / "logs")
    watcher.start()
    try:
        run = gaterun.run_gate(setup.inventory, out, [*setup.facts, *args])
    finally:
        watcher.stop()
    runs = parse_stack_runs(setup.timings.read_text(encoding="utf-8"))
    split = breakdown(
        (run.began, run.ended),
        commands_from(run.events()),
        runs,
        watcher.lines(),
        str(setup.wrapper),
        waits_of(run.checks(), setup.counters),
    )
    return Measured(setup.scale, label, run, split)


def prepare(root: Path, scale: float, sshd: Sshd, facts: tuple[str, ...]) -> Setup:
    name = f"{scale:g}"
    box = install(root / f"box-{name}", scale)
    timings = root / f"control-times-{name}.log"
    wrapper = write_wrapper(root / f"timed-stackctl-{name}", box, timings)
    where = gaterun.inventory(sshd, root / f"inventory-{name}", box, control=str(wrapper))
    counters = load_contract_file(REPO / "matrix.py").contract.counters
    names = frozenset(f"{c.probe}: {c.name}" for c in counters)
    return Setup(scale, box, wrapper, timings, where, facts, names)


@contextmanager
def loopback_sshd(workdir: Path) -> Iterator[Sshd]:
    workdir.mkdir()
    server = Sshd(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def measure_all(args: argparse.Namespace) -> list[Measured]:
    scales = [float(s) for s in args.time_scales.split(",") if s.strip()]
    chosen = gaterun.variants(gaterun.split_args(args.gate_args), gaterun.gate_help())
    found: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="gate-bench-overhead-") as tmp:
        root = Path(tmp)
        remote, alt = root / "remote", root / "alt-data"
        every_box = [remote, *(root / f"box-{s:g}" for s in scales)]
        with boxes(*every_box), loopback_sshd(root / "sshd") as sshd:
            install(remote, 1.0)
            seed_compact(alt, root)
            node = config(remote)["node"]["rpc_port"]
            facts = ("--fact", f"remote_node_url=http://127.0.0.1:{node}",
                     "--fact", f"alt_data_dir={alt}")  # fmt: skip
            for scale in scales:
                setup = prepare(root, scale, sshd, facts)
                for label, extra in chosen:
                    found += [one_run(setup, label, extra, root / "results") for _ in range(args.n)]
    return found


RUN_HEADER = (
    "time scale", "gate args", "exit", "wall s", "intrinsic s", "overhead s", "share",
    "target", "x target", "share less counter waits", "note",
)  # fmt: skip
SPLIT_HEADER = (
    "time scale", "gate args", "commands", "in commands s", "stack cmds (status)",
    "stack on box s", "stack as sent s", "converging s", "overhead in cmds s",
    "overhead outside cmds s", "overhead in counter waits s",
)  # fmt: skip


def run_cells(m: Measured) -> tuple[str, ...]:
    target = TARGETS.get(m.scale)
    note = "" if m.run.exit_code == 0 else f"gate did not pass: {m.run.said}"
    return (
        f"{m.scale:g}",
        m.label,
        str(m.run.exit_code),
        f"{m.split.wall:.1f}",
        f"{m.split.intrinsic:.1f}",
        f"{m.split.overhead:.1f}",
        percent(m.split.overhead, m.split.wall),
        percent(target, 1.0) if target else "-",
        ratio(m.split.share, target),
        percent(m.split.overhead - m.split.counting, m.split.wall),
        note,
    )


def split_cells(m: Measured) -> tuple[str, ...]:
    s = m.split
    return (
        f"{m.scale:g}",
        m.label,
        str(s.commands),
        f"{s.in_commands:.1f}",
        f"{s.stack_commands} ({s.status_calls})",
        f"{s.stack_on_box:.1f}",
        f"{s.stack_as_sent:.1f}",
        f"{s.converging:.1f}",
        f"{s.overhead_in_commands:.1f}",
        f"{s.overhead_outside:.1f}",
        f"{s.counting:.1f}",
    )


def settle_line(m: Measured) -> str:
    settles = " ".join(f"{x:.1f}" for x in m.split.settles) or "-"
    return f"  time scale {m.scale:g}, {m.label}: {settles}"


def summary_lines(found: Sequence[Measured]) -> list[str]:
    """Median and p95 of the share per (scale, gate args) when there are several runs."""
    groups: dict[tuple[float, str], list[float]] = {}
    for m in found:
        groups.setdefault((m.scale, m.label), []).append(m.split.share)
    if all(len(v) < 2 for v in groups.values()):
        return []
    header = ("time scale", "gate args", "runs", "share median", "share p95", "x target")
    rows = [
        (f"{scale:g}", label, str(len(v)), percent(median(v), 1.0), percent(p95(v), 1.0),
         ratio(median(v), TARGETS.get(scale)))
        for (scale, label), v in groups.items()
    ]  # fmt: skip
    return ["", *aligned([header, *rows])]


def report(args: argparse.Namespace, began: Started, found: Sequence[Measured]) -> list[str]:
    return [
        f"gate overhead on the full sample matrix over a loopback sshd: {args.n} run(s) per "
        f"time scale and gate arguments ({began.stamp})",
        began.machine(),
        "intrinsic = the stack's commands timed on the box U apply-to-ready convergence from "
        "its logs; overhead = wall - intrinsic (the wall is `invoke gate` start to exit)",
        "targets (issue 10): overhead under 5% at time scale 1, under 2% at time scale 10",
        "",
        *aligned([RUN_HEADER, *(run_cells(m) for m in found)]),
        "",
        "where the time goes (status = how many of the stack's commands were its status):",
        *aligned([SPLIT_HEADER, *(split_cells(m) for m in found)]),
        "",
        "convergence after each apply/up/restart/start that brought services up (s):",
        *(settle_line(m) for m in found),
        *summary_lines(found),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1, help="gate runs per scale and gate args")
    parser.add_argument("--time-scales", default="1,10", help="the stack's time scales")
    parser.add_argument("--gate-args", default="", help="extra arguments for every gate run")
    args = parser.parse_args(argv)
    began = Started()
    try:
        found = measure_all(args)
    except (BoxError, SshdUnavailable) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(args, began, found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
