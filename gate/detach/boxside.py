"""The box's side of a detached run: stdlib only, run by the box's own python3.

The runner writes this file to `<stack>/.gate/detached/boxside.py` and calls it:

    prepare STACK_DIR KEY          the stack dir (absolute), python version, venv ready?, the
                                   latest detached run's status (a running one is refused)
    install KEY WHEELHOUSE         the venv ~/.cache/gate/venv-KEY from wheels only (no index),
                                   under a file lock; one already complete is reused
    start RUNDIR -- ARGV...        a keeper in its own session (setsid: the SSH session can
                                   go), which starts ARGV, writes state.json, then `exit`
    keep RUNDIR -- ARGV...         the keeper itself (started by `start`, never by hand)
    poll STACK_DIR N [RUNDIR]      the run's status, phase and console tail (JSON): RUNDIR's
                                   when given (the run the runner follows), else the current one
                                   (one still running, else latest.json's)
    stop STACK_DIR DRAIN_S [RUNDIR]  SIGTERM, wait for `exit` up to DRAIN_S, then SIGKILL

The state file holds the pid AND the start time (/proc/PID/stat field 22) of both the run
and its keeper, and the boot id: a pid reused by another process after a reboot or a long
time is never taken for the run, and never signalled.

Every answer is one JSON object on stdout. Nothing here prints a secret: the run's console
is the gate's own, already scrubbed by the run on the box.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

DETACHED = os.path.join(".gate", "detached")
"""Per stack dir: the detached runs (one dir each) and latest.json, the pointer to the last."""
LATEST = "latest.json"
STATE = "state.json"
EXIT = "exit"
CONSOLE = "console.log"
RESULTS = "results"
COMPLETE = ".gate-complete"
TAIL_BYTES = 64 * 1024
START_WAIT_S = 20.0

RUNNING, ENDED, VANISHED, NONE = "running", "ended", "vanished", "none"


# --- pure: what the state file and /proc say ------------------------------------------------


def parse_stat(text: str | None) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc/PID/stat text.

    The command name (field 2) may hold spaces and parentheses: fields are counted after
    the LAST ')'. Field 3 is the state, field 22 the start time."""
    if not text or ")" not in text:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def same_process(start_time: Any, stat_text: str | None) -> bool:
    """The pid still names the process the state file recorded: alive, same start time.

    A pid whose start time differs was reused by another process: not ours. A zombie is
    ours (it ended, its parent has not reaped it yet)."""
    parsed = parse_stat(stat_text)
    if parsed is None or not isinstance(start_time, int):
        return False
    letter, started = parsed
    return started == start_time and letter != "X"


def classify(
    state: dict[str, Any] | None,
    run_stat: str | None,
    keeper_stat: str | None,
    exit_text: str | None,
    boot_id: str,
) -> dict[str, Any]:
    """The status of a detached run: none, running, ended (with its code) or vanished.

    Read the stats BEFORE the exit file: the keeper writes `exit` and only then ends, so a
    keeper seen gone and no exit file read after that means it died without writing one."""
    if state is None:
        return {"status": NONE, "why": "no detached run on this box"}
    if exit_text is not None:
        code = exit_text.strip()
        if code.lstrip("-").isdigit():
            return {"status": ENDED, "exit_code": int(code)}
        return {"status": VANISHED, "why": f"unreadable exit file: {code[:40]!r}"}
    if state.get("boot_id") != boot_id:
        return {"status": VANISHED, "why": "the box rebooted since the run started"}
    if same_process(state.get("keeper_start"), keeper_stat) or same_process(
        state.get("start_time"), run_stat
    ):
        return {"status": RUNNING}
    return {"status": VANISHED, "why": "the run and its keeper are gone and left no exit code"}


def last_phase(lines: list[str]) -> str:
    """The last phase line the run printed (`== name: detail`)."""
    for line in reversed(lines):
        if line.startswith("== "):
            return line[3:].strip()
    return ""


def exit_code_of(returncode: int) -> int:
    """A child's returncode as a shell reports it: killed by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


# --- small I/O helpers --------------------------------------------------------------------------


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def read_json(path: str) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def write_atomic(path: str, text: str) -> None:
    """Write then rename: a reader sees the old file or the whole new one, never half."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def stat_of(pid: Any) -> str | None:
    return read_text(f"/proc/{pid}/stat") if isinstance(pid, int) and pid > 0 else None


def boot_id() -> str:
    return (read_text("/proc/sys/kernel/random/boot_id") or "").strip()


def start_time_of(pid: int) -> int | None:
    parsed = parse_stat(stat_of(pid))
    return parsed[1] if parsed else None


