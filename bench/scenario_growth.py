"""How gate's wall time grows with the number of scenarios (1, 2, 4, 8) on the sample
stack, and with the number of boxes (not yet: fleets are issue 11).

    .venv/bin/python -m bench.scenario_growth [--n 1] [--counts 1,2,4,8] [--time-scale 1]

One sample box at the given time scale, a throwaway loopback sshd, and `invoke gate --host
bench --matrix bench/growth_matrix.py --scenario g1 ... gK` (the sample's contract and
axes, eight declared scenarios that need no fact) for each K, the counts interleaved in
each of the N rounds. Each run is a whole gate run: connect, baseline, K scenarios,
restore and prove. Prints the wall time per K, per scenario, its ratio to one scenario,
the cost of each added scenario, and a straight-line fit (fixed cost + cost per
scenario). Figures, never assertions.
"""

from __future__ import annotations

import argparse
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
from gate.testing.sshd import SshdUnavailable

MATRIX = REPO / "bench" / "growth_matrix.py"
MAX_SCENARIOS = 8
BOXES_LINE = (
    "boxes (1, 2, 4): not measured: gate drives one box per run; fleets are issue 11 and "
    "do not exist yet"
)


@dataclass(frozen=True)
class Measured:
    label: str
    count: int
    run: gaterun.GateRun


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
    args: argparse.Namespace, began: Started, counts: Sequence[int], found: Sequence[Measured]
) -> list[str]:
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
        BOXES_LINE,
    ]


def parse_counts(text: str) -> list[int]:
    counts = sorted({int(c) for c in text.split(",") if c.strip()})
    if not counts or counts[0] < 1 or counts[-1] > MAX_SCENARIOS:
        raise ValueError(f"--counts takes numbers from 1 to {MAX_SCENARIOS}, not {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1, help="rounds (each runs every count)")
    parser.add_argument("--counts", default="1,2,4,8", help="scenario counts, 1 to 8")
    parser.add_argument("--time-scale", type=float, default=1.0, help="the stack's time scale")
    parser.add_argument("--gate-args", default="", help="extra arguments for every gate run")
    args = parser.parse_args(argv)
    try:
        counts = parse_counts(args.counts)
    except ValueError as exc:
        parser.error(str(exc))
    began = Started()
    try:
        found = measure_all(args, counts)
    except (BoxError, SshdUnavailable) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(args, began, counts, found)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
