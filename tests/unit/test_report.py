"""report.html as written: rendered from a run's artifacts alone, redacted, self-contained.

What a browser makes of it is tests/unit/test_report_browser.py; here the page's content.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from doubleruns import DoubleRun, failing, interrupted, passing
from fakestack import SECRETS

from gate.errors import UsageError
from gate.redact import Redactor
from gate.report.rundir import load
from gate.report.write import write_report
from gate.testing.pagedom import Page


def page(run: DoubleRun) -> Page:
    return Page.parse((run.run_dir / "report.html").read_text())


def test_a_passing_run_says_so_and_draws_one_bar_per_scenario(tmp_path: Path) -> None:
    run = passing(tmp_path)
    assert run.code == 0, run.console
    report = run.run_dir / "report.html"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert f"report: {report}" in run.console
    shown = page(run)
    assert "gate passed (exit 0)" in shown.by_id("verdict").content
    assert "the release may proceed" in shown.by_id("meaning").content
    bars = shown.with_class("bar", "scenario")
    assert sorted(b.attrs["data-label"] for b in bars) == ["local-defaults", "main-secure-strict"]
    assert {b.attrs["data-state"] for b in bars} == {"pass"}
    assert "Restore: proven" in shown.by_id("restore").content


def test_the_timeline_has_the_applies_and_the_waits_with_their_polls(tmp_path: Path) -> None:
    shown = page(passing(tmp_path))
    changes = [b.attrs["data-label"] for b in shown.with_class("bar", "change")]
    assert sum("apply" in label for label in changes) >= 5, changes  # 2 x (apply, again) + restore
    waits = shown.with_class("bar", "wait")
    assert any(b.attrs["data-label"] == "ready" for b in waits), [b.attrs for b in waits]
    assert len(shown.with_class("tick", "poll")) >= len(waits)
    phases = [b.attrs["data-label"] for b in shown.with_class("bar", "phase")]
    assert phases[:2] == ["connect", "baseline"] and "restore" in phases, phases


def test_a_failing_run_shows_the_evidence_and_links_its_captures(tmp_path: Path) -> None:
    run = failing(tmp_path)
    assert run.code == 1, run.console
    shown = page(run)
    assert "gate failed (exit 1)" in shown.by_id("verdict").content
    (bar,) = shown.with_class("bar", "scenario")
    assert bar.attrs["data-state"] == "fail"
    failed = [e.content for e in shown.with_class("failed-check")]
    tier = [text for text in failed if "[main-secure-strict] api: pool tier" in text]
    assert tier and 'pool.tier = "x"' in tier[0], failed
    links = [e.attrs["href"] for e in shown.with_class("capture")]
    assert "captures/main-secure-strict/status.txt" in links, links
    for href in links:
        assert (run.run_dir / unquote(href)).is_file(), href


def test_an_interrupted_run_says_it_was_interrupted_and_restored(tmp_path: Path) -> None:
    run = interrupted(tmp_path)
    assert run.code == 130, run.console
    shown = page(run)
    assert "(exit 130)" in shown.by_id("verdict").content
    assert "interrupted (SIGINT)" in shown.by_id("meaning").content
    assert "Restore: proven" in shown.by_id("restore").content


def test_a_killed_run_without_a_summary_is_still_drawn(tmp_path: Path) -> None:
    run = passing(tmp_path)
    (run.run_dir / "summary.json").unlink()
    (run.run_dir / "report.html").unlink()
    with (run.run_dir / "events.jsonl").open("a") as torn:
        torn.write('{"seq": 999, "comm')  # the writer was killed mid-line
    write_report(run.run_dir, Redactor())
    shown = Page.parse((run.run_dir / "report.html").read_text())
    assert shown.by_id("verdict").content == "did not finish"
    assert shown.with_class("bar", "change"), "the events it left were not drawn"


def test_the_page_fetches_nothing_and_escapes_what_the_box_said(tmp_path: Path) -> None:
    run = failing(tmp_path)
    hostile = '<img src="http://198.51.100.7/x.png"><script>alert(1)</script>'
    plant(run.run_dir, hostile)
    write_report(run.run_dir, Redactor())
    html = (run.run_dir / "report.html").read_text()
    shown = Page.parse(html)
    assert hostile not in html and "&lt;img src=" in html
    assert not [e for e in shown.elements if e.tag in ("script", "img", "link", "iframe")]
    remote = [u for u in shown.urls() if urlsplit(u).scheme or u.startswith("//")]
    assert remote == [], remote
    (csp,) = [e for e in shown.elements if e.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp.attrs["content"]


def test_every_value_passes_the_redactor(tmp_path: Path) -> None:
    run = failing(tmp_path)
    plant(run.run_dir, "the box said PROXY_AUTH_TOKEN=shape-leak-77 and known-leak-99")
    write_report(run.run_dir, Redactor(["known-leak-99"]))
    html = (run.run_dir / "report.html").read_text()
    assert "PROXY_AUTH_TOKEN=***" in html, "the planted evidence was not rendered"
    assert "shape-leak-77" not in html and "known-leak-99" not in html


def plant(run_dir: Path, evidence: str) -> None:
    """Puts `evidence` on the run's failed check, as a box's answer would arrive."""
    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    failed = [c for c in summary["checks"] if c["verdict"] == "fail"]
    assert failed, "the failing run failed nothing"
    failed[0]["evidence"] = evidence
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_a_dir_that_is_not_a_run_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nope"
    if kind == "file":
        target.write_text("x")
    elif kind == "empty":
        target.mkdir()
    with pytest.raises(UsageError):
        load(target)


def test_the_double_s_secrets_are_in_no_page(tmp_path: Path) -> None:
    """The canary grep on the double: its secrets (and the one `version` leaks) are in the
    box's files, never in report.html."""
    run = failing(tmp_path, {"version_leaks_secret": True})
    html = (run.run_dir / "report.html").read_text()
    assert "api: pool tier matches pool.tier" in html, "too little was drawn to grep"
    leaked = [name for name, value in SECRETS.items() if value in html or value[:12] in html]
    assert leaked == []
