"""`invoke gate` walking the config matrix on real sample-stack boxes, and always putting
them back: the full matrix (locally and over SSH), each way a stack can go wrong, the
validation that happens before any side effect, and `--list` coverage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ssh_args
from harness import REPO, Box, GateRun, config_and_secret_hashes, run_gate

from gate.matrix import coverage, unmet, validate_matrix
from gate.options import load_contract_file
from gate.testing.sshd import Sshd

ALL_SCENARIOS = [
    "local-defaults",
    "main-secure-strict",
    "nano-cache-lan",
    "remote-node",
    "compact-alt-data",
]


# --- what "restored" and "untouched" mean, asserted ----------------------------------------


def gate_state(box: Box) -> str:
    """The on-box run state the gate keeps in .gate/state.json."""
    return str(json.loads((box.path / ".gate" / "state.json").read_text())["state"])


def assert_restored(box: Box, before: dict[str, str]) -> None:
    """config.json, .env and every secret file that existed before hash the same; only new
    secret files (minted by a secure scenario) may have appeared; the gate says clean."""
    after = config_and_secret_hashes(box)
    changed = {p for p in before if after.get(p) != before[p]}
    assert not changed, f"not restored: {sorted(changed)}"
    added = set(after) - set(before)
    assert all(p.startswith("secrets/") for p in added), added
    assert gate_state(box) == "clean"


def assert_restore_proven(run: GateRun) -> None:
    proof = {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "restore"}
    assert proof.get("restore: config bytes identical") == "pass", proof
    assert len(proof) >= 5, proof
    assert set(proof.values()) == {"pass"}, proof
    assert "restore proven" in run.output


def mutations(run: GateRun) -> list[str]:
    return [e["command"] for e in run.events if e["kind"] == "mutate"]


def scenario_checks(run: GateRun, scenario: str) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in run.summary["checks"] if c["scenario"] == scenario}


def set_defects(box: Box, **switches: object) -> None:
    (box.path / "defects.json").write_text(json.dumps(switches))


def local(box: Box) -> list[str]:
    return ["--local", "--dir", str(box.path)]


def node_url(box: Box) -> str:
    return f"http://127.0.0.1:{box.port('node', 'rpc_port')}"


# --- the full matrix ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_full_matrix_runs_every_scenario_and_puts_the_box_back_byte_for_byte(
    transport: str,
    make_stack_box: Callable[..., Box],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    remote = make_stack_box("remote")
    box = make_stack_box("box")
    alt = tmp_path / "alt-data"
    alt.mkdir()
    facts = {"remote_node_url": node_url(remote), "alt_data_dir": str(alt)}
    if transport == "local":  # facts on the command line
        flags = local(box) + [arg for k, v in facts.items() for arg in ("--fact", f"{k}={v}")]
    else:  # facts in the inventory's [requirements]
        server: Sshd = request.getfixturevalue("sshd")
        flags = ssh_args(server, box, tmp_path / "inventory", requirements=facts)
    before = config_and_secret_hashes(box)
    services_before = set(box.pids())
    assert {"config.json", ".env", "secrets/node.key"} <= set(before)

    run = run_gate(*flags, out=tmp_path / "results", timeout=600)

    assert run.code == 0, run.output
    assert [s["scenario"] for s in run.summary["scenarios"]] == ALL_SCENARIOS
    assert run.summary["counts"]["fail"] == 0
    assert run.summary["counts"]["inconclusive"] == 0
    skipped = {(c["scenario"], c["name"], c["skip_class"]) for c in run.summary["checks"]
               if c["verdict"] == "skip"}  # fmt: skip
    scope = "scope: services outside the change kept their pids"
    # node.mode touches every service: a switch of it leaves no service to hold to a scope
    assert skipped == {(s, scope, "by-design") for s in ("remote-node", "compact-alt-data")}
    assert run.summary["unobserved_axes"] == []
    for name in ALL_SCENARIOS[:3]:
        assert scenario_checks(run, name)[scope] == "pass", name
    for name in ALL_SCENARIOS:
        checks = scenario_checks(run, name)
        for check in (
            "apply succeeded",
            "ready",
            "idempotent: second apply reports no change",
            "idempotent: no service restarted",
            "secrets: kept (fingerprints equal the baseline)",
            "api: node format matches node.compact",
            "api: pool tier matches pool.tier",
        ):
            assert checks.get(check) == "pass", (name, check, checks)
    assert scenario_checks(run, "remote-node")["api: node mode matches node.mode"] == "pass"
    secure = [c for c in run.summary["checks"] if c["scenario"] == "main-secure-strict"]
    tier = next(c for c in secure if c["name"] == "api: pool tier matches pool.tier")
    assert tier["evidence"].endswith("; TLS not verified (declared InsecureLoopback)"), tier
    assert_restore_proven(run)
    assert_restored(box, before)
    # raw sources: the scenarios really ran, and the box really runs its own config again
    assert (alt / "FORMAT").read_text().strip() == "compact"
    assert (box.path / "data" / "node" / "FORMAT").read_text().strip() == "full"
    assert box.status()[0] == 0
    assert set(box.pids()) == services_before
    state = box.api_state()
    assert state["node"]["mode"] == "local"
    assert state["node"]["compact"] is False
    assert state["pool"]["tier"] == "mini"
    assert remote.status()[0] == 0


# --- each way a stack can go wrong --------------------------------------------------------


@pytest.mark.slow
def test_an_apply_that_rotates_a_secret_is_caught_and_the_box_is_reported_dirty(
    stack_box: Box, tmp_path: Path
) -> None:
    set_defects(stack_box, rotate_secret_on_apply=True)
    token_before = stack_box.env()["DASHBOARD_TOKEN"]

    run = run_gate(*local(stack_box), "--scenario", "main-secure-strict", out=tmp_path / "r")

    checks = scenario_checks(run, "main-secure-strict")
    assert checks["apply succeeded"] == "pass"
    assert checks["secrets: kept (fingerprints equal the baseline)"] == "fail", checks
    rotated = next(
        c
        for c in run.summary["checks"]
        if c["scenario"] == "main-secure-strict" and c["name"].startswith("secrets: kept")
    )
    assert "DASHBOARD_TOKEN" in json.dumps(rotated)
    assert token_before not in run.everything_written()
    # the restore's own apply rotates it again: the box cannot be proven as it was
    assert stack_box.env()["DASHBOARD_TOKEN"] != token_before
    assert run.code == 4, run.output
    assert run.verdict("restore: secrets: kept (fingerprints equal the baseline)") == "fail"
    assert run.verdict("restore: config bytes identical") == "pass"
    assert "DIRTY" in run.output
    assert gate_state(stack_box) == "dirty"


@pytest.mark.slow
def test_a_second_apply_that_restarts_a_service_fails_idempotency(
    stack_box: Box, tmp_path: Path
) -> None:
    set_defects(stack_box, restart_on_every_apply=True)
    before = config_and_secret_hashes(stack_box)

    run = run_gate(*local(stack_box), "--scenario", "nano-cache-lan", out=tmp_path / "r")

    assert run.code == 1, run.output
    checks = scenario_checks(run, "nano-cache-lan")
    assert checks["idempotent: second apply reports no change"] == "pass"  # it says so...
    assert checks["idempotent: no service restarted"] == "fail"  # ...but pool restarted
    restarted = next(
        c
        for c in run.summary["checks"]
        if c["scenario"] == "nano-cache-lan" and c["name"] == "idempotent: no service restarted"
    )
    assert restarted["observed"] == "restarted: pool", restarted
    assert checks["apply succeeded"] == "pass"
    assert checks["ready"] == "pass"
    assert (run.run_dir / "captures" / "nano-cache-lan").is_dir()
    assert_restore_proven(run)
    assert_restored(stack_box, before)


@pytest.mark.slow
def test_an_apply_that_fails_for_one_scenario_does_not_stop_the_others(
    stack_box: Box, tmp_path: Path
) -> None:
    set_defects(stack_box, fail_apply_on_tier="nano")
    before = config_and_secret_hashes(stack_box)

    run = run_gate(
        *local(stack_box),
        "--scenario",
        "nano-cache-lan",
        "--scenario",
        "main-secure-strict",
        out=tmp_path / "r",
    )

    assert run.code == 1, run.output
    failed = scenario_checks(run, "nano-cache-lan")
    assert failed == {"apply succeeded": "fail"}, failed
    ran = scenario_checks(run, "main-secure-strict")
    assert ran["apply succeeded"] == "pass"
    assert ran["api: pool tier matches pool.tier"] == "pass"
    assert len(ran) >= 15 and set(ran.values()) == {"pass"}, ran
    lines = {s["scenario"]: s for s in run.summary["scenarios"]}
    assert "failed: apply succeeded" in lines["nano-cache-lan"]["evidence"]
    assert lines["nano-cache-lan"]["reproduce"].endswith("--scenario nano-cache-lan")
    assert (
        "pool failed to come up with tier nano"
        in (run.run_dir / "scenarios" / "nano-cache-lan" / "apply.log").read_text()
    )
    assert_restore_proven(run)
    assert_restored(stack_box, before)


@pytest.mark.slow
def test_a_scenario_with_an_unmet_requirement_is_a_named_skip_and_red_under_strict(
    stack_box: Box, tmp_path: Path
) -> None:
    before = config_and_secret_hashes(stack_box)
    # the only selected scenario needs a fact nobody gave: strict refuses the gap
    strict = run_gate(
        *local(stack_box), "--scenario", "remote-node", "--strict", out=tmp_path / "strict"
    )
    assert strict.code == 1, strict.output
    assert strict.verdict("remote-node/scenario remote-node") == "skip"
    skip = next(c for c in strict.summary["checks"] if c["scenario"] == "remote-node")
    assert skip["skip_class"] == "missing"
    assert "remote_node_url" in skip["evidence"]
    assert strict.summary["strict_failures"] == [
        "skip of class missing: remote-node",
        "no check executed",
    ]
    assert mutations(strict) == [], "nothing was runnable, yet the box was changed"
    assert config_and_secret_hashes(stack_box) == before
    assert not (stack_box.path / ".gate" / "state.json").exists(), "no baseline was needed"

    # without --strict the skip is named but the runnable scenario decides
    lenient = run_gate(
        *local(stack_box),
        "--scenario",
        "remote-node",
        "--scenario",
        "local-defaults",
        out=tmp_path / "lenient",
    )
    assert lenient.code == 0, lenient.output
    assert lenient.verdict("remote-node/scenario remote-node") == "skip"
    assert "SKIP" in lenient.output and "remote-node" in lenient.output
    assert scenario_checks(lenient, "local-defaults")["apply succeeded"] == "pass"
    assert [s["scenario"] for s in lenient.summary["scenarios"]] == ["local-defaults"]
    assert_restore_proven(lenient)
    assert_restored(stack_box, before)


@pytest.mark.slow
def test_a_restore_that_cannot_be_proven_is_exit_4_and_the_box_stays_dirty(
    stack_box: Box, tmp_path: Path
) -> None:
    set_defects(stack_box, rewrite_config_on_apply=True)

    run = run_gate(*local(stack_box), "--scenario", "local-defaults", out=tmp_path / "r")

    assert run.code == 4, run.output
    assert "DIRTY" in run.output
    assert run.verdict("restore: config bytes identical") == "fail"
    assert run.summary["verdict"] == "BOX DIRTY"
    assert "restore proven" not in run.output
    assert gate_state(stack_box) == "dirty"
    # the next run refuses the box until it is recovered
    again = run_gate(*local(stack_box), "--scenario", "local-defaults", out=tmp_path / "again")
    assert again.code == 4, again.output
    assert "--recover" in again.output
    assert mutations(again) == []


@pytest.mark.slow
def test_keep_leaves_the_box_on_the_scenario_dirty_until_recover(
    stack_box: Box, tmp_path: Path
) -> None:
    before = config_and_secret_hashes(stack_box)
    kept = run_gate(
        *local(stack_box), "--scenario", "nano-cache-lan", "--keep", out=tmp_path / "kept"
    )
    assert kept.code == 0, kept.output
    assert "NOT restored" in kept.output
    assert not any(c["phase"] == "restore" for c in kept.summary["checks"])
    assert gate_state(stack_box) == "dirty"
    assert stack_box.config()["pool"]["tier"] == "nano"
    assert stack_box.api_state()["pool"]["tier"] == "nano"

    refused = run_gate(*local(stack_box), out=tmp_path / "refused")
    assert refused.code == 4, refused.output
    assert "--recover" in refused.output
    assert mutations(refused) == []

    recovered = run_gate(*local(stack_box), "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert_restore_proven(recovered)
    assert_restored(stack_box, before)
    assert stack_box.api_state()["pool"]["tier"] == "mini"


# --- validation before any side effect ----------------------------------------------------

PRELUDE = f"""
import importlib.util
from gate.matrix import Axis, Fact, Matrix, Scenario
_spec = importlib.util.spec_from_file_location("sample_matrix", {str(REPO / "matrix.py")!r})
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)
CONTRACT = _base.CONTRACT
BASE = _base.MATRIX
"""

# refused before the gate even connects: (flags, matrix.py body or None, message)
BEFORE_CONNECT: dict[str, tuple[list[str], str | None, str]] = {
    "unknown scenario": (
        ["--scenario", "local-defaults", "--scenario", "no-such-scenario"],
        None,
        "unknown scenario 'no-such-scenario'",
    ),
    "value outside an axis": (
        [],
        'MATRIX = Matrix(BASE.axes, BASE.scenarios + (Scenario("mega", {"pool.tier": "mega"}),))',
        "scenario mega: pool.tier='mega' is outside the axis",
    ),
    "1 is not true": (
        [],
        'MATRIX = Matrix(BASE.axes, (Scenario("one", {"dashboard.secure": 1}),))',
        "dashboard.secure=1 is outside the axis",
    ),
    "axis without values": (
        [],
        'MATRIX = Matrix(BASE.axes + (Axis("workers.count", ()),), BASE.scenarios)',
        "axis workers.count has no values",
    ),
    "duplicate scenario": (
        [],
        "MATRIX = Matrix(BASE.axes, BASE.scenarios + BASE.scenarios[:1])",
        "a scenario name is used twice",
    ),
    "not a matrix": ([], 'MATRIX = {"axes": []}', "MATRIX must be a gate.matrix.Matrix"),
    "broken python": ([], "MATRIX = Matrix(", "SyntaxError"),
}

# refused after reading the box's config, before the baseline: nothing mutated
AFTER_CONNECT: dict[str, tuple[list[str], str | None, str]] = {
    "override of a path the config lacks": (
        ["--scenario", "hue"],
        'MATRIX = Matrix(BASE.axes, BASE.scenarios + (Scenario("hue", {"pool.hue": "red"}),))',
        "scenario hue: the config has no path pool.hue",
    ),
    "axis the config lacks": (
        ["--scenario", "local-defaults"],
        'MATRIX = Matrix(BASE.axes + (Axis("pool.colour", ("red",)),), BASE.scenarios)',
        "axis pool.colour is not a path of the config",
    ),
}


def matrix_flags(tmp_path: Path, name: str, body: str | None) -> list[str]:
    if body is None:
        return []
    path = tmp_path / f"matrix-{name.replace(' ', '-')}.py"
    path.write_text(PRELUDE + body + "\n")
    return ["--matrix", str(path)]


@pytest.mark.slow
def test_bad_input_is_exit_2_with_one_clear_line_and_the_box_untouched(
    stack_box: Box, tmp_path: Path, subtests: pytest.Subtests
) -> None:
    before = config_and_secret_hashes(stack_box)
    pids = stack_box.pids()
    for name, (flags, body, message) in BEFORE_CONNECT.items():
        with subtests.test(name):
            out = tmp_path / f"out-{name.replace(' ', '-')}"
            run = run_gate(*local(stack_box), *matrix_flags(tmp_path, name, body), *flags, out=out)
            assert run.code == 2, run.output
            assert message in run.output
            assert "Traceback" not in run.output
            assert not [p for p in out.iterdir() if p.is_dir()], "a run started"
            assert not (stack_box.path / ".gate").exists(), "the gate touched the box"
    for name, (flags, body, message) in AFTER_CONNECT.items():
        with subtests.test(name):
            out = tmp_path / f"out-{name.replace(' ', '-')}"
            run = run_gate(*local(stack_box), *matrix_flags(tmp_path, name, body), *flags, out=out)
            assert run.code == 2, run.output
            assert message in run.output
            assert "Traceback" not in run.output
            commands = [e["command"] for e in run.events]
            assert any("boxtool.py config" in c for c in commands), "config never read"
            assert mutations(run) == []
            assert not (stack_box.path / ".gate" / "baseline").exists()
            assert not (stack_box.path / ".gate" / "state.json").exists()
    assert config_and_secret_hashes(stack_box) == before
    assert stack_box.pids() == pids


def test_list_prints_per_axis_coverage_and_the_pair_share(tmp_path: Path) -> None:
    matrix = validate_matrix(load_contract_file(REPO / "matrix.py").matrix)
    facts = {"remote_node_url": "http://127.0.0.1:1", "alt_data_dir": "/tmp/spare"}

    bare = run_gate("--list", out=tmp_path / "bare")
    full = run_gate(
        "--list", *[a for k, v in facts.items() for a in ("--fact", f"{k}={v}")], out=tmp_path / "f"
    )

    assert bare.code == 0, bare.output
    assert full.code == 0, full.output
    for run, given in ((bare, {}), (full, facts)):
        cover = coverage(matrix, [s for s in matrix.scenarios if unmet(s, given) is None])
        lines = run.output.splitlines()
        for axis in matrix.axes:
            row = next(line for line in lines if line.strip().startswith(axis.path + " "))
            for value, who in cover.per_axis[axis.path]:
                assert f"{value!r}: {len(who)}" in row, (axis.path, row)
        pairs = f"pairs covered: {cover.pairs_covered}/{cover.pairs_total}"
        assert f"{pairs} ({cover.pair_share:.0%})" in run.output
    assert "NOT COVERED: node.mode='remote', node.compact=True" in bare.output
    assert "SKIP (missing" in bare.output
    assert "NOT COVERED" not in full.output
    assert "SKIP" not in full.output
    assert not [p for p in (tmp_path / "bare").iterdir()], "--list started a run"
