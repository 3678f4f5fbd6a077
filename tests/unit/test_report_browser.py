"""report.html opened in headless Chromium (Debian's `chromium`, `make sysdeps` installs it):
what the browser renders, a screenshot of each kind of run, and no request to any network
address (Chromium's own net log, with every host name mapped to nowhere so the browser's
background services cannot leave the machine either)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from doubleruns import DoubleRun, failing, interrupted, passing

from gate.testing.browser import Opened, browse

pytestmark = pytest.mark.slow


def open_report(run: DoubleRun, tmp_path: Path, name: str) -> Opened:
    report = run.run_dir / "report.html"
    return browse(
        report.as_uri(), tmp_path / "chromium" / name, tmp_path / "artifacts" / f"{name}.png"
    )


def test_the_net_log_sees_a_page_that_fetches(tmp_path: Path) -> None:
    """The control: a page with an image and a stylesheet elsewhere is caught asking."""
    page = tmp_path / "fetching.html"
    page.write_text(
        '<html><body><img src="http://127.0.0.1:9/pixel.png">'
        '<link rel="stylesheet" href="https://gate-report.invalid/x.css">hi</body></html>'
    )
    opened = browse(page.as_uri(), tmp_path / "chromium", tmp_path / "artifacts" / "control.png")
    assert "http://127.0.0.1:9/pixel.png" in opened.requests, opened.requests
    assert "https://gate-report.invalid/x.css" in opened.requests, opened.requests


def test_a_passing_run_in_the_browser(tmp_path: Path) -> None:
    run = passing(tmp_path)
    opened = open_report(run, tmp_path, "passing")
    assert "gate passed (exit 0)" in opened.page.by_id("verdict").content
    bars = opened.page.with_class("bar", "scenario")
    assert sorted(b.attrs["data-label"] for b in bars) == ["local-defaults", "main-secure-strict"]
    assert opened.requests == []


def test_a_failing_run_in_the_browser_links_its_captures(tmp_path: Path) -> None:
    run = failing(tmp_path)
    opened = open_report(run, tmp_path, "failing")
    assert "gate failed (exit 1)" in opened.page.by_id("verdict").content
    assert len(opened.page.with_class("bar", "scenario")) == 1
    evidence = " ".join(e.content for e in opened.page.with_class("failed-check"))
    assert 'pool.tier = "x"' in evidence
    links = [e.attrs["href"] for e in opened.page.with_class("capture")]
    assert links, "no capture linked"
    for href in links:
        target = run.run_dir / unquote(href)
        assert target.is_file() and target.stat().st_size > 0, href
    assert opened.requests == []


def test_an_interrupted_run_in_the_browser(tmp_path: Path) -> None:
    run = interrupted(tmp_path)
    opened = open_report(run, tmp_path, "interrupted")
    assert "(exit 130)" in opened.page.by_id("verdict").content
    assert "interrupted (SIGINT)" in opened.page.by_id("meaning").content
    assert len(opened.page.with_class("bar", "scenario")) == 1
    assert opened.requests == []
