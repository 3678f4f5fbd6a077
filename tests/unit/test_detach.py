"""Detached runs without a box: the state file and pid-reuse logic, the keeper with real
local processes, the flags, the command and inventory said for the box."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import gate
from gate.cli import run_cli
from gate.detach import boxside, checks, wheels
from gate.detach.follow import summary_lines, unpack
from gate.detach.onbox import inventory_toml, onbox_argv
from gate.errors import ExitCode, UsageError
from gate.inventory import HostSpec
from gate.options import Options
from gate.shards import Shard

BOXSIDE = Path(boxside.__file__)


def stat_line(pid: int, comm: str, state: str, start: int) -> str:
    """A /proc/PID/stat line: fields 3.. after the command name; field 22 the start time."""
    fields = [state, *["0"] * 18, str(start), "0", "0"]
    return f"{pid} ({comm}) " + " ".join(fields)


# --- the state file against /proc ------------------------------------------------------


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    assert boxside.parse_stat(stat_line(7, "gate (x) y", "S", 123456)) == ("S", 123456)
    assert boxside.parse_stat(Path(f"/proc/{os.getpid()}/stat").read_text())[0] in "RS"
    assert boxside.parse_stat("") is None
    assert boxside.parse_stat("7 (short) S 1 2") is None


STATE = {"pid": 10, "start_time": 500, "keeper_pid": 9, "keeper_start": 499, "boot_id": "b1"}


def classify(run: str | None, keeper: str | None, exit_text: str | None, boot: str = "b1") -> str:
    return str(boxside.classify(dict(STATE), run, keeper, exit_text, boot)["status"])


def test_a_run_whose_pid_or_keeper_has_the_recorded_start_time_is_running() -> None:
    assert classify(stat_line(10, "gate", "S", 500), None, None) == boxside.RUNNING
    assert classify(None, stat_line(9, "python3", "S", 499), None) == boxside.RUNNING
    assert classify(stat_line(10, "gate", "Z", 500), None, None) == boxside.RUNNING


def test_a_reused_pid_is_not_the_run() -> None:
    """Same pids, other start times: other processes now; the run is gone, not running."""
    reused = classify(stat_line(10, "nginx", "S", 9999), stat_line(9, "bash", "S", 8888), None)
    assert reused == boxside.VANISHED


def test_an_exit_file_ends_the_run_and_a_reboot_or_nothing_makes_it_vanish() -> None:
    found = boxside.classify(dict(STATE), None, None, "143\n", "b1")
    assert found == {"status": boxside.ENDED, "exit_code": 143}
    assert classify(stat_line(10, "gate", "S", 500), None, None, boot="b2") == boxside.VANISHED
    assert classify(None, None, None) == boxside.VANISHED
    assert classify(None, None, "garbage") == boxside.VANISHED
    assert boxside.classify(None, None, None, None, "b1")["status"] == boxside.NONE


def test_exit_codes_of_a_signalled_child_are_the_shells() -> None:
    assert boxside.exit_code_of(-signal.SIGKILL) == 137
    assert boxside.exit_code_of(-signal.SIGTERM) == 143
    assert boxside.exit_code_of(4) == 4


# --- the keeper, stop and poll with real processes ------------------------------------------

CHILD = """
import signal, sys, time
def term(signum, frame):
    print('restoring after SIGTERM', flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, term if sys.argv[1] == 'polite' else signal.SIG_IGN)
print('== scenario demo: running', flush=True)
print('line two', flush=True)
while True:
    time.sleep(0.05)
