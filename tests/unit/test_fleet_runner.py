"""The fleet runner on stand-in box runs (tests/unit/fleetchild.py): the boxes run at once,
each box's row comes from its own summary.json, the worst code wins, nothing is hidden, a
signal reaches every box's run."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gate.cli.flags import table
from gate.errors import ExitCode
from gate.fleet.hosts import Fleet, FleetBox
from gate.fleet.runner import child_flags, gate_launch, run_fleet
from gate.options import Options
from gate.signals import process_guard

CHILD = Path(__file__).with_name("fleetchild.py")


def launch(flags: list[str]) -> list[str]:
    return [sys.executable, str(CHILD), *flags]


def fleet(*entries: str) -> Fleet:
    return Fleet(",".join(entries), tuple(FleetBox(e, e, f"{e}:22 /srv") for e in entries))


def run(tmp_path: Path, *entries: str, **opts: Any) -> tuple[int, str, dict[str, Any], Path]:
    out = tmp_path / "results"
    options = Options(host=",".join(entries), out=out, phases=frozenset({"check"}), **opts)
    stream = io.StringIO()
    code = run_fleet(options, {"check": True}, fleet(*entries), stream, launch)
    (fleet_dir,) = list(out.iterdir())
    summary = json.loads((fleet_dir / "summary.json").read_text())
    return code, stream.getvalue(), summary, fleet_dir


def rows(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {box["box"]: box for box in summary["boxes"]}


def test_every_box_is_reported_and_the_worst_code_wins(tmp_path: Path) -> None:
    code, console, summary, fleet_dir = run(tmp_path, "green", "red", "gone")
    assert code == ExitCode.INCONCLUSIVE, console
    assert (summary["exit_code"], summary["verdict"]) == (3, "inconclusive")
    by_box = rows(summary)
    assert [b["box"] for b in summary["boxes"]] == ["green", "red", "gone"]
    assert {b: r["exit_code"] for b, r in by_box.items()} == {"green": 0, "red": 1, "gone": 3}
    assert by_box["red"]["counts"] == {"pass": 1, "fail": 1, "inconclusive": 0, "skip": 0}
    assert by_box["red"]["failing"] == ["nano/api: tier"]
    assert by_box["gone"]["error"] == "could not connect"
    assert by_box["green"]["results"] == str(fleet_dir / "green" / "run-green")
    # the table on the console has a row per box, then the fleet's last line
    table = [
        line for line in console.splitlines() if line.split()[:1] in (["green"], ["red"], ["gone"])
    ]
    assert [line.split()[:3] for line in table] == [
        ["green", "passed", "0"],
        ["red", "failed", "1"],
        ["gone", "inconclusive", "3"],
    ]
    assert "gate fleet: inconclusive (exit 3)" in console.splitlines()[-2]
    md = (fleet_dir / "summary.md").read_text()
    assert "| red | failed | 1 | 1 | 1 | 0 | 0 |" in md
    assert "- **red**: nano/api: tier" in md


def test_a_failed_box_among_green_ones_fails_the_fleet(tmp_path: Path) -> None:
    code, console, summary, _ = run(tmp_path, "green", "red")
    assert code == ExitCode.FAILED, console
    assert summary["verdict"] == "failed"


def test_an_all_green_fleet_passes(tmp_path: Path) -> None:
    code, console, _, _ = run(tmp_path, "green", "peer-a-b", "peer-b-a")
    assert code == ExitCode.PASSED, console


def test_the_boxes_run_at_the_same_time(tmp_path: Path) -> None:
    """Each stand-in waits for the other to have started: one at a time, both would fail."""
    code, console, summary, _ = run(tmp_path, "peer-a-b", "peer-b-a")
    assert code == ExitCode.PASSED, console
    assert [r["exit_code"] for r in summary["boxes"]] == [0, 0]


def test_each_console_line_is_prefixed_by_its_box_and_kept_in_its_file(tmp_path: Path) -> None:
    _, console, _, fleet_dir = run(tmp_path, "green", "red")
    shown = [line for line in console.splitlines() if line.startswith("[")]
    assert any(line.startswith("[green] argv: --host green --out ") for line in shown), shown
    assert any(line.startswith("[red  ] argv: --host red --out ") for line in shown), shown
    kept = (fleet_dir / "red" / "console.txt").read_text()
    assert kept.startswith(f"argv: --host red --out {fleet_dir / 'red'} --check")


def test_a_box_run_that_died_without_a_summary_is_said_and_ranked(tmp_path: Path) -> None:
    code, console, summary, _ = run(tmp_path, "green", "killed")
    killed = rows(summary)["killed"]
    assert killed["exit_code"] == 128 + signal.SIGKILL
    assert killed["results"] is None
    assert "killed by signal 9" in killed["error"]
    assert code == 128 + signal.SIGKILL, console
    assert rows(summary)["green"]["exit_code"] == 0


def test_a_sigterm_is_forwarded_to_every_box_run(tmp_path: Path) -> None:
    out = tmp_path / "results"

    def signal_when_ready() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(list(out.glob("*/ready-term*"))) == 2:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)  # sleep-ok: polling files the stand-ins write

    sender = threading.Thread(target=signal_when_ready, daemon=True)
    sender.start()
    code, console, summary, fleet_dir = run(tmp_path, "term1", "term2")
    sender.join()
    assert "fleet: SIGTERM: forwarded to 2 running box run(s)" in console
    for box in ("term1", "term2"):
        assert "got SIGTERM" in (fleet_dir / box / "console.txt").read_text()
        assert rows(summary)[box]["exit_code"] == ExitCode.SIGTERM
    assert code == ExitCode.SIGTERM


def test_summary_md_and_json_go_where_asked(tmp_path: Path, capsys: Any) -> None:
    md = tmp_path / "ci" / "summary.md"
    code, _, summary, fleet_dir = run(tmp_path, "green", "red", summary_md=md, json=True)
    assert md.read_text() == (fleet_dir / "summary.md").read_text()
    assert json.loads(capsys.readouterr().out)["fleet_run_id"] == summary["fleet_run_id"]
    assert oct((fleet_dir / "summary.json").stat().st_mode & 0o777) == "0o600"
    assert code == 1


def test_a_box_run_gets_every_flag_but_the_fleets_own() -> None:
    raw = {
        "host": "a,b",
        "out": "results",
        "json": True,
        "summary_md": "s.md",
        "check": True,
        "fact": ["workers=2", "x=y"],
        "scenario": None,
        "matrix": "m.py",
        "keep": False,
    }
    words = child_flags(raw, table(), "a", Path("results/F/a"))
    assert words[:4] == ["--host", "a", "--out", "results/F/a"]
    rest = words[4:]
    assert "--json" not in rest and "--summary-md" not in rest and "--keep" not in rest
    assert rest.count("--fact") == 2 and "workers=2" in rest and "x=y" in rest
    assert rest[rest.index("--matrix") : rest.index("--matrix") + 2] == ["--matrix", "m.py"]
    assert "--check" in rest


def test_a_box_run_is_started_the_way_the_user_started_gate() -> None:
    assert gate_launch("invoke gate")(["--check"])[1:] == ["-m", "invoke", "gate", "--check"]
    assert gate_launch("gate")(["--check"])[1:] == ["-m", "gate.cli.script", "--check"]


def test_a_signal_before_the_fleet_began_starts_no_box_run(tmp_path: Path) -> None:
    guard = process_guard()
    guard.received.append(signal.SIGINT)
    try:
        stream = io.StringIO()
        options = Options(host="green,red", out=tmp_path / "results")
        code = run_fleet(options, {"check": True}, fleet("green", "red"), stream, launch)
    finally:
        guard.uninstall()
        guard.received.clear()
    assert code == ExitCode.SIGINT
    assert "before the fleet began: nothing touched" in stream.getvalue()
    assert not (tmp_path / "results").exists()
