"""kvctl: the control command of one kvfront box (it finds the box from its own location)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import signal
import sys
import time
import xmlrpc.client
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from kvlib import SERVICES, VERSION, apply, backup, daemons, secrets, state, status, sweep
from kvlib.config import ConfigError
from kvlib.secrets import read_env
from kvlib.supd import Supervisor, SupervisorDown


class Refused(Exception):
    """A command that cannot run now (exit 1): e.g. start on a removed service."""


class Usage(Exception):
    """A bad argument (exit 2), e.g. an unknown service."""


# Commands that change the box take the box's lock, one at a time.
MUTATING = {"apply", "up", "down", "restart", "stop", "start", "kill", "rm", "restore"}
LOCK_WAIT_S = 60


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    box = args.box.resolve()
    try:
        with _locked(box) if args.command in MUTATING else contextlib.nullcontext():
            return int(args.func(box, args) or 0)
    except (ConfigError, Usage) as exc:
        print(f"kvctl: {exc}", file=sys.stderr)
        return 2
    except (Refused, apply.ApplyFailed) as exc:
        print(f"kvctl: {exc}", file=sys.stderr)
        return 1
    except SupervisorDown:
        print("kvctl: supervisord is not running for this box (kvctl up)", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, xmlrpc.client.Error, http.client.HTTPException) as exc:
        print(f"kvctl: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _locked(box: Path) -> Iterator[None]:
    """An exclusive flock on the box's run/ directory itself (so taking it writes nothing);
    the descriptor is not inherited, so supervisord never keeps it."""
    fd = os.open(box / "run", os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Refused(f"another kvctl held the box for {LOCK_WAIT_S} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvctl", description="Control one kvfront box.")
    p.add_argument("--box", type=Path, required=True, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, func, help: str) -> argparse.ArgumentParser:  # type: ignore[no-untyped-def]
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(func=func)
        return sp

    cmd("apply", cmd_apply, "validate config.json, render, recreate what changed").add_argument(
        "-y", "--yes", action="store_true", help="do not ask on a terminal"
    )
    cmd("up", cmd_up, "start supervisord and every service of the last apply")
    cmd("down", cmd_down, "stop every service and supervisord")
    cmd("restart", cmd_restart, "restart every service (new pids)")
    for name, func in (("stop", cmd_stop), ("start", cmd_start), ("rm", cmd_rm)):
        cmd(name, func, f"{name} one service").add_argument("service")
    kill = cmd("kill", cmd_kill, "signal one service's process group (default SIGKILL)")
    kill.add_argument("-s", "--signal", default="KILL")
    kill.add_argument("service")
    cmd("status", cmd_status, "service states and the verdict").add_argument(
        "--json", action="store_true"
    )
    cmd("backup", cmd_backup, "archive config.json, .env and secrets/")
    cmd("restore", cmd_restore, "put an archive back (apply next)").add_argument(
        "archive", type=Path
    )
    logs = cmd("logs", cmd_logs, "last lines of a service's log")
    logs.add_argument("service")
    logs.add_argument("-n", type=int, default=50)
    cmd("version", cmd_version, "versions of kvfront and its daemons")
    cmd(
        "front-get", cmd_front_get, "GET a path through the front; its answer as JSON"
    ).add_argument("path")
    cli = cmd("redis-cli", cmd_redis_cli, "redis-cli on this box's redis (password via env)")
    cli.add_argument("--replica", action="store_true", help="talk to the replica")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    return p


def cmd_apply(box: Path, args: argparse.Namespace) -> int:
    return apply.apply(box, args.yes)


def _applied(box: Path) -> dict:  # type: ignore[type-arg]
    st = state.load(box)
    if st is None or not (box / "run" / "supervisord.conf").exists():
        raise Usage("this box was never applied (kvctl apply)")
    return st


def _service(box: Path, name: str) -> list[str]:
    expected: list[str] = _applied(box)["services"]
    if name not in expected:
        runs = ", ".join(expected)
        what = "not enabled" if name in SERVICES else "unknown service"
        raise Usage(f"{name}: {what} (this box runs {runs})")
    return expected


GUARDED = {"redis": "REDIS_PASSWORD", "replica": "REDIS_PASSWORD"}
"""Fail closed: kvctl never starts these without their password in .env (whatever an older
rendered conf still holds), like compose's `${REDIS_PASSWORD:?}`."""


def _refuse_unguarded(box: Path, names: list[str]) -> None:
    env = read_env(box)
    for name in names:
        key = GUARDED.get(name)
        if key and not env.get(key, "").strip():
            raise Refused(f"refusing to start {name} without a password ({key} is empty in .env)")


def cmd_up(box: Path, args: argparse.Namespace) -> int:
    expected = _applied(box)["services"]
    _refuse_unguarded(box, expected)
    sup = Supervisor(box)
    if not sup.running():
        sup.start_daemon()
        print("Started: " + ", ".join(expected))
        return 0
    added, _, _ = sup.call("reloadConfig")[0]
    for name in added:
        sup.call("addProcessGroup", name)
    infos = sup.processes()
    started = list(added)
    for name in expected:
        if name not in added and infos.get(name, {}).get("statename") != "RUNNING":
            sup.call("startProcess", name, False, ok_faults=("ALREADY_STARTED",))
            started.append(name)
    print("Started: " + ", ".join(apply._ordered(started)) if started else "Already up")
    return 0


