"""A stand-in for one box's gate run in the fleet runner's unit tests (run as a script).

`fleetchild.py --host BEHAVIOUR --out DIR [flags...]` behaves as its --host says:
    green       writes a passing summary.json, exits 0
    red         writes a failing summary.json (one failed check), exits 1
    gone        writes an inconclusive summary.json (could not connect), exits 3
    killed      prints a line, then SIGKILLs itself before writing anything
    peer-A-B    says it started (DIR/../started-A), then waits for started-B: proves the
                fleet started both before either ended (else exit 1 after 20 s)
    term        says it is ready (DIR/../ready-term-N), waits for a SIGTERM, exits 143
Every behaviour also prints its argv, so tests can see the flags it was given.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def summary(out: Path, run_id: str, code: int, verdict: str, checks: list[dict[str, str]]) -> None:
    run = out / run_id
    run.mkdir(parents=True)
    counts = {
        v: sum(c["verdict"] == v for c in checks) for v in ("pass", "fail", "inconclusive", "skip")
    }
    data = {
        "run_id": run_id,
        "verdict": verdict,
        "exit_code": code,
        "counts": counts,
        "checks": checks,
        "error": "could not connect" if code == 3 else None,
    }
    (run / "summary.json").write_text(json.dumps(data))


def wait_until(seen: object, what: str) -> None:
    deadline = time.monotonic() + 20
    while not seen():  # type: ignore[operator]
        if time.monotonic() > deadline:
            print(f"never saw {what}", flush=True)
            sys.exit(1)
        time.sleep(0.02)  # sleep-ok: polling a real file another process writes


def main() -> None:
    args = sys.argv[1:]
    host, out = args[args.index("--host") + 1], Path(args[args.index("--out") + 1])
    print(f"argv: {' '.join(args)}", flush=True)
    check = {"name": "status: exit code 0", "scenario": "", "verdict": "pass"}
    if host == "green":
        summary(out, "run-green", 0, "passed", [check])
        sys.exit(0)
    if host == "red":
        bad = {"name": "api: tier", "scenario": "nano", "verdict": "fail"}
        summary(out, "run-red", 1, "failed", [check, bad])
        sys.exit(1)
    if host == "gone":
        summary(out, "run-gone", 3, "inconclusive", [])
        sys.exit(3)
    if host == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    if host.startswith("peer-"):
        _, me, other = host.split("-")
        (out.parent / f"started-{me}").write_text("")
        wait_until(lambda: (out.parent / f"started-{other}").exists(), f"peer {other}")
        summary(out, f"run-{me}", 0, "passed", [check])
        sys.exit(0)
    if host.startswith("term"):
        got: list[int] = []
        signal.signal(signal.SIGTERM, lambda signum, _frame: got.append(signum))
        (out.parent / f"ready-{host}").write_text("")
        wait_until(lambda: got, "SIGTERM")
        print("got SIGTERM: restoring the box", flush=True)
        summary(out, f"run-{host}", 143, "interrupted", [check])
        sys.exit(143)
    sys.exit(2)


if __name__ == "__main__":
    main()