def tail(path: str, count: int) -> tuple[list[str], str]:
    """The last `count` lines of a file and its last phase line (from its last 64 KB)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return [], ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-count:], last_phase(lines)


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gate")


def venv_path(key: str) -> str:
    return os.path.join(cache_dir(), f"venv-{key}")


def latest_dir(stack: str) -> str | None:
    """The latest detached run's dir under this stack dir, from latest.json."""
    pointer = read_json(os.path.join(stack, DETACHED, LATEST))
    run_dir = pointer.get("dir") if pointer else None
    return run_dir if isinstance(run_dir, str) else None


def current_dir(stack: str) -> str | None:
    """The run --attach, --stop and --detach's check act on: one still running (the last
    started, if several), else the one latest.json names. latest.json alone is not enough:
    of two --detach at once, the box lock refuses one, and latest.json may name that one
    while the other runs."""
    root = os.path.join(stack, DETACHED)
    running = []
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            run_dir = os.path.join(root, name)
            found = status_of(run_dir) if os.path.isfile(os.path.join(run_dir, STATE)) else {}
            if found.get("status") == RUNNING:
                running.append((found["state"].get("started") or 0, run_dir))
    return max(running)[1] if running else latest_dir(stack)


def status_of(run_dir: str | None) -> dict[str, Any]:
    """Classify the run in `run_dir` from its state file, /proc and its exit file."""
    state = read_json(os.path.join(run_dir, STATE)) if run_dir else None
    if state is None:
        return classify(None, None, None, None, boot_id())
    run_stat, keeper_stat = stat_of(state.get("pid")), stat_of(state.get("keeper_pid"))
    exit_text = read_text(os.path.join(str(run_dir), EXIT))  # after the stats: see classify
    found = classify(state, run_stat, keeper_stat, exit_text, boot_id())
    return {**found, "state": state}


# --- commands -------------------------------------------------------------------------------------


def cmd_prepare(stack: str, key: str) -> dict[str, Any]:
    stack = os.path.abspath(os.path.expanduser(stack))
    venv = venv_path(key)
    return {
        "stack": stack,
        "stack_ok": os.path.isdir(stack),
        "python": "{}.{}".format(*sys.version_info[:2]),
        "venv": venv,
        "venv_ready": os.path.exists(os.path.join(venv, COMPLETE)),
        "latest": status_of(current_dir(stack)) if os.path.isdir(stack) else {"status": NONE},
        "cache": cache_dir(),
    }


def cmd_install(key: str, wheelhouse: str) -> dict[str, Any]:
    """Make the venv for `key` from the wheels in `wheelhouse`, no index; reuse a complete one."""
    venv = venv_path(key)
    os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
    started = time.monotonic()
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runners installing the same key: one builds
        if os.path.exists(os.path.join(venv, COMPLETE)):
            return {"venv": venv, "reused": True, "seconds": 0.0}
        shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from a killed install
        run_or_fail([sys.executable, "-m", "venv", venv], "python3 -m venv")
        wheels = sorted(n for n in os.listdir(wheelhouse) if n.startswith("gate-"))
        if len(wheels) != 1:
            fail(f"expected one gate wheel in {wheelhouse}, found {wheels}")
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "--disable-pip-version-check"]
        install = [*pip, "install", "--quiet", "--no-index", "--find-links", wheelhouse]
        run_or_fail([*install, os.path.join(wheelhouse, wheels[0])], "pip install --no-index")
        write_atomic(os.path.join(venv, COMPLETE), json.dumps({"key": key, "wheel": wheels[0]}))
    return {"venv": venv, "reused": False, "seconds": round(time.monotonic() - started, 1)}


def run_or_fail(argv: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        fail(f"{what} failed (exit {done.returncode}): {said[-1] if said else 'no output'}")


def cmd_start(run_dir: str, argv: list[str]) -> dict[str, Any]:
    """The keeper in its own session, detached from this SSH session; its state file."""
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(run_dir, "keeper.log"), "ab") as log:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "keep", run_dir, "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=run_dir,
            start_new_session=True,  # setsid: no SIGHUP when the SSH session goes
            close_fds=True,
        )
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        state = read_json(os.path.join(run_dir, STATE))
        if state is not None:
            return {"state": state}
        time.sleep(0.05)  # sleep-ok: polls the keeper's state file, a real signal, to a deadline
    log_text = (read_text(os.path.join(run_dir, "keeper.log")) or "").strip().splitlines()
    fail(f"the keeper wrote no state file in {START_WAIT_S:g}s: {log_text[-1:] or 'no log'}")
    raise AssertionError  # unreachable: fail() exits


