"""Readiness detection lag: from the stack's own log saying it is ready to gate seeing it,
and the CPU gate's polling costs on the box.

    .venv/bin/python -m bench.readiness_lag [--n 20] [--time-scale 1] [--paths local,ssh]
        [--readiness wait,polls]

Installs one sample-stack box in a temp dir (real supervisord), then for each path (the
local target, and SSH over a throwaway loopback sshd) restarts the stack N times through
gate's own Box and waits with gate's own `battery.wait_ready` (gate/waits.py polling), as
the matrix phase does after an apply. For each restart:

- log ready: when the last expected service wrote its ready line (bench/stacklog.py);
- gate saw: when the poll that found the stack ready returned;
- lag = gate saw - log ready (negative: gate saw it before the log said so);
- box CPU: the CPU of the processes the polls ran on the box (everything below the sshd,
  or below this process for the local target: bench/proctree.py) over the wait, as a
  share of one core.

Each SSH transport gate offers (the persistent channel, `exec`) named by
`--ssh-transports` gets its own row, once with the sample's blocking status (Status.wait,
asked in slices) and once polling the status command (`--readiness`). Figures, never
assertions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import proctree
from bench.machine import Started
from bench.sample_box import REPO, BoxError, boxes, config, install
from bench.stacklog import LogWatcher
from bench.stats import aligned, median, p95, percent, ratio
from gate.battery import wait_ready
from gate.box import Box, Kind
from gate.checks import Verdict
from gate.contract import StackContract
from gate.inventory import TRANSPORTS, HostSpec
from gate.options import load_contract_file
from gate.target import Target, target_for
from gate.testing.sshd import Sshd, SshdUnavailable
from gate.waits import Attempt

TARGET_LAG_MEDIAN_MS, TARGET_LAG_P95_MS, TARGET_CPU = 100.0, 250.0, 0.05
READY_TIMEOUT = 120.0
LOG_GRACE = 15.0
"""How long to wait for the log's ready lines once gate saw ready (gate may be first)."""


@dataclass(frozen=True)
class Sample:
    lag: float
    cpu: float
    window: float
    polls: int
    stack_cpu: float
    """Of `cpu`, what the stack's own commands (its status, blocking or not) used."""

    @property
    def gate_cpu(self) -> float:
        """What gate's polling itself cost: the rest (the far end, boxtool, the shells)."""
        return max(0.0, self.cpu - self.stack_cpu)


@dataclass
class Row:
    """One path's samples, and what did not count (with why)."""

    path: str
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    early: int = 0
    """Restarts whose log said ready before the wait began: not a lag, left out."""


@dataclass(frozen=True)
class Route:
    """How to reach the box, and whose process tree holds what gate runs there."""

    name: str
    target: Callable[[], Target]
    cpu_root: Callable[[], int]
    with_root_own: bool


def ssh_routes(sshd: Sshd, box: Path, chosen: list[str]) -> list[Route]:
    """One route per SSH transport gate offers (gate.inventory.TRANSPORTS) that `chosen`
    names (all of them when it names none)."""

    def root() -> int:
        assert sshd.pid is not None
        return sshd.pid

    def spec(transport: str) -> HostSpec:
        return HostSpec(
            name="bench",
            host=sshd.host,
            port=sshd.port,
            user=sshd.user,
            identity=sshd.identity,
            dir=str(box),
            known_hosts=sshd.known_hosts,
            transport=transport,
        )

    kinds = [t for t in TRANSPORTS if t in chosen] or list(TRANSPORTS)
    return [Route(f"ssh --transport {t}", partial(target_for, spec(t)), root, True) for t in kinds]


def local_route(box: Path) -> Route:
    spec = HostSpec(name="local", host="localhost", dir=str(box), local=True)
    return Route("local", partial(target_for, spec), os.getpid, False)


