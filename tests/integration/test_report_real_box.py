"""report.html of runs against a real sample-stack box, opened in headless Chromium: what
the double cannot show (real captures, real timings, the SSH path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from harness import Box, run_gate

from gate.testing.browser import browse

pytestmark = pytest.mark.slow


def test_a_failing_check_over_ssh_renders_with_its_evidence_and_real_captures(
    stack_box: Box, via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    assert stack_box.ctl("stop", "worker-2").returncode == 0
    stack_box.wait_exit(1)
    run = run_gate(*via(stack_box), "--check", out=tmp_path / "results")
    assert run.code == 1, run.output
    opened = browse(
        (run.run_dir / "report.html").as_uri(), tmp_path / "chromium", tmp_path / "failing.png"
    )
    assert "gate failed (exit 1)" in opened.page.by_id("verdict").content
    evidence = " ".join(e.content for e in opened.page.with_class("failed-check"))
    assert "status exited 1" in evidence, evidence
    links = [unquote(e.attrs["href"]) for e in opened.page.with_class("capture")]
    assert any(link.endswith("logs/worker-2.log") for link in links), links
    for link in links:
        assert (run.run_dir / link).is_file(), link
    assert opened.requests == []


def test_a_real_matrix_run_draws_one_bar_per_scenario(stack_box: Box, tmp_path: Path) -> None:
    scenarios = ["local-defaults", "nano-cache-lan"]
    picks = [word for name in scenarios for word in ("--scenario", name)]
    run = run_gate("--local", "--dir", str(stack_box.path), *picks, out=tmp_path / "results")
    assert run.code == 0, run.output
    opened = browse(
        (run.run_dir / "report.html").as_uri(), tmp_path / "chromium", tmp_path / "matrix.png"
    )
    assert "gate passed (exit 0)" in opened.page.by_id("verdict").content
    bars = opened.page.with_class("bar", "scenario")
    assert sorted(b.attrs["data-label"] for b in bars) == sorted(scenarios)
    assert opened.requests == []
