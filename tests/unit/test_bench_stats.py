"""The benchmark's pure helpers: median, p95, ratios and the table (no bench is run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_stats() -> ModuleType:
    """bench/ is a script folder, not an installed package: load its module by path."""
    path = Path(__file__).resolve().parents[2] / "bench" / "stats.py"
    spec = importlib.util.spec_from_file_location("bench_stats", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


stats = _load_stats()


def test_median_in_ms_odd_and_even() -> None:
    assert stats.median_ms([0.003, 0.001, 0.002]) == pytest.approx(2.0)
    assert stats.median_ms([0.004, 0.001, 0.002, 0.003]) == pytest.approx(2.5)


def test_p95_is_nearest_rank() -> None:
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms, shuffled order must not matter
    assert stats.p95_ms(list(reversed(samples))) == pytest.approx(95.0)
    assert stats.p95_ms([0.001, 0.002]) == pytest.approx(2.0)  # 95% of 2 rounds up to both
    assert stats.p95_ms([0.007]) == pytest.approx(7.0)


def test_ratio_formats_and_refuses_nothing_to_divide_by() -> None:
    assert stats.ratio(207.0, 1.0) == "207x"
    assert stats.ratio(4.7, 1.0) == "4.7x"
    assert stats.ratio(0.3, 48.0) == "0.0062x"
    assert stats.ratio(1.0, None) == "-"
    assert stats.ratio(1.0, 0.0) == "-"


def test_table_ratios_against_fastest_and_reference_and_notes() -> None:
    rows = [
        stats.Row("fast", (0.001, 0.001, 0.001)),
        stats.Row("fabric run", (0.050, 0.050, 0.060)),
        stats.Row("absent", note="not installed: no wheel"),
    ]
    header, fast, fabric, absent = stats.table_lines(rows, "fabric run")
    assert header.split()[:3] == ["method", "median", "ms"]
    assert fast.split() == ["fast", "1.00", "1.00", "1.0x", "0.02x"]
    assert fabric.split() == ["fabric", "run", "50.00", "60.00", "50x", "1.0x"]
    assert absent.split()[1:5] == ["-", "-", "-", "-"]
    assert absent.endswith("not installed: no wheel")


def test_table_without_the_reference_shows_dashes() -> None:
    _, only = stats.table_lines([stats.Row("x", (0.002,))], "fabric run")
    assert only.split() == ["x", "2.00", "2.00", "1.0x", "-"]


def test_aligned_pads_every_column_but_the_last() -> None:
    lines = stats.aligned([("a", "bb", "note"), ("ccc", "d", "a longer note")])
    assert lines == ["a    bb  note", "ccc  d   a longer note"]


def test_percent_and_nothing_to_divide_by() -> None:
    assert stats.percent(1.0, 8.0) == "12.5%"
    assert stats.percent(1.0, 0.0) == "-"


def test_growth_per_item_and_per_added_item() -> None:
    steps = stats.growth({4: [40.0, 44.0, 42.0], 1: [20.0], 2: [26.0, 24.0], 8: []})
    assert [s.count for s in steps] == [1, 2, 4]  # no samples at 8: left out
    one, two, four = steps
    assert (one.median, one.per_item, one.added) == (20.0, 20.0, None)
    assert (two.median, two.p95, two.per_item, two.added) == (25.0, 26.0, 12.5, 5.0)
    assert (four.runs, four.median, four.added) == (3, 42.0, pytest.approx(8.5))
