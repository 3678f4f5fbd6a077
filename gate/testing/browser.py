"""report.html (or any page) opened in headless Chromium, offline: the DOM after rendering,
a screenshot, and every network request the page itself started (Chromium's net log, with
every host name mapped to nowhere so the browser's own background services cannot leave
the machine either). Used by the report tests on the double and on real boxes."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gate.testing.pagedom import Page

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


class NoBrowser(RuntimeError):
    """Chromium is not installed here."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise NoBrowser("chromium is not installed: run `make sysdeps` (apt-get install chromium)")
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
    if dom.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom failed: {dom.stderr[-2000:]}")
    shot.parent.mkdir(parents=True, exist_ok=True)
    drawn = subprocess.run(
        [*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False
    )
    if drawn.returncode != 0 or shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError(f"chromium --screenshot failed: {drawn.stderr[-2000:]!r}")
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
