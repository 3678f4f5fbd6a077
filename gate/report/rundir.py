"""One run's artifacts read back from results/<run-id>/: what every rendering starts from.

Reading is forgiving about a run that never finished (killed: no summary.json, a torn last
line in events.jsonl) and strict about a directory that is not a run at all: that is a
usage error, one line, exit 2.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import UsageError

RUN_FILES = ("manifest.json", "summary.json", "events.jsonl")
REPORT = "report.html"
SUMMARY_MD = "summary.md"


@dataclass
class RunDir:
    """A run's artifacts as data; every path kept relative to the run dir (links in the
    report stay valid when the directory is moved or attached to a CI run)."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    captures: dict[str, list[str]] = field(default_factory=dict)
    """Capture dir name (a scenario, or a phase such as `check`) -> its files, relative."""
    files: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        found = (self.summary or {}).get("run_id") or self.manifest.get("run_id")
        return str(found or self.path.name)

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list((self.summary or {}).get("checks", []))

    @property
    def started(self) -> float | None:
        value = self.manifest.get("started") or (self.summary or {}).get("started")
        return float(value) if isinstance(value, int | float) else None

    def scenario_seconds(self) -> dict[str, float]:
        """How long each scenario took: from its phase mark to the next phase mark."""
        phases = [m for m in self.marks if m.get("kind") == "phase"]
        seconds: dict[str, float] = {}
        for mark, after in itertools.pairwise(phases):
            name = str(mark.get("name", ""))
            if name.startswith("scenario "):
                seconds[name.removeprefix("scenario ")] = float(after["t"]) - float(mark["t"])
        return seconds

    def captures_for(self, record: dict[str, Any]) -> list[str]:
        """The capture files a check's failure left: its scenario's, else its phase's."""
        where = record.get("scenario") or record.get("phase") or ""
        return self.captures.get(str(where), [])


def load(path: Path) -> RunDir:
    """The run at `path`; UsageError when it holds none of a run's files."""
    if not path.is_dir():
        raise UsageError(f"{path}: not a directory (give a results/<run-id>/ directory)")
    if not any((path / name).is_file() for name in RUN_FILES):
        raise UsageError(f"{path}: not a gate run (no {', '.join(RUN_FILES)})")
    run = RunDir(path)
    run.manifest = _json(path / "manifest.json") or {}
    run.summary = _json(path / "summary.json")
    run.events = _jsonl(path / "events.jsonl")
    run.marks = _jsonl(path / "timeline.jsonl")
    run.files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    for name in run.files:
        parts = name.split("/")
        if parts[0] == "captures" and len(parts) > 2:
            run.captures.setdefault(parts[1], []).append(name)
    return run


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """Each whole JSON object line; a torn line (a killed writer) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found