"""


def boxside_cmd(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BOXSIDE), *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(json.loads(done.stdout))


STARTED: list[dict[str, object]] = []


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    """A test that fails half-way leaves no keeper or child running."""
    yield
    while STARTED:
        state = STARTED.pop()
        for pid, start in (("pid", "start_time"), ("keeper_pid", "keeper_start")):
            if boxside.same_process(state[start], boxside.stat_of(state[pid])):
                os.kill(int(str(state[pid])), signal.SIGKILL)


def start_child(stack: Path, kind: str) -> dict[str, object]:
    run_dir = stack / boxside.DETACHED / f"run-{kind}"
    answer = boxside_cmd("start", str(run_dir), "--", sys.executable, "-c", CHILD, kind)
    state = answer["state"]
    assert isinstance(state, dict)
    STARTED.append(state)
    return state


def wait_poll(stack: Path, ok: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        found = boxside_cmd("poll", str(stack), "5")
        if found["status"] == ok and (ok != boxside.RUNNING or found.get("phase")):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_the_keeper_records_pid_and_start_time_and_stop_terms_then_the_exit_file(
    tmp_path: Path,
) -> None:
    state = start_child(tmp_path, "polite")
    pid = int(str(state["pid"]))
    assert state["start_time"] == boxside.start_time_of(pid)
    assert state["keeper_pid"] != os.getpid() and state["boot_id"] == boxside.boot_id()
    assert os.getsid(int(str(state["keeper_pid"]))) == state["keeper_pid"], "its own session"
    found = wait_poll(tmp_path, boxside.RUNNING)
    assert found["phase"] == "scenario demo: running" and found["tail"][-1] == "line two"
    stopped = boxside_cmd("stop", str(tmp_path), "20")
    assert stopped["signals"] == ["SIGTERM"] and stopped["exit_code"] == 143
    assert "restoring after SIGTERM" in Path(str(state["console"])).read_text()


def test_stop_kills_a_run_that_ignores_sigterm_after_the_drain(tmp_path: Path) -> None:
    state = start_child(tmp_path, "deaf")
    wait_poll(tmp_path, boxside.RUNNING)
    started = time.monotonic()
    stopped = boxside_cmd("stop", str(tmp_path), "0.5")
    assert stopped["signals"] == ["SIGTERM", "SIGKILL"], stopped
    assert stopped["exit_code"] == 137 and time.monotonic() - started < 10
    assert (Path(str(state["dir"])) / boxside.EXIT).read_text() == "137\n"


def test_stop_never_signals_a_process_that_reused_the_runs_pid(tmp_path: Path) -> None:
    """The state names a live pid whose start time is not the recorded one: left alone."""
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        run_dir = tmp_path / boxside.DETACHED / "old"
        run_dir.mkdir(parents=True)
        real_start = boxside.start_time_of(stranger.pid)
        assert real_start is not None
        state = {**STATE, "pid": stranger.pid, "start_time": real_start - 1, "keeper_pid": 0}
        state["boot_id"] = boxside.boot_id()
        (run_dir / boxside.STATE).write_text(json.dumps({**state, "run_id": "old"}))
        (tmp_path / boxside.DETACHED / boxside.LATEST).write_text(json.dumps({"dir": str(run_dir)}))
        stopped = boxside_cmd("stop", str(tmp_path), "0.5")
        assert stopped["status"] == boxside.VANISHED and stopped["signals"] == []
        assert stranger.poll() is None, "the stranger was signalled"
        # the positive control: with its true start time, the same state is that process
        (run_dir / boxside.STATE).write_text(json.dumps({**state, "start_time": real_start}))
        assert boxside_cmd("poll", str(tmp_path))["status"] == boxside.RUNNING
    finally:
        stranger.kill()
        stranger.wait()


def test_poll_with_no_detached_run_says_none(tmp_path: Path) -> None:
    assert boxside_cmd("poll", str(tmp_path))["status"] == boxside.NONE


# --- flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ({"detach": True, "local": True, "dir": "/srv/x"}, "--detach reaches a box over SSH"),
        ({"detach": True, "attach": True, "host": "b"}, "--detach and --attach do not go"),
        ({"attach": True, "stop": True, "host": "b"}, "--attach and --stop do not go"),
        ({"attach": True, "host": "b", "scenario": ["x"]}, "--attach acts on the detached run"),
        ({"stop": True, "host": "b", "lifecycle": True}, "drop --lifecycle"),
        ({"stop": True, "local": True, "dir": "/x"}, "--stop reaches a box over SSH"),
    ],
)
def test_bad_detach_flags_are_one_line_and_exit_2(
    flags: dict[str, object], said: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    stream = io.StringIO()
    code = run_cli({**flags, "out": str(tmp_path / "out")}, stream)
    lines = stream.getvalue().strip().splitlines()
    assert code == ExitCode.USAGE and len(lines) == 1, lines
    assert lines[0].startswith("gate: ") and said in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_the_knobs_take_positive_seconds_only() -> None:
    assert checks.heartbeat_s({}) == 20.0 and checks.drain_s({}) == 120.0
    assert checks.heartbeat_s({"GATE_HEARTBEAT_S": "0.5"}) == 0.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(UsageError, match="GATE_HEARTBEAT_S"):
            checks.heartbeat_s({"GATE_HEARTBEAT_S": bad})


# --- what the box is told -------------------------------------------------------------------


def test_the_box_runs_the_same_run_locally_and_reads_facts_from_a_file() -> None:
    opts = Options(
        host="box",
        scenarios=("a", "b"),
        shard=Shard(2, 3),
        strict=True,
        phases=frozenset({"safety_backup", "lifecycle"}),
        facts={"remote_node_url": "http://u:canary-pw@h"},
        detach=True,
    )
    argv = onbox_argv(opts, "/v", "/s/.gate/detached/r1")
    assert argv[:2] == ["/v/bin/gate", "--local"]
    assert argv.count("--scenario") == 2 and "--strict" in argv and "--detach" not in argv
    assert argv[argv.index("--shard") + 1] == "2/3"
    assert {"--lifecycle", "--safety-backup"} <= set(argv)
    assert not any("canary-pw" in word for word in argv), "a fact on the box's command line"
    host = HostSpec(
        name="box", host="h", control="./ctl", requirements={"workers": "2", "x": 'q"uote'}
    )
    parsed = tomllib.loads(inventory_toml(host, "/s", {**opts.facts, "workers": "3"}, 7))
    assert parsed["dir"] == "/s" and parsed["control"] == "./ctl" and parsed["watchdog_s"] == 7
    assert parsed["requirements"] == {
        "workers": "3",
        "x": 'q"uote',
        "remote_node_url": "http://u:canary-pw@h",
    }


# --- what comes back ----------------------------------------------------------------------


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                continue
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_fetched_results_land_under_out_and_nothing_may_leave_it(tmp_path: Path) -> None:
    leaked = b"PROXY_AUTH_TOKEN=canary-unpack-1234\n"
    tar = tar_of({"./r1/": b"", "./r1/summary.json": b"{}", "./r1/console.log": leaked})
    run_dir = unpack(tar, tmp_path / "out")
    assert run_dir == tmp_path / "out" / "r1" and (run_dir / "summary.json").read_text() == "{}"
    assert (run_dir / "console.log").read_text() == "PROXY_AUTH_TOKEN=***\n"
    with pytest.raises(tarfile.TarError):
        unpack(tar_of({"../evil": b"x"}), tmp_path / "out2")
    assert not (tmp_path / "evil").exists()


def test_the_summary_keeps_what_did_not_pass_and_the_verdict() -> None:
    lines = ["== matrix", "  PASS         a: ok", "  FAIL         b: no", "gate: failed (exit 1)"]
    assert summary_lines(lines) == ["  FAIL         b: no", "gate: failed (exit 1)"]


# --- the runner's wheelhouse cache ------------------------------------------------------------


def fake_checkout(root: Path, body: str) -> Path:
    (root / "gate").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'gate'\n")
    (root / "gate" / "x.py").write_text(body)
    return root


def test_the_key_is_the_version_and_changes_with_any_source_byte(tmp_path: Path) -> None:
    one = wheels.source_key(fake_checkout(tmp_path / "a", "A = 1\n"))
    same = wheels.source_key(fake_checkout(tmp_path / "b", "A = 1\n"))
    other = wheels.source_key(fake_checkout(tmp_path / "c", "A = 2\n"))
    assert one == same and one != other
    assert one.startswith(f"{gate.__version__}-")


def test_a_complete_cached_wheelhouse_is_reused_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATE_CACHE_DIR", str(tmp_path / "cache"))
    dest = tmp_path / "cache" / "wheelhouse" / f"k1-{wheels.python_tag()}"
    dest.mkdir(parents=True)
    (dest / "gate-0-py3-none-any.whl").write_bytes(b"zip")
    (dest / wheels.COMPLETE).write_text("k1\n")
    found = wheels.wheelhouse(tmp_path / "no-such-checkout", "k1")
    assert found.reused and [w.name for w in found.wheels] == ["gate-0-py3-none-any.whl"]
    with tarfile.open(fileobj=io.BytesIO(found.tar())) as archive:
        assert archive.getnames() == ["gate-0-py3-none-any.whl"]
    (dest / wheels.COMPLETE).unlink()  # an unfinished one is built again: here pip fails
    with pytest.raises(wheels.ShipFailed, match="cannot build gate's wheelhouse"):
        wheels.wheelhouse(tmp_path / "no-such-checkout", "k1")


# --- the runner follows ITS run, not whatever latest.json names ---------------------------------


class LocalLink:
    """A BoxLink stand-in: the real box-side helper, run here on a stack dir of tmp_path."""

    def __init__(self, stack: Path) -> None:
        self.stack = str(stack)

    def call(self, verb: str, *args: str, timeout: float = 60) -> dict[str, object]:
        return boxside_cmd(verb, *args)


def ended_run(stack: Path, name: str, code: int) -> Path:
    """An earlier detached run that ended with `code`, and latest.json pointing at it."""
    run_dir = stack / boxside.DETACHED / name
    run_dir.mkdir(parents=True)
    state = {**STATE, "run_id": name, "dir": str(run_dir), "results": str(run_dir / "results")}
    (run_dir / boxside.STATE).write_text(json.dumps(state))
    (run_dir / boxside.EXIT).write_text(f"{code}\n")
    (stack / boxside.DETACHED / boxside.LATEST).write_text(json.dumps({"dir": str(run_dir)}))
    return run_dir


def test_the_follower_follows_its_own_run_when_latest_json_names_another(
    tmp_path: Path,
) -> None:
    """latest.json may name another run while we follow ours: the keeper writes it after
    the state file `start` waits for, and two runners may race. A runner that follows
    latest.json would report an older run's exit 0 (and fetch its results) for ours."""
    from gate.detach.follow import Follower
    from gate.redact import Redactor
    from gate.report import Console
    from gate.signals import SignalGuard

    old = ended_run(tmp_path, "old-passed", 0)
    ours = tmp_path / boxside.DETACHED / "ours"
    script = "import time; time.sleep(1.5); print('gate: failed (exit 1)'); raise SystemExit(1)"
    state = boxside_cmd("start", str(ours), "--", sys.executable, "-c", script)["state"]
    assert isinstance(state, dict)
    STARTED.append(state)
    (tmp_path / boxside.DETACHED / boxside.LATEST).write_text(json.dumps({"dir": str(old)}))
    stream = io.StringIO()
    link = LocalLink(tmp_path)
    follower = Follower(link, Console(Redactor(), stream), SignalGuard(), 60.0, str(ours))  # type: ignore[arg-type]
    found = follower.until_end()
    assert found["state"]["run_id"] == "ours", found  # type: ignore[index]
    assert follower.verdict(found) == 1, stream.getvalue()