def cmd_keep(run_dir: str, argv: list[str]) -> int:
    """Start the run, record it, wait for it, write its exit code. SIGTERM is passed on to
    the run (which restores the box); SIGHUP and SIGINT are the run's business, not ours.

    Python-level handlers (not SIG_IGN) so the run and what it starts get default
    dispositions after exec."""
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, lambda _s, _f: None)
    signal.signal(signal.SIGINT, lambda _s, _f: None)
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    with open(os.path.join(run_dir, CONSOLE), "ab") as console:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=env
        )
    state = {
        "run_id": os.path.basename(run_dir),
        "pid": child.pid,
        "start_time": start_time_of(child.pid),
        "keeper_pid": os.getpid(),
        "keeper_start": start_time_of(os.getpid()),
        "boot_id": boot_id(),
        "command": argv,
        "dir": run_dir,
        "results": os.path.join(run_dir, RESULTS),
        "console": os.path.join(run_dir, CONSOLE),
        "started": time.time(),
    }
    write_atomic(os.path.join(run_dir, STATE), json.dumps(state, indent=2))
    stack_detached = os.path.dirname(run_dir)
    write_atomic(os.path.join(stack_detached, LATEST), json.dumps({"dir": run_dir}))
    code = exit_code_of(child.wait())
    keep_console(run_dir)
    write_atomic(os.path.join(run_dir, EXIT), f"{code}\n")
    return 0


def keep_console(run_dir: str) -> None:
    """The console log beside the run's artifacts, so the fetch brings it home."""
    results = os.path.join(run_dir, RESULTS)
    runs = [d for d in os.listdir(results)] if os.path.isdir(results) else []
    if len(runs) == 1 and os.path.isdir(os.path.join(results, runs[0])):
        with contextlib.suppress(OSError):
            shutil.copyfile(os.path.join(run_dir, CONSOLE), os.path.join(results, runs[0], CONSOLE))


def run_dir_of(stack: str, pinned: str | None) -> str | None:
    """The run a verb acts on: the one the runner names (it started or found it: latest.json
    may name another by now), else the current one. A named dir must be a run of this stack."""
    if pinned is None:
        return current_dir(stack)
    runs = os.path.realpath(os.path.join(stack, DETACHED))
    if os.path.realpath(os.path.dirname(pinned)) != runs:
        fail(f"{pinned} is not a detached run of {stack}")
    return os.path.abspath(pinned)


def cmd_poll(stack: str, lines: int, pinned: str | None = None) -> dict[str, Any]:
    stack = os.path.abspath(os.path.expanduser(stack))
    run_dir = run_dir_of(stack, pinned)
    found = status_of(run_dir)
    if found["status"] != NONE:
        found["tail"], found["phase"] = tail(os.path.join(str(run_dir), CONSOLE), lines)
    return found


def cmd_stop(stack: str, drain_s: float, pinned: str | None = None) -> dict[str, Any]:
    """SIGTERM the run (it restores the box), wait for its exit file up to `drain_s`, then
    SIGKILL it. Only ever a pid whose start time matches the state file is signalled."""
    stack = os.path.abspath(os.path.expanduser(stack))
    run_dir = run_dir_of(stack, pinned)
    found = status_of(run_dir)
    if found["status"] != RUNNING:
        return {**found, "signals": []}
    state = found["state"]
    signals = []
    if same_process(state.get("start_time"), stat_of(state.get("pid"))):
        os.kill(state["pid"], signal.SIGTERM)
        signals.append("SIGTERM")
    found = wait_ended(run_dir, drain_s)
    if found["status"] == RUNNING and same_process(state.get("start_time"), stat_of(state["pid"])):
        os.kill(state["pid"], signal.SIGKILL)
        signals.append("SIGKILL")
        found = wait_ended(run_dir, 10.0)
    return {**found, "signals": signals, "drain_s": drain_s}


def wait_ended(run_dir: str | None, limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        found = status_of(run_dir)
        if found["status"] != RUNNING or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)  # sleep-ok: polls the run's pid and exit file to a deadline (stdlib only)


def fail(message: str) -> None:
    print(json.dumps({"error": message}))
    sys.exit(1)


def main(argv: list[str]) -> int:
    verb, args = (argv[0], argv[1:]) if argv else ("", [])
    rest = args[args.index("--") + 1 :] if "--" in args else []
    pinned = args[2] if verb in ("poll", "stop") and len(args) > 2 else None
    if verb == "keep":
        return cmd_keep(args[0], rest)
    answers = {
        "prepare": lambda: cmd_prepare(args[0], args[1]),
        "install": lambda: cmd_install(args[0], args[1]),
        "start": lambda: cmd_start(args[0], rest),
        "poll": lambda: cmd_poll(args[0], int(args[1]) if len(args) > 1 else 5, pinned),
        "stop": lambda: cmd_stop(args[0], float(args[1]), pinned),
    }
    if verb not in answers:
        fail(f"boxside: unknown verb {verb!r}")
    print(json.dumps(answers[verb]()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
