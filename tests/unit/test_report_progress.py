"""The live progress: scenarios done/total, elapsed, an estimate of what is left, on a
terminal only; plain lines when the output is not a terminal or CI is set."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from gate.redact import Redactor
from gate.report.compare import seconds_last_time
from gate.report.console import Console
from gate.report.progress import Progress
from gate.report.rundir import load
from gate.waits import Attempt


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_estimate_is_the_mean_scenario_so_far_times_what_is_left() -> None:
    progress = Progress(["a", "b", "c", "d"], began=100.0)
    progress.scenario(100.0)
    assert progress.text(110.0) == "scenario 1/4, 0:10 elapsed"
    progress.scenario(130.0)  # the first took 30 s
    progress.scenario(150.0)  # the second 20 s: 25 s a scenario
    assert progress.text(155.0) == "scenario 3/4, 0:55 elapsed, ~0:45 left"  # 2 x 25 - 5


def test_the_last_passing_run_on_the_box_says_what_each_scenario_takes_from_the_start() -> None:
    before = {"a": 10.0, "b": 40.0, "c": 5.0}
    progress = Progress(["a", "b", "c"], began=0.0, before=before, bound=120.0)
    progress.scenario(0.0)
    assert progress.text(4.0) == "scenario 1/3, 0:04 elapsed, ~0:51 left, waits at most 6:00"
    progress.scenario(12.0)
    assert progress.text(20.0) == "scenario 2/3, 0:20 elapsed, ~0:37 left, waits at most 4:00"


def test_a_scenario_new_since_last_time_falls_back_to_the_mean_so_far() -> None:
    progress = Progress(["a", "new"], began=0.0, before={"a": 10.0})
    progress.scenario(0.0)
    assert progress.text(1.0) == "scenario 1/2, 0:01 elapsed"  # nothing says what `new` takes
    progress.scenario(30.0)
    assert progress.text(31.0) == "scenario 2/2, 0:31 elapsed, ~0:29 left"  # the mean: 30 s


def test_scenario_seconds_come_from_the_runs_phase_marks(tmp_path: Path) -> None:
    marks = [
        {"kind": "phase", "name": "baseline", "t": 1.0},
        {"kind": "phase", "name": "scenario a", "t": 2.0},
        {"kind": "poll", "name": "ready", "t": 3.0},
        {"kind": "phase", "name": "scenario b", "t": 12.5},
        {"kind": "phase", "name": "restore", "t": 20.0},
    ]
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "timeline.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    assert load(tmp_path).scenario_seconds() == {"a": 10.5, "b": 7.5}


@pytest.mark.parametrize(("stream", "env", "shown"), [
    (Terminal(), {}, True),
    (Terminal(), {"CI": "true"}, False),
    (Terminal(), {"NO_COLOR": "1"}, False),
    (io.StringIO(), {}, False),
])  # fmt: skip
def test_progress_shows_on_a_terminal_only(
    stream: io.StringIO, env: dict[str, str], shown: bool
) -> None:
    console = Console(Redactor(), stream, env=env)
    console.scenarios(["first", "second", "third"])
    console.phase("scenario first", "a note")
    console.waiting("ready", Attempt(0.1, {"status": 1}, False), 9.0)
    console.end_wait()
    text = stream.getvalue()
    assert "== scenario first: a note" in text
    assert ("scenario 1/3" in text) is shown, text


def write_run(
    path: Path, started: float, exit_code: int, host: str = "box", **other: object
) -> Path:
    path.mkdir(parents=True)
    box = {"host": host, "target": "ssh://root@box:22", "stack_dir": "/srv/stack"}
    box |= {"mode": "matrix", "contract": {"sha256": "c0ffee"}} | other
    (path / "manifest.json").write_text(json.dumps({**box, "started": started}))
    (path / "summary.json").write_text(json.dumps({"exit_code": exit_code}))
    marks = [
        {"kind": "phase", "name": "scenario a", "t": started + 1},
        {"kind": "phase", "name": "restore", "t": started + 1 + started / 100},
    ]
    (path / "timeline.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    return path


def test_seconds_last_time_come_from_the_newest_earlier_passing_run_on_the_same_box(
    tmp_path: Path,
) -> None:
    write_run(tmp_path / "r1", started=1000.0, exit_code=0)  # a: 10 s
    write_run(tmp_path / "r2", started=2000.0, exit_code=0)  # a: 20 s, the newest passing
    write_run(tmp_path / "r3", started=3000.0, exit_code=1)  # failed: not a reference
    write_run(tmp_path / "r4", started=3500.0, exit_code=0, host="other")  # another box
    write_run(tmp_path / "r4c", started=3600.0, exit_code=0, mode="check")  # another mode
    write_run(tmp_path / "r4k", started=3700.0, exit_code=0, contract={"sha256": "beef"})
    now = write_run(tmp_path / "r5", started=4000.0, exit_code=0)
    assert seconds_last_time(now) == {"a": 20.0}
    assert seconds_last_time(tmp_path / "r1") == {}  # nothing earlier