def test_poll_and_stop_act_only_on_a_run_of_that_stack(tmp_path: Path) -> None:
    ended_run(tmp_path / "stack", "r1", 1)
    other = ended_run(tmp_path / "elsewhere", "r2", 0)
    for verb, arg in (("poll", "5"), ("stop", "1")):
        done = subprocess.run(
            [sys.executable, str(BOXSIDE), verb, str(tmp_path / "stack"), arg, str(other)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and "is not a detached run of" in done.stdout, done.stdout
    mine = tmp_path / "stack" / boxside.DETACHED / "r1"
    assert boxside_cmd("poll", str(tmp_path / "stack"), "5", str(mine))["exit_code"] == 1


def test_attach_stop_and_detach_find_a_running_run_when_latest_json_names_an_ended_one(
    tmp_path: Path,
) -> None:
    """Two --detach at once: both keepers start, the box lock refuses one (exit 75), and
    latest.json may name that refused run. --attach and --stop must still find the run
    that runs, and a third --detach must be refused, not start beside it."""
    state = start_child(tmp_path, "polite")
    ended_run(tmp_path, "refused", 75)  # latest.json names it now
    assert boxside_cmd("poll", str(tmp_path), "5")["state"]["run_id"] == state["run_id"]  # type: ignore[index]
    prepared = boxside_cmd("prepare", str(tmp_path), "k")
    assert prepared["latest"]["status"] == boxside.RUNNING, prepared  # type: ignore[index]
    stopped = boxside_cmd("stop", str(tmp_path), "20")
    assert stopped["signals"] == ["SIGTERM"] and stopped["exit_code"] == 143, stopped
    # nothing runs any more: the latest is the one latest.json names
    assert boxside_cmd("poll", str(tmp_path), "5")["state"]["run_id"] == "refused"  # type: ignore[index]


def test_a_run_whose_dir_was_removed_while_followed_is_inconclusive(tmp_path: Path) -> None:
    """Someone removed .gate/detached/<id> under the runner: no verdict is known (3), and
    the runner says so instead of dying on an assertion."""
    from gate.detach.follow import Follower
    from gate.redact import Redactor
    from gate.report import Console
    from gate.signals import SignalGuard

    gone = tmp_path / boxside.DETACHED / "gone"
    (tmp_path / boxside.DETACHED).mkdir(parents=True)
    stream = io.StringIO()
    follower = Follower(LocalLink(tmp_path), Console(Redactor(), stream), SignalGuard(), 60.0,  # type: ignore[arg-type]
                        str(gone))  # fmt: skip
    found = follower.until_end()
    assert follower.verdict(found) == ExitCode.INCONCLUSIVE
    assert "its verdict is unknown" in stream.getvalue()
