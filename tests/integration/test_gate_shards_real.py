"""`--shard I/N` on real boxes: two boxes, each behind its own sshd with its own sample
stack, each walking its share of the declared matrix at the same time. Between them they
walk every scenario exactly once, and each box is put back as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    Box,
    GateRun,
    assert_restored,
    config_and_secret_hashes,
    start_gate,
    write_inventory,
)

from gate.matrix import validate_matrix
from gate.options import load_contract_file
from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow


def scenarios_walked(run: GateRun) -> set[str]:
    return {c["scenario"] for c in run.summary["checks"] if c.get("scenario")}


def test_two_boxes_walk_the_matrix_once_between_them_with_two_shards(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    boxes = {"one": make_stack_box("one"), "two": make_stack_box("two")}
    before = {name: config_and_secret_hashes(box) for name, box in boxes.items()}
    for name, box in boxes.items():
        write_inventory(inventory, name, dir=str(box.path), **sshd_factory().inventory_fields())

    started = {}
    for index, name in enumerate(boxes, start=1):
        flags = ("--host", name, "--inventory", str(inventory), "--shard", f"{index}/2")
        started[name] = start_gate(*flags, out=tmp_path / f"results-{name}")
    runs = {}
    for name, proc in started.items():
        code = proc.wait(timeout=600)
        console = (tmp_path / f"results-{name}-console.txt").read_text()
        runs[name] = GateRun(code, console, tmp_path / f"results-{name}")
        assert code == 0, console

    shares = {name: scenarios_walked(run) for name, run in runs.items()}
    declared = validate_matrix(load_contract_file(Path("matrix.py")).matrix).scenarios
    assert shares["one"] and shares["two"], shares  # both boxes had work
    assert not shares["one"] & shares["two"], shares  # no scenario twice
    assert shares["one"] | shares["two"] == {s.name for s in declared}  # none left out
    for name, box in boxes.items():
        assert_restored(box, before[name])
