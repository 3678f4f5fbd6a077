"""`stackctl`: the box's control command (the shapes of `docker compose`).

Exit codes: 0 ok, 1 failed or degraded, 2 bad input or could not determine.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
import xmlrpc.client
from collections import deque
from collections.abc import Callable
from pathlib import Path

from stacklib import SERVICE_VERSIONS, VERSION, backup, config, doctor, status
from stacklib.apply import ApplyFailed, apply
from stacklib.supd import Supervisor

Handler = Callable[[Path, argparse.Namespace], int]


class UsageError(Exception):
    """Bad arguments for this box (unknown service, nothing applied yet): exit 2."""


def known_service(box: Path, name: str) -> str:
    """Accept names the current config expects or supervisord knows; else a clear error."""
    expected = config.expected_services(config.load(box))
    if name not in expected:
        raise UsageError(f"no such service: {name} (services: {', '.join(expected)})")
    return name


def running_supervisor(box: Path) -> Supervisor:
    sup = Supervisor(box)
    if not sup.running():
        raise ApplyFailed("the stack is down (run stackctl up or stackctl apply)")
    return sup


def cmd_apply(box: Path, args: argparse.Namespace) -> int:
    return apply(box, args.yes)


def cmd_up(box: Path, args: argparse.Namespace) -> int:
    """Start supervisord and every expected service from the last applied settings."""
    if not (box / "run" / "supervisord.conf").exists():
        raise UsageError("nothing applied yet: run stackctl apply")
    sup = Supervisor(box)
    if not sup.running():
        sup.start_daemon()
        print("Started: " + ", ".join(config.expected_services(config.load(box))))
        return 0
    added = sup.call("reloadConfig")[0][0]
    for name in added:
        sup.call("addProcessGroup", name)
    states = {n: i["statename"] for n, i in sup.processes().items()}
    stopped = [n for n, s in states.items() if s != "RUNNING" and n not in added]
    for name in stopped:
        sup.call("startProcess", name, False, ok_faults=("ALREADY_STARTED",))
    started = added + stopped
    print("Started: " + ", ".join(started) if started else "Already up")
    return 0


def cmd_down(box: Path, args: argparse.Namespace) -> int:
    sup = Supervisor(box)
    if sup.running():
        sup.shutdown()
    print("Stopped")
    return 0


def cmd_restart(box: Path, args: argparse.Namespace) -> int:
    sup = running_supervisor(box)
    sup.stop_many(list(sup.processes()))
    sup.call("startAllProcesses", False)
    print("Restarted")
    return 0


def cmd_stop(box: Path, args: argparse.Namespace) -> int:
    name = known_service(box, args.service)
    running_supervisor(box).stop_many([name])
    print(f"Stopped: {name}")
    return 0


START_SETTLE_S = 2.0
"""How long a started service must stay up for `start` to report it started: one that
refuses to start (the proxy without its token) exits within it, and `start` fails."""


def cmd_start(box: Path, args: argparse.Namespace) -> int:
    name = known_service(box, args.service)
    sup = running_supervisor(box)
    if name not in sup.processes():
        raise ApplyFailed(f"{name} was removed: run stackctl up")
    sup.call("startProcess", name, True, ok_faults=("ALREADY_STARTED",))
    ended = ended_within(sup, name, START_SETTLE_S)
    if ended:
        raise ApplyFailed(f"{name} {ended} right after it started: see stackctl logs {name}")
    print(f"Started: {name}")
    return 0


def ended_within(sup: Supervisor, name: str, seconds: float) -> str:
    """How `name` ended if it stopped running within `seconds` of now; "" if it stayed up."""
    deadline = time.monotonic() + seconds
    first = sup.processes().get(name, {}).get("pid")
    while True:
        info = sup.processes().get(name, {})
        if info.get("statename") not in ("STARTING", "RUNNING") or info.get("pid") != first:
            return f"exited (exit status {info.get('exitstatus')})"
        if time.monotonic() >= deadline:
            return ""
        time.sleep(0.05)


def cmd_kill(box: Path, args: argparse.Namespace) -> int:
    name = known_service(box, args.service)
    sig = args.signal.upper().removeprefix("SIG")
    if not sig.isdigit() and not hasattr(signal, f"SIG{sig}"):
        raise UsageError(f"unknown signal: {args.signal}")
    running_supervisor(box).call("signalProcess", name, sig)
    print(f"Sent SIG{sig} to {name}" if not sig.isdigit() else f"Sent signal {sig} to {name}")
    return 0


def cmd_rm(box: Path, args: argparse.Namespace) -> int:
    name = known_service(box, args.service)
    sup = running_supervisor(box)
    sup.stop_many([name])
    sup.call("removeProcessGroup", name, ok_faults=("BAD_NAME",))
    print(f"Removed: {name}")
    return 0


def cmd_status(box: Path, args: argparse.Namespace) -> int:
    code, doc = status.collect(box) if args.wait is None else status.wait(box, args.wait)
    print(json.dumps(doc, indent=2) if args.json else status.render_text(doc))
    return code


def cmd_doctor(box: Path, args: argparse.Namespace) -> int:
    return doctor.doctor(box)


def cmd_backup(box: Path, args: argparse.Namespace) -> int:
    config.load(box)
    print(f"Backup written to: {backup.backup(box)}")
    return 0


def cmd_restore(box: Path, args: argparse.Namespace) -> int:
    try:
        backup.restore(box, Path(args.path).resolve())
    except backup.RestoreRefused as exc:
        raise UsageError(f"restore refused, nothing changed: {exc}") from None
    print(f"Restored config.json, .env and secrets/ from {args.path}; run stackctl apply")
    return 0


def cmd_logs(box: Path, args: argparse.Namespace) -> int:
    if args.service != "supervisord":
        known_service(box, args.service)
    path = box / "logs" / f"{args.service}.log"
    if not path.exists():
        print(f"(no log yet for {args.service})")
        return 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in deque(handle, maxlen=args.n):
            print(line, end="")
    return 0


def cmd_version(box: Path, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({"stack": VERSION, "services": SERVICE_VERSIONS}))
        return 0
    print(f"stack {VERSION}")
    for name, version in SERVICE_VERSIONS.items():
        print(f"{name} {version}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stackctl", description="Control this sample-stack box.")
    p.add_argument("--box", type=Path, required=True, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("apply", "backup"):
        sub.add_parser(name).add_argument("-y", "--yes", action="store_true")
    for name in ("up", "down", "restart", "doctor"):
        sub.add_parser(name)
    for name in ("stop", "start"):
        sub.add_parser(name).add_argument("service")
    rm = sub.add_parser("rm")
    rm.add_argument("-f", "--force", action="store_true")
    rm.add_argument("-s", "--stop", action="store_true")
    rm.add_argument("service")
    kill = sub.add_parser("kill")
    kill.add_argument("-s", "--signal", default="SIGKILL")
    kill.add_argument("service")
    status_verb = sub.add_parser("status")
    status_verb.add_argument("--json", action="store_true")
    status_verb.add_argument("--wait", type=float, metavar="SECONDS", help="until healthy")
    logs = sub.add_parser("logs")
    logs.add_argument("service")
    logs.add_argument("-n", "--tail", dest="n", type=int, default=50)
    sub.add_parser("version").add_argument("--json", action="store_true")
    sub.add_parser("restore").add_argument("path")
    return p


COMMANDS: dict[str, Handler] = {
    name.removeprefix("cmd_"): fn for name, fn in globals().items() if name.startswith("cmd_")
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    box = args.box.resolve()
    # An RPC to a frozen supervisord must not hang stackctl forever.
    socket.setdefaulttimeout(10)
    try:
        return COMMANDS[args.command](box, args)
    except (config.ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ApplyFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, xmlrpc.client.Fault) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
