"""report.html opened in headless Chromium (Debian's `chromium`, `make sysdeps` installs it):
what the browser renders, a screenshot of each kind of run, and no request to any network
address (Chromium's own net log, with every host name mapped to nowhere so the browser's
background services cannot leave the machine either)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from doubleruns import DoubleRun, failing, interrupted, passing
from pagedom import Page

pytestmark = pytest.mark.slow

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1250,1500",
)


@dataclass
class Opened:
    page: Page
    requests: list[str]
    """URLs the page itself asked for (its network isolation key is the file:// page)."""
    screenshot: Path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make sysdeps` (apt-get install chromium)")
    return found


def browse(url: str, work: Path, shot: Path) -> Opened:
    """The DOM after rendering (--dump-dom, with a net log), then a screenshot."""
    work.mkdir(parents=True, exist_ok=True)
    net = work / "net.json"
    base = [chromium(), *FLAGS, f"--user-data-dir={work / 'profile'}"]
    dom = subprocess.run(
        [*base, f"--log-net-log={net}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot.parent.mkdir(parents=True, exist_ok=True)
    drawn = subprocess.run(
        [*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False
    )
    assert drawn.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", drawn.stderr
    return Opened(Page.parse(dom.stdout), page_requests(net), shot)


def page_requests(net_log: Path) -> list[str]:
    """Every non-file URL the page (not the browser's own services) started a request for."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    found = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] != start or "file://" not in str(params.get("network_isolation_key")):
            continue
        if urlsplit(str(params.get("url"))).scheme not in ("file", "data"):
            found.append(str(params["url"]))
    return found


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
