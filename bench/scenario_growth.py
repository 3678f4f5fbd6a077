"""How gate's wall time grows with the number of scenarios (1, 2, 4, 8) on the sample
stack, and with the number of boxes (1, 2, 4: a fleet, `--host b1,b2,...`).

    .venv/bin/python -m bench.scenario_growth [--n 1] [--counts 1,2,4,8] [--boxes 1,2,4]
        [--time-scale 1]

One sample box at the given time scale, a throwaway loopback sshd, and `invoke gate --host
bench --matrix bench/growth_matrix.py --scenario g1 ... gK` (the sample's contract and
axes, eight declared scenarios that need no fact) for each K, the counts interleaved in
each of the N rounds. Each run is a whole gate run: connect, baseline, K scenarios,
restore and prove. Prints the wall time per K, per scenario, its ratio to one scenario,
the cost of each added scenario, and a straight-line fit (fixed cost + cost per
scenario). Then the same one scenario on 1, 2 and 4 boxes at once (each its own sample
stack behind the same loopback sshd, `--host b1,...,bK`): the fleet's wall time, its ratio
to one box, and the boxes' own wall times. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import gaterun
from bench.gate_overhead import loopback_sshd
from bench.machine import Started
from bench.sample_box import REPO, BoxError, boxes, install
from bench.stats import aligned, growth, ratio
from gate.testing.sshd import SshdUnavailable, write_inventory

MATRIX = REPO / "bench" / "growth_matrix.py"
MAX_SCENARIOS = 8
MAX_BOXES = 4


@dataclass(frozen=True)
class Measured:
    label: str
    count: int
    run: gaterun.GateRun
    boxes_s: tuple[float, ...] = ()
    """A fleet's per-box wall times, read before its temp dir goes."""


def scenario_args(count: int) -> list[str]:
    """`--matrix bench/growth_matrix.py --scenario g1 ... gCOUNT`."""
    picked = [arg for i in range(1, count + 1) for arg in ("--scenario", f"g{i}")]
    return ["--matrix", str(MATRIX), *picked]


def measure_all(args: argparse.Namespace, counts: Sequence[int]) -> list[Measured]:
    chosen = gaterun.variants(gaterun.split_args(args.gate_args), gaterun.gate_help())
    found: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="gate-bench-growth-") as tmp:
        root = Path(tmp)
        box = root / "box"
        with boxes(box), loopback_sshd(root / "sshd") as sshd:
            install(box, args.time_scale)
            where = gaterun.inventory(sshd, root / "inventory", box)
            for _ in range(args.n):
                for count in counts:
                    for label, extra in chosen:
                        run = gaterun.run_gate(
                            where, root / "results", [*scenario_args(count), *extra]
                        )
                        found.append(Measured(label, count, run))
    return found


def measure_boxes(args: argparse.Namespace, counts: Sequence[int]) -> list[Measured]:
    """One scenario on K boxes at once (a fleet), K from `counts`, for N rounds."""
    found: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="gate-bench-fleet-") as tmp:
        root = Path(tmp)
        paths = [root / f"b{i}" for i in range(1, max(counts) + 1)]
        with boxes(*paths), loopback_sshd(root / "sshd") as sshd:
            for path in paths:
                install(path, args.time_scale)
                write_inventory(root / "inventory", path.name, dir=str(path),
                                **sshd.inventory_fields())  # fmt: skip
            for _ in range(args.n):
                for count in counts:
                    host = ",".join(p.name for p in paths[:count])
                    run = gaterun.run_gate(
                        root / "inventory", root / "results", scenario_args(1), host=host
                    )
                    own = tuple(row["duration_s"] for row in fleet_rows(run))
                    found.append(Measured("fleet", count, run, own))
    return found


def box_table(found: Sequence[Measured], counts: Sequence[int]) -> list[tuple[str, ...]]:
    """Per box count: the fleet's wall time, its ratio to one box, the boxes' own times."""
    walls = {c: [m.run.wall for m in found if m.count == c] for c in counts}
    one = statistics.median(walls[counts[0]])
    rows: list[tuple[str, ...]] = []
    for count in counts:
        mine = [m.run for m in found if m.count == count]
        own = [s for m in found if m.count == count for s in m.boxes_s]
        failed = [run for run in mine if run.exit_code]
        rows.append((
            str(count), str(len(mine)), f"{statistics.median(walls[count]):.1f}",
            ratio(statistics.median(walls[count]), one),
            f"{max(own):.1f}" if own else "-",
            f"{len(failed)} run(s) did not pass: {failed[0].said}" if failed else "",
        ))  # fmt: skip
    return rows


