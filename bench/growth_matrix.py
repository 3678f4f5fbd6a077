"""A contract file for bench/scenario_growth.py (`invoke gate --matrix bench/growth_matrix.py`):
the sample stack's own contract and axes (matrix.py), with eight declared scenarios that
need no fact, so `--scenario` can pick the first 1, 2, 4 or 8.

Each scenario sets the five axes that need no fact (node.mode and node.compact stay at the
box's local, full-format values) and no two in a row are alike, nor the first like the
box's own config: every step applies and recreates something, as a real matrix does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from gate.matrix import Matrix, Scenario

AXES = ("pool.tier", "node.lan_access", "extras.cache", "dashboard.secure", "dashboard.strict")
ROWS = (
    ("main", False, False, True, True),
    ("nano", True, True, False, False),
    ("mini", True, False, True, False),
    ("main", False, True, False, True),
    ("nano", False, False, True, False),
    ("mini", False, True, True, True),
    ("main", True, False, False, False),
    ("mini", False, False, False, False),
)
"""g1 differs from the box's own config (the defaults, g8), so even one scenario applies."""


def _sample() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "matrix.py"
    spec = importlib.util.spec_from_file_location("bench_sample_matrix", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SAMPLE = _sample()
CONTRACT = _SAMPLE.CONTRACT
SCENARIOS = tuple(
    Scenario(f"g{index}", dict(zip(AXES, row, strict=True)))
    for index, row in enumerate(ROWS, start=1)
)
MATRIX = Matrix(
    axes=_SAMPLE.MATRIX.axes, scenarios=SCENARIOS, ready_timeout=_SAMPLE.MATRIX.ready_timeout
)
