"""Comparing runs: `--compare RUN_A --compare RUN_B`, and report.html's section against the
last passing run on the same box."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from doubleruns import failing, passing

from gate.cli import run_cli
from gate.redact import Redactor
from gate.report.compare import compare, last_passing
from gate.report.rundir import load
from gate.report.write import write_report
from gate.testing.pagedom import Page

TIER = ("main-secure-strict", "api: pool tier matches pool.tier")


def edit(run_dir: Path, name: str, change: Any) -> None:
    path = run_dir / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_report_says_what_changed_since_the_last_passing_run_on_the_box(
    tmp_path: Path,
) -> None:
    green = passing(tmp_path)
    red = failing(tmp_path)  # same box, same results dir, later
    since = Page.parse((red.run_dir / "report.html").read_text()).by_id("since")
    assert green.run_dir.name in since.content
    changed = [
        e.content
        for e in Page.parse((red.run_dir / "report.html").read_text()).with_class("changed")
    ]
    assert any(
        "[main-secure-strict] api: pool tier matches pool.tier: pass" in c for c in changed
    ), changed
    first = Page.parse((green.run_dir / "report.html").read_text()).by_id("since")
    assert "No earlier passing run" in first.content


def test_the_last_passing_run_is_on_the_same_box_and_passed(tmp_path: Path) -> None:
    green = passing(tmp_path)
    failing(tmp_path)  # newer, but failed
    elsewhere = passing(tmp_path)  # newer and passed, but another box
    edit(elsewhere.run_dir, "manifest.json", lambda m: m.update(host="other-box"))
    latest = passing(tmp_path)
    found = last_passing(load(latest.run_dir))
    assert found is not None and found.path == green.run_dir


def test_timings_skips_and_stack_version_that_moved(tmp_path: Path) -> None:
    before = passing(tmp_path).run_dir
    after = tmp_path / "after"
    shutil.copytree(before, after)

    def slower(summary: dict[str, Any]) -> None:
        for check in summary["checks"]:
            if check["scenario"] == "local-defaults" and check["name"] == "apply succeeded":
                check["duration"] += 5.0
            if check["scenario"] == "local-defaults" and check["name"] == "ready":
                check["duration"] += 0.5  # under the threshold: noise, not news
            if check["name"] == "idempotent: second apply reports no change":
                check.update(verdict="skip", skip_class="missing")

    edit(after, "summary.json", slower)
    edit(after, "manifest.json", lambda m: m["stack"].update(stack="9.9.9"))
    result = compare(load(before), load(after))
    assert [m.what for m in result.timings] == ["local-defaults: apply succeeded"]
    assert result.stack is not None and result.stack[1]["stack"] == "9.9.9"
    skipped = sorted(key for key, _ in result.new_skips)
    assert skipped == [
        ("local-defaults", "idempotent: second apply reports no change"),
        ("main-secure-strict", "idempotent: second apply reports no change"),
    ]
    assert compare(load(before), load(before)).empty


def test_compare_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    green, red = passing(tmp_path), failing(tmp_path)
    code = run_cli({"compare": [str(green.run_dir), str(red.run_dir)]})
    assert code == 0
    out = capsys.readouterr().out
    assert f"verdict: [{TIER[0]}] {TIER[1]}: pass -> fail" in out, out


@pytest.mark.parametrize("runs", [["one"], ["a", "b", "c"], ["missing-a", "missing-b"]])
def test_compare_needs_two_runs_one_line_exit_2(tmp_path: Path, runs: list[str]) -> None:
    console = io.StringIO()
    code = run_cli({"compare": [str(tmp_path / r) for r in runs]}, console)
    assert code == 2
    assert console.getvalue().count("\n") == 1, console.getvalue()


def test_a_report_renders_again_with_the_comparison(tmp_path: Path) -> None:
    passing(tmp_path)
    red = failing(tmp_path)
    (red.run_dir / "report.html").unlink()
    write_report(red.run_dir, Redactor())
    assert 'pass</span> &rarr; <b class="fail">fail' in (red.run_dir / "report.html").read_text()