def measure(
    route: Route,
    box: Path,
    contract: StackContract,
    watcher: LogWatcher,
    n: int,
    warmup: int,
) -> Row:
    how = "blocking status" if contract.status.wait else "polls"
    row = Row(f"{route.name}, {how}")
    target = route.target()
    try:
        target.open()
        gbox = Box(target, _spec_of(box), contract, record=lambda _event: None)
        gbox.install_tool()
        cfg = config(box)
        expected = contract.expected_services(cfg)
        for index in range(warmup + n):
            sample = one_restart(gbox, cfg, expected, route, watcher, row)
            if sample is not None and index >= warmup:
                row.samples.append(sample)
    except Exception as exc:  # a path that cannot run says why in its row
        row.notes.append(f"failed: {type(exc).__name__}: {str(exc)[:160]}")
    finally:
        target.close()
    return row


CPU_WRAPPER = """#!/bin/bash
# bench/readiness_lag.py: the sample's control command; its CPU (user, sys) is logged.
TIMEFORMAT='%3U %3S'
{{ time {stackctl} "$@" 2>&3 ; }} 3>&2 2>> {log}
"""


def cpu_wrapper(box: Path) -> Path:
    """A control command that logs each stackctl run's CPU to box/stack-cpu.log: the box
    CPU splits into the stack's own status runs and gate's polling."""
    wrapper = box / "cpu-stackctl"
    wrapper.write_text(CPU_WRAPPER.format(stackctl=box / "stackctl", log=stack_cpu_log(box)))
    wrapper.chmod(0o755)
    return wrapper


def stack_cpu_log(box: Path) -> Path:
    return box / "stack-cpu.log"


def stack_cpu_since(log: Path, offset: int) -> float:
    """The CPU seconds the stack's commands logged past `offset` bytes of the log."""
    if not log.exists():
        return 0.0
    with log.open("rb") as handle:
        handle.seek(offset)
        lines = handle.read().decode().split("\n")
    return sum(float(u) + float(s) for u, s in (line.split() for line in lines if line.strip()))


def _spec_of(box: Path) -> HostSpec:
    return HostSpec(name="bench", host="box", dir=str(box), control=str(box / "cpu-stackctl"))


def one_restart(
    gbox: Box,
    cfg: Any,
    expected: frozenset[str],
    route: Route,
    watcher: LogWatcher,
    row: Row,
) -> Sample | None:
    """Restart the stack, wait as gate does, and compare with the log."""
    since = time.time()
    restarted = gbox.control("restart", kind=Kind.MUTATE, timeout=120)
    if not restarted.ok:
        row.notes.append(f"restart exited {restarted.exit_code}: {restarted.stderr[-120:]}")
        return None
    polls: list[float] = []
    seen: list[float] = []

    def observe(_name: str, attempt: Attempt[Any], _left: float) -> None:
        now = time.time()
        polls.append(now)
        if attempt.ready:
            seen.append(now)

    log = stack_cpu_log(Path(gbox.host.dir))
    offset = log.stat().st_size if log.exists() else 0
    began, cpu0 = time.time(), _cpu(route)
    record = wait_ready(gbox, cfg, READY_TIMEOUT, observe)
    cpu1, ended = _cpu(route), time.time()
    stack_cpu = stack_cpu_since(log, offset)
    if record.verdict is not Verdict.PASS or not seen:
        row.notes.append(f"not ready: {record.evidence[:120]}")
        return None
    log_ready = watcher.wait_ready(expected, since, LOG_GRACE)
    if log_ready is None:
        row.notes.append("the log never said ready")
        return None
    if log_ready < began:
        row.early += 1
        return None
    return Sample(seen[-1] - log_ready, cpu1 - cpu0, ended - began, len(polls), stack_cpu)


def _cpu(route: Route) -> float:
    return proctree.tree_cpu_seconds(route.cpu_root(), with_root_own=route.with_root_own)


HEADER = (
    "path", "lag median ms", "lag p95 ms", "x 100 ms", "x 250 ms", "polls/wait",
    "box CPU median", "box CPU p95", "x 5%", "box CPU ms/poll", "of it stack's status",
    "gate's polling", "gate's x 5%", "note",
)  # fmt: skip


