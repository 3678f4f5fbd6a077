"""What a run hands to CI and how a run's views are made again: summary.md (--summary-md,
$GITHUB_STEP_SUMMARY), junit.xml grouped per scenario, `invoke report RESULTS_DIR`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

from doubleruns import REPO, failing, passing, run_gate
from fakestack import SECRETS, FakeStack

from gate.redact import Redactor
from gate.report.write import write_views


def test_summary_md_has_the_verdict_the_failed_check_and_how_to_reproduce(
    tmp_path: Path,
) -> None:
    target = tmp_path / "ci" / "summary.md"
    run = failing(tmp_path, summary_md=str(target))
    assert run.code == 1, run.console
    text = target.read_text()
    assert text == (run.run_dir / "summary.md").read_text()
    assert "gate failed (exit 1)" in text
    assert "| failed | 1 | 59 | 2 | 0 | 0 |" in text, text
    row = next(line for line in text.splitlines() if "api: pool tier matches pool.tier |" in line)
    assert row.startswith("| fail | main-secure-strict |") and 'pool.tier = "x"' in row, row
    assert "--scenario main-secure-strict" in text, "no reproduce command"
    assert f"`{(run.run_dir / 'report.html').resolve()}`" in text
    leaked = [name for name, value in SECRETS.items() if value[:12] in text]
    assert leaked == []


def test_a_summary_md_that_is_a_directory_is_refused_before_the_box(tmp_path: Path) -> None:
    stack = FakeStack()
    run = run_gate(stack, tmp_path, summary_md=str(tmp_path), scenario=["local-defaults"])
    assert run.code == 2, run.console
    assert run.console.count("\n") == 1 and "--summary-md" in run.console, run.console
    assert stack.target.calls == [], "the box was asked something"


def test_the_step_summary_is_appended_to_not_replaced(tmp_path: Path) -> None:
    run = passing(tmp_path)
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(step)}
    write_views(run.run_dir, Redactor(), env=env)
    write_views(run.run_dir, Redactor(), env=env)
    text = step.read_text()
    assert text.startswith("earlier step\n")
    assert text.count("gate passed (exit 0)") == 2, text


def test_junit_has_one_suite_per_scenario_and_properties_per_check(tmp_path: Path) -> None:
    run = failing(tmp_path)
    root = ElementTree.parse(run.run_dir / "junit.xml").getroot()
    assert root.tag == "testsuites"
    names = [s.get("name") for s in root.findall("testsuite")]
    assert "gate.matrix.matrix.main-secure-strict" in names, names
    assert {"gate.matrix.baseline", "gate.matrix.restore"} <= set(names), names
    suite = next(s for s in root.findall("testsuite") if s.get("name", "").endswith("strict"))
    assert (suite.get("failures"), root.get("failures")) == ("1", "2")
    case = next(
        c for c in suite.findall("testcase") if c.get("name") == "api: pool tier matches pool.tier"
    )
    props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
    assert props["scenario"] == "main-secure-strict" and props["phase"] == "matrix"
    assert props["evidence"].startswith('pool.tier = "x"'), props
    assert case.find("failure") is not None


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )  # fmt: skip


def test_invoke_report_renders_a_run_again(tmp_path: Path) -> None:
    run = failing(tmp_path)
    (run.run_dir / "report.html").unlink()
    (run.run_dir / "summary.md").unlink()
    done = invoke("report", str(run.run_dir))
    assert done.returncode == 0, done.stderr
    assert f"wrote {run.run_dir / 'report.html'}" in done.stdout
    assert "api: pool tier matches pool.tier" in (run.run_dir / "report.html").read_text()
    assert "gate failed (exit 1)" in (run.run_dir / "summary.md").read_text()


def test_invoke_report_on_a_dir_that_is_not_a_run_is_one_line_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    done = invoke("report", str(empty))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"gate: {empty}: not a gate run (no manifest.json, "
                                        "summary.json, events.jsonl)"]  # fmt: skip
    assert list(empty.iterdir()) == [], "it wrote into a dir that is not a run"
