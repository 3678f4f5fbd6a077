"""Run the slowest test files first, so the workers finish together.

`make test` gives each worker whole files (`--dist loadfile`) in collection order
(`--no-loadscope-reorder`; xdist's own order puts the files with the most tests first,
which are the quick unit files, and leaves a 5-minute end-to-end file to start last).
Sorting the files by their last measured time, longest first, is the classic
longest-processing-time schedule: the long files start at once, the short ones fill in.

file_durations.json holds each file's seconds from a full run. Refresh it after adding a
slow file: `GATE_RECORD_DURATIONS=tests/file_durations.json make test`. A file it does
not know runs after the known ones, in collection order.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("file_durations.json")
RECORD = "GATE_RECORD_DURATIONS"

_measured: defaultdict[str, float] = defaultdict(float)


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    items.sort(key=lambda item: -known.get(_file_of(item.nodeid), 0.0))  # stable: files stay whole


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _measured[_file_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(RECORD)
    if target and not hasattr(session.config, "workerinput"):  # the controller has them all
        ordered = dict(sorted(_measured.items(), key=lambda item: -item[1]))
        rounded = {name: round(seconds, 1) for name, seconds in ordered.items()}
        Path(target).write_text(json.dumps(rounded, indent=1) + "\n")