def row_cells(row: Row) -> tuple[str, ...]:
    note = "; ".join(
        [*([f"{row.early} ready before the wait began (left out)"] if row.early else []),
         *row.notes[:2]]
    )  # fmt: skip
    if not row.samples:
        return (row.path, *("-" for _ in HEADER[1:-1]), note or "no sample")
    lags = [s.lag * 1000 for s in row.samples]
    shares = [s.cpu / s.window for s in row.samples if s.window > 0]
    gate_shares = [s.gate_cpu / s.window for s in row.samples if s.window > 0]
    return (
        row.path,
        f"{median(lags):.0f}",
        f"{p95(lags):.0f}",
        ratio(median(lags), TARGET_LAG_MEDIAN_MS),
        ratio(p95(lags), TARGET_LAG_P95_MS),
        f"{median([float(s.polls) for s in row.samples]):.0f}",
        percent(median(shares), 1.0),
        percent(p95(shares), 1.0),
        ratio(median(shares), TARGET_CPU),
        f"{median([1000 * s.cpu / s.polls for s in row.samples if s.polls]):.0f}",
        percent(median([s.stack_cpu / s.window for s in row.samples if s.window > 0]), 1.0),
        percent(median(gate_shares), 1.0),
        ratio(median(gate_shares), TARGET_CPU),
        note,
    )


@contextmanager
def sshd_in(workdir: Path, wanted: bool) -> Iterator[Sshd | None]:
    if not wanted:
        yield None
        return
    workdir.mkdir()
    server = Sshd(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def readiness_contracts(contract: StackContract, chosen: list[str]) -> list[StackContract]:
    """The sample's contract as declared (readiness asks its blocking status, Status.wait:
    "wait") and without it (readiness polls the status command: "polls")."""
    polling = dataclasses.replace(contract, status=dataclasses.replace(contract.status, wait=None))
    ways = {"wait": contract, "polls": polling}
    return [ways[name] for name in ways if name in chosen] or list(ways.values())


def run(args: argparse.Namespace) -> list[str]:
    began = Started()
    contracts = readiness_contracts(
        load_contract_file(REPO / "matrix.py").contract, args.readiness.split(",")
    )
    wanted = [p.strip() for p in args.paths.split(",") if p.strip()]
    with tempfile.TemporaryDirectory(prefix="gate-bench-ready-") as tmp:
        box = Path(tmp) / "box"
        with boxes(box), sshd_in(Path(tmp) / "sshd", "ssh" in wanted) as sshd:
            install(box, args.time_scale)
            cpu_wrapper(box)
            paths = [local_route(box)] if "local" in wanted else []
            if sshd is not None:
                paths += ssh_routes(sshd, box, args.ssh_transports.split(","))
            watcher = LogWatcher(box / "logs")
            watcher.start()
            try:
                rows = [
                    measure(p, box, contract, watcher, args.n, args.warmup)
                    for p in paths
                    for contract in contracts
                ]
            finally:
                watcher.stop()
    return [
        f"readiness detection lag after `stackctl restart`: {args.n} restarts per path, "
        f"{args.warmup} warm-up left out, sample stack at time scale {args.time_scale:g} "
        f"({began.stamp})",
        began.machine(),
        "lag = the poll that saw ready returned - the last expected service's ready line in "
        "its log; box CPU = CPU of what gate ran on the box over the wait, share of one core; "
        "of it, the stack's status runs (timed on the box) and the rest, gate's polling",
        "targets (issue 10): lag median 100 ms, p95 250 ms, box CPU 5% of one core",
        "",
        *aligned([HEADER, *(row_cells(r) for r in rows)]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=20, help="timed restarts per path")
    parser.add_argument("--warmup", type=int, default=1, help="restarts left out first")
    parser.add_argument("--time-scale", type=float, default=1.0, help="the stack's time scale")
    parser.add_argument("--paths", default="local,ssh", help="local, ssh or both")
    parser.add_argument(
        "--readiness",
        default="wait,polls",
        help="the sample's blocking status (wait), the status polls (polls), or both",
    )
    parser.add_argument(
        "--ssh-transports",
        default="persistent,exec",
        help="SSH transports to compare (gate.inventory.TRANSPORTS)",
    )
    args = parser.parse_args(argv)
    try:
        lines = run(args)
    except (BoxError, SshdUnavailable) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