def cmd_down(box: Path, args: argparse.Namespace) -> int:
    sup = Supervisor(box)
    was_up = sup.running()
    sup.shutdown()
    leftovers = sweep.kill_box_processes(box)
    print("Stopped" if was_up else "Already down")
    if leftovers:
        print(f"Killed {len(leftovers)} leftover process(es)")
    return 0


def cmd_restart(box: Path, args: argparse.Namespace) -> int:
    expected = _applied(box)["services"]
    sup = Supervisor(box)
    if not sup.running():
        return cmd_up(box, args)
    present = [n for n in expected if n in sup.processes()]
    _refuse_unguarded(box, present)
    sup.stop_many(present)
    for name in apply._ordered(present):
        sup.call("startProcess", name, False, ok_faults=("ALREADY_STARTED",))
    print("Restarted: " + ", ".join(apply._ordered(present)))
    return 0


def cmd_stop(box: Path, args: argparse.Namespace) -> int:
    _service(box, args.service)
    sup = Supervisor(box)
    if args.service not in sup.processes():
        raise Refused(f"{args.service} is removed (kvctl up brings it back)")
    sup.stop_many([args.service])
    print(f"Stopped: {args.service}")
    return 0


def cmd_start(box: Path, args: argparse.Namespace) -> int:
    _service(box, args.service)
    sup = Supervisor(box)
    if args.service not in sup.processes():
        raise Refused(f"{args.service} is removed (kvctl up brings it back)")
    _refuse_unguarded(box, [args.service])
    sup.call("startProcess", args.service, False, ok_faults=("ALREADY_STARTED",))
    print(f"Started: {args.service}")
    return 0


def cmd_rm(box: Path, args: argparse.Namespace) -> int:
    _service(box, args.service)
    sup = Supervisor(box)
    if args.service not in sup.processes():
        print(f"{args.service} is already removed")
        return 0
    sup.stop_many([args.service])
    sup.call("removeProcessGroup", args.service)
    print(f"Removed: {args.service}")
    return 0


def parse_signal(text: str) -> signal.Signals:
    if text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            raise Usage(f"unknown signal {text}") from None
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise Usage(f"unknown signal {text}") from None


def cmd_kill(box: Path, args: argparse.Namespace) -> int:
    sig = parse_signal(args.signal)
    _service(box, args.service)
    info = Supervisor(box).processes().get(args.service)
    if not info or not info.get("pid"):
        raise Refused(f"{args.service} is not running")
    # The whole process group, like `docker kill`: an nginx master never leaves workers behind.
    os.killpg(info["pid"], sig)
    print(f"Sent {sig.name} to {args.service} (pid {info['pid']})")
    return 0


def cmd_status(box: Path, args: argparse.Namespace) -> int:
    doc = status.collect(box)
    print(json.dumps(doc, indent=2) if args.json else status.render_text(doc))
    return status.EXIT[doc["overall"]]


def cmd_backup(box: Path, args: argparse.Namespace) -> int:
    path, count = backup.backup(box)
    print(f"Archived config.json, .env and {count - 2} secret file(s); mode 0600")
    print(path)
    return 0


def cmd_restore(box: Path, args: argparse.Namespace) -> int:
    count = backup.restore(box, args.archive.resolve())
    print(f"Restored {count} file(s) from {args.archive}; run kvctl apply next")
    return 0


LOG_NAMES = (*SERVICES, "supervisord", "access")


def cmd_logs(box: Path, args: argparse.Namespace) -> int:
    if args.service not in LOG_NAMES:
        raise Usage(f"{args.service}: unknown log (one of {', '.join(LOG_NAMES)})")
    if args.n < 0:
        raise Usage("-n must be 0 or more")
    name = "front-access" if args.service == "access" else args.service
    path = box / "logs" / f"{name}.log"
    if not path.exists():
        raise Refused(f"no log yet: {path}")
    with path.open(encoding="utf-8", errors="replace") as fh:
        tail = deque(fh, maxlen=args.n) if args.n else deque()
    sys.stdout.write("".join(tail))
    return 0


def cmd_version(box: Path, args: argparse.Namespace) -> int:
    print(f"kvfront {VERSION}")
    for name, version in daemons.versions().items():
        print(f"{name} {version}")
    return 0


def cmd_front_get(box: Path, args: argparse.Namespace) -> int:
    """GET PATH through the front (TLS verified against the box's own certificate) and print
    {"code", "body", "error"} as JSON: the answer itself, a 503 included (status's word
    `degraded` is derived; this is what a client of the front gets). Exit 0 once asked."""
    if not args.path.startswith("/"):
        raise Usage(f"{args.path}: a path starts with /")
    st = _applied(box)
    cafile = str(box / "secrets" / secrets.CERT) if st["tls"] else None
    code, body = status.get(state.front_url(st) + args.path, cafile)
    answer = {"code": code, "body": body if code else {}, "error": "" if code else body}
    print(json.dumps(answer, sort_keys=True))
    return 0


def cmd_redis_cli(box: Path, args: argparse.Namespace) -> int:
    st = _applied(box)
    target = "replica" if args.replica else "redis"
    if target not in st["ports"]:
        raise Usage(f"{target}: not enabled")
    cli = daemons.which("redis-cli")
    if not cli:
        raise Refused("redis-cli not found (apt-get install redis-tools)")
    password = read_env(box).get("REDIS_PASSWORD", "")
    env = dict(os.environ, REDISCLI_AUTH=password)  # never on the command line
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    argv = [cli, "-h", "127.0.0.1", "-p", str(st["ports"][target]), *rest]
    sys.stdout.flush()
    os.execve(cli, argv, env)
    return 1  # not reached