def fleet_rows(run: gaterun.GateRun) -> list[dict[str, float]]:
    """The fleet summary's per-box rows (empty when it wrote none)."""
    if run.results is None or not (run.results / "summary.json").exists():
        return []
    summary = json.loads((run.results / "summary.json").read_text(encoding="utf-8"))
    return [row for row in summary.get("boxes", []) if isinstance(row.get("duration_s"), float)]


BOX_HEADER = ("boxes", "runs", "wall median s", "x 1 box", "slowest box s", "note")
HEADER = (
    "gate args", "scenarios", "runs", "wall median s", "wall p95 s", "s per scenario",
    "x 1 scenario", "s per added scenario", "note",
)  # fmt: skip


def table(found: Sequence[Measured], counts: Sequence[int]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label in dict.fromkeys(m.label for m in found):
        mine = [m for m in found if m.label == label]
        steps = growth({c: [m.run.wall for m in mine if m.count == c] for c in counts})
        for step in steps:
            failed = [m.run for m in mine if m.count == step.count and m.run.exit_code]
            note = f"{len(failed)} run(s) did not pass: {failed[0].said}" if failed else ""
            rows.append((
                label, str(step.count), str(step.runs), f"{step.median:.1f}", f"{step.p95:.1f}",
                f"{step.per_item:.1f}", ratio(step.median, steps[0].median),
                "-" if step.added is None else f"{step.added:.1f}", note,
            ))  # fmt: skip
    return rows


def fit_lines(found: Sequence[Measured]) -> list[str]:
    """wall = fixed + per_scenario x count, least squares over every run of a label."""
    lines = []
    for label in dict.fromkeys(m.label for m in found):
        mine = [m for m in found if m.label == label]
        if len({m.count for m in mine}) < 2:
            continue
        fit = statistics.linear_regression([m.count for m in mine], [m.run.wall for m in mine])
        lines.append(
            f"  {label}: wall ~ {fit.intercept:.1f} s + {fit.slope:.1f} s per scenario "
            "(fixed: start-up, connect, baseline, restore and proof)"
        )
    return lines


def report(
    args: argparse.Namespace,
    began: Started,
    counts: Sequence[int],
    found: Sequence[Measured],
    fleets: Sequence[Measured],
) -> list[str]:
    box_counts = sorted({m.count for m in fleets})
    return [
        f"wall time vs scenarios: `invoke gate --matrix bench/growth_matrix.py --scenario ...` "
        f"over a loopback sshd, {args.n} round(s), sample stack at time scale "
        f"{args.time_scale:g} ({began.stamp})",
        began.machine(),
        "",
        *aligned([HEADER, *table(found, counts)]),
        "",
        "straight-line fit:",
        *fit_lines(found),
        "",
        "wall time vs boxes: one scenario on each box at once (`--host b1,...,bK`, a fleet)",
        *(aligned([BOX_HEADER, *box_table(fleets, box_counts)]) if fleets else ["  (none)"]),
    ]


def parse_counts(text: str, most: int = MAX_SCENARIOS, flag: str = "--counts") -> list[int]:
    counts = sorted({int(c) for c in text.split(",") if c.strip()})
    if not counts or counts[0] < 1 or counts[-1] > most:
        raise ValueError(f"{flag} takes numbers from 1 to {most}, not {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1, help="rounds (each runs every count)")
    parser.add_argument("--counts", default="1,2,4,8", help="scenario counts, 1 to 8")
    parser.add_argument("--boxes", default="1,2,4", help="box counts for the fleet, 1 to 4")
    parser.add_argument("--time-scale", type=float, default=1.0, help="the stack's time scale")
    parser.add_argument("--gate-args", default="", help="extra arguments for every gate run")
    args = parser.parse_args(argv)
    try:
        counts = parse_counts(args.counts)
        box_counts = parse_counts(args.boxes, MAX_BOXES, "--boxes")
    except ValueError as exc:
        parser.error(str(exc))
    began = Started()
    try:
        found = measure_all(args, counts)
        fleets = measure_boxes(args, box_counts)
    except (BoxError, SshdUnavailable) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(args, began, counts, found, fleets)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
