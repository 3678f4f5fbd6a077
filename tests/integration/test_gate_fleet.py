"""`invoke gate --host a,b,c --check` on real boxes: each behind its own sshd, each with its
own sample stack; one broken, one unreachable. Every box is reported, each run stays on its
own box, and the fleet's exit code is the worst of theirs."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Box,
    GateRun,
    assert_restored,
    config_and_secret_hashes,
    run_gate,
    start_gate,
    wait_for,
    write_inventory,
)

from gate.testing.sshd import Sshd, free_port

pytestmark = pytest.mark.slow

BROKEN = "services: every expected service running"


def rows(run: GateRun) -> dict[str, dict[str, Any]]:
    return {row["box"]: row for row in run.summary["boxes"]}


def box_run(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A box's own run: its summary.json and manifest.json."""
    where = Path(row["results"])
    summary = json.loads((where / "summary.json").read_text())
    return summary, json.loads((where / "manifest.json").read_text())


def test_a_fleet_reports_every_box_and_ends_with_the_worst_code(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    boxes = {"green": make_stack_box("green"), "red": make_stack_box("red")}
    for name, box in boxes.items():
        write_inventory(inventory, name, dir=str(box.path), **sshd_factory().inventory_fields())
    closed = {**sshd_factory().inventory_fields(), "port": free_port()}  # nothing listens
    write_inventory(inventory, "gone", dir=str(tmp_path / "nowhere"), **closed)
    (inventory / "groups.toml").write_text('[groups]\nall = ["green", "red", "gone"]\n')
    assert boxes["red"].ctl("stop", "worker-2").returncode == 0
    boxes["red"].wait_exit(1)
    flags = ("--inventory", str(inventory), "--check")

    two = run_gate("--host", "green,red", *flags, out=tmp_path / "two")

    assert two.code == 1, two.output
    assert (two.summary["verdict"], two.summary["exit_code"]) == ("failed", 1)
    assert {b: r["exit_code"] for b, r in rows(two).items()} == {"green": 0, "red": 1}
    assert BROKEN in rows(two)["red"]["failing"]
    for name, box in boxes.items():  # each run gated its own box, and wrote its own results
        row = rows(two)[name]
        assert Path(row["results"]).parent == two.run_dir / name
        summary, manifest = box_run(row)
        assert (manifest["host"], manifest["stack_dir"]) == (name, str(box.path))
        verdict = {c["name"]: c["verdict"] for c in summary["checks"]}[BROKEN]
        assert verdict == ("fail" if name == "red" else "pass"), (name, verdict)
        assert summary["counts"]["pass"] >= 15, summary["counts"]
        assert row["counts"] == summary["counts"]
    assert any(line.startswith("[red  ] ") and BROKEN in line for line in two.output.splitlines())
    assert "gate fleet: failed (exit 1): the worst of 2 boxes" in two.output

    three = run_gate("--host", "all", *flags, out=tmp_path / "three")

    assert three.code == 3, three.output
    found = rows(three)
    assert {b: r["exit_code"] for b, r in found.items()} == {"green": 0, "red": 1, "gone": 3}
    assert found["gone"]["verdict"] == "inconclusive"
    assert "connect" in (found["gone"]["error"] or "").lower(), found["gone"]
    assert found["green"]["counts"]["pass"] >= 15 and found["red"]["counts"]["fail"] >= 1
    table = [line.split()[:3] for line in three.output.splitlines()]
    for expected in (
        ["green", "passed", "0"],
        ["red", "failed", "1"],
        ["gone", "inconclusive", "3"],
    ):
        assert expected in table, three.output
    assert (
        (three.run_dir / "summary.md")
        .read_text()
        .startswith("## gate fleet: inconclusive (exit 3)")
    )


APPLIED = "stackctl apply -y"


def applied_on(out: Path) -> set[str]:
    """The boxes whose run (results/<fleet>/<box>/<run>/) has applied a scenario's config."""
    found = set()
    for events in out.glob("*/*/*/events.jsonl"):
        if any(APPLIED in json.loads(line)["command"] for line in events.read_text().splitlines()):
            found.add(events.parent.parent.name)
    return found


def test_a_ctrl_c_reaches_every_box_and_each_is_restored(
    sshd_factory: Callable[[], Sshd], make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory"
    boxes = {"a": make_stack_box("a"), "b": make_stack_box("b")}
    for name, box in boxes.items():
        write_inventory(inventory, name, dir=str(box.path), **sshd_factory().inventory_fields())
    before = {name: config_and_secret_hashes(box) for name, box in boxes.items()}
    out = tmp_path / "results"
    flags = ("--host", "a,b", "--inventory", str(inventory), "--scenario", "nano-cache-lan")
    fleet = start_gate(*flags, out=out)
    try:
        wait_for("both boxes mid-scenario", lambda: applied_on(out), lambda s: s == {"a", "b"},
                 timeout=120)  # fmt: skip
        fleet.send_signal(signal.SIGINT)
        code = fleet.wait(timeout=300)
    finally:
        if fleet.poll() is None:
            fleet.kill()
    run = GateRun(code, (out.parent / f"{out.name}-console.txt").read_text(), out)
    assert code == 130, run.output
    assert "fleet: SIGINT: forwarded to 2 running box run(s)" in run.output
    for name, box in boxes.items():
        row = rows(run)[name]
        assert row["exit_code"] == 130, row
        summary, _ = box_run(row)
        proof = {c["name"]: c["verdict"] for c in summary["checks"] if c["phase"] == "restore"}
        assert proof.get("restore: config bytes identical") == "pass", (name, proof)
        assert_restored(box, before[name])
