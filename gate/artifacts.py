"""The evidence a run leaves in results/<run-id>/: manifest, events, summary, junit, captures.

Every byte written here passes through the redactor first. The directory is 0700 and its
files 0600: they describe a box that holds real keys.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from gate.box import Event
from gate.checks import CheckRecord, Verdict
from gate.redact import Redactor


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _private_mkdir(path: Path, *, exist_ok: bool = True) -> None:
    """mkdir -p with every created level 0700 (`mode=` alone covers only the last one)."""
    old = os.umask(0o077)
    try:
        path.mkdir(parents=True, exist_ok=exist_ok, mode=0o700)
    finally:
        os.umask(old)


class Artifacts:
    """Writes one run's evidence, redacted, owner-only."""

    def __init__(self, root: Path, run_id: str, redactor: Redactor) -> None:
        self.dir = root / run_id
        self.redact = redactor
        self.events: list[Event] = []
        _private_mkdir(self.dir, exist_ok=False)

    def write_text(self, relative: str, text: str) -> Path:
        """Write via a dot-file and rename: a reader (a fleet, a follower, CI) sees the
        whole file or none, never a half-written summary.json."""
        path = self.dir / relative
        _private_mkdir(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.redact(text))
        os.replace(tmp, path)
        return path

    def write_json(self, relative: str, data: Any) -> Path:
        return self.write_text(relative, json.dumps(data, indent=2, sort_keys=True, default=str))

    def record_event(self, event: Event) -> None:
        """Append one command to events.jsonl as a {status, start, end, duration} record."""
        self.events.append(event)
        result = event.result
        end = time.time()
        line = {
            "seq": len(self.events),
            "command": event.command,
            "kind": str(event.kind),
            "status": result.outcome.value,
            "exit": result.exit_code,
            "reason": result.reason,
            "start": end - result.duration,
            "end": end,
            "duration": round(result.duration, 4),
        }
        path = self.dir / "events.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(self.redact(json.dumps(line, sort_keys=True)) + "\n")

    def record_mark(self, mark: Mapping[str, Any]) -> None:
        """Append one console mark (a phase began, a wait polled) to timeline.jsonl: what
        report.html draws on its time axis besides the commands and the checks."""
        path = self.dir / "timeline.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(self.redact(json.dumps(mark, sort_keys=True, default=str)) + "\n")

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return self.write_json("summary.json", summary)

    def write_junit(self, records: Iterable[CheckRecord], name: str) -> Path:
        return self.write_text("junit.xml", junit_xml(records, name))


def junit_xml(records: Iterable[CheckRecord], name: str) -> str:
    """<testsuites> with one <testsuite> per scenario (else per phase), so CI test views
    group them; one testcase per check with its scenario, phase and evidence as
    properties; fail is <failure>, inconclusive <error>, skip <skipped> with its class."""
    records = list(records)
    root = ElementTree.Element("testsuites", {"name": name, **_counts(records)})
    suites: dict[str, list[CheckRecord]] = {}
    for record in records:
        suites.setdefault(_suite_name(name, record), []).append(record)
    for suite_name, members in suites.items():
        suite = ElementTree.SubElement(root, "testsuite", {"name": suite_name, **_counts(members)})
        for record in members:
            _testcase(suite, record)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def _suite_name(name: str, record: CheckRecord) -> str:
    return f"{name}.{record.phase}" + (f".{record.scenario}" if record.scenario else "")


def _counts(records: list[CheckRecord]) -> dict[str, str]:
    return {
        "tests": str(len(records)),
        "failures": str(sum(r.verdict is Verdict.FAIL for r in records)),
        "errors": str(sum(r.verdict is Verdict.INCONCLUSIVE for r in records)),
        "skipped": str(sum(r.verdict is Verdict.SKIP for r in records)),
        "time": f"{sum(r.duration for r in records):.3f}",
    }


def _testcase(suite: ElementTree.Element, record: CheckRecord) -> None:
    classname = f"{record.phase}.{record.scenario}" if record.scenario else record.phase
    case = ElementTree.SubElement(
        suite, "testcase", name=record.name, classname=classname, time=f"{record.duration:.3f}"
    )
    properties = ElementTree.SubElement(case, "properties")
    for key in ("scenario", "phase", "evidence"):
        ElementTree.SubElement(properties, "property", name=key, value=getattr(record, key))
    message = f"expected {record.expected}; observed {record.observed}; {record.evidence}"
    if record.verdict is Verdict.FAIL:
        ElementTree.SubElement(case, "failure", message=message)
    elif record.verdict is Verdict.INCONCLUSIVE:
        ElementTree.SubElement(case, "error", message="inconclusive: " + message)
    elif record.verdict is Verdict.SKIP:
        ElementTree.SubElement(case, "skipped", message=f"[{record.skip_class}] {record.evidence}")


def git_revision(repo: Path) -> dict[str, Any]:
    """The gate's own revision and whether its tree is dirty, for the manifest."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    revision = git("rev-parse", "HEAD")
    return {"revision": revision or None, "dirty": bool(git("status", "--porcelain"))}
