"""`invoke gate --fault-injection` against real boxes: the sample stack locally (its three
faults) and over sshd (the SIGSTOP/SIGCONT one), and kvfront (nginx, webdis, redis) over
sshd (both of its faults).

Green: every fault is armed, injected, detected, held, healed and recovered, with the three
timings in summary.json, and the box is put back (config, env and secrets by hash, every
service running, status healthy). Red, through the sample's own defect switches
(examples/stack/stacklib/defects.py): a proxy that keeps admitting with the node down (not
degraded: exit 1, the node started again, the box restored), and a node that wedges after
a freeze (never recovers after SIGCONT: exit 1, the run stops, the safety backup's rollback
brings fresh processes). A SIGINT in the middle of a fault heals it, restores and proves
the box, exits 130; a runner SIGKILLed there leaves the fault open in the on-box journal,
and `--recover` heals it.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import (
    REPO,
    Box,
    GateRun,
    config_and_secret_hashes,
    killed_after,
    run_gate,
    start_gate,
    wait_for,
    wait_for_event,
)
from kvfront_box import CONTRACT as KV_CONTRACT
from kvfront_box import Box as KvBox
from kvfront_box import KvBoxes, kv_hashes, leaked

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

SAMPLE = ("--scenario", "local-defaults")
KV = ("--scenario", "tls-combined-lru")


def steps(run: GateRun, fault: str) -> dict[str, str]:
    """Step name -> verdict for one fault's records."""
    prefix = f"{fault}: "
    return {
        c["name"].removeprefix(prefix): c["verdict"]
        for c in run.summary["checks"]
        if c["name"].startswith(prefix)
    }


def evidence(run: GateRun, fault: str, step: str, key: str = "evidence") -> str:
    """One step's evidence (or its `observed`: the last sample read, whole)."""
    name = f"{fault}: {step}"
    return next(str(c[key]) for c in run.summary["checks"] if c["name"] == name)


def assert_green(run: GateRun, faults: list[str]) -> None:
    assert run.code == 0, run.output
    timings = {f["fault"]: f for f in run.summary["faults"]}
    assert sorted(timings) == sorted(faults)
    for fault in faults:
        verdicts = steps(run, fault)
        assert len(verdicts) == 4 and set(verdicts.values()) == {"pass"}, verdicts
        timing = timings[fault]
        assert timing["detect_s"] is not None and timing["recover_s"] is not None, timing
        assert timing["hold_samples"] >= 3, timing
    assert "restore proven" in run.output


def assert_back(box: Box, hashes: dict[str, str]) -> None:
    assert config_and_secret_hashes(box) == hashes
    code, status = box.status()
    assert code == 0, status
    assert all(s["state"] == "running" for s in status["services"].values()), status


def one_fault(
    tmp_path: Path, fault: str, source: Path = REPO / "matrix.py", **windows: float
) -> Path:
    """A repo contract (the sample's by default) with only `fault`, its windows replaced
    (a red run need not wait out matrix.py's 30 s detection or 60 s recovery)."""
    path = tmp_path / "one_fault.py"
    path.write_text(
        "import dataclasses, importlib.util\n"
        f"path = {str(source)!r}\n"
        "spec = importlib.util.spec_from_file_location('repo_matrix', path)\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"F = next(f for f in module.CONTRACT.faults if f.name == {fault!r})\n"
        f"F = dataclasses.replace(F, **{windows!r})\n"
        "CONTRACT = dataclasses.replace(module.CONTRACT, faults=(F,))\n"
        "MATRIX = module.MATRIX\n"
    )
    return path


def with_defect(box: Box, switch: str, service: str) -> None:
    """Turn a defect switch on and restart the one service that reads it at start."""
    (box.path / "defects.json").write_text(json.dumps({switch: True}))
    for verb in ("stop", "start"):
        done = box.ctl(verb, service)
        assert done.returncode == 0, done.stdout + done.stderr
    box.wait_healthy(timeout=60)


# --- the sample stack -----------------------------------------------------------------------


def test_every_sample_fault_passes_locally_and_the_box_is_put_back(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    hashes = config_and_secret_hashes(box)
    local = ["--local", "--dir", str(box.path)]
    run = run_gate(*local, "--fault-injection", "--no-backup", *SAMPLE, out=tmp_path / "out")
    assert_green(run, ["node stopped", "node paused", "worker-2 removed"])
    held = evidence(run, "node stopped", "held 3s")
    assert "proxy.admitting = false" in held and "workers.online = 0" in held, held
    injected = [e for e in run.events if e["command"].endswith(("stop node", "STOP node"))]
    assert len(injected) == 2 and all(e["kind"] == "mutate" for e in injected), injected
    assert_back(box, hashes)


def test_a_sample_fault_over_ssh_pauses_and_thaws_the_node_and_the_box_is_put_back(
    make_stack_box: Callable[..., Box], sshd: Sshd, tmp_path: Path
) -> None:
    """Over sshd, the fault whose inject and heal are both `kill -s SIG node` (the other
    two ride the same Actions path; the local test runs all three)."""
    box = make_stack_box()
    hashes = config_and_secret_hashes(box)
    flags = [*ssh_args(sshd, box, tmp_path / "inventory"), "--matrix"]
    flags.append(str(one_fault(tmp_path, "node paused")))
    run = run_gate(*flags, "--fault-injection", "--no-backup", *SAMPLE, out=tmp_path / "out")
    assert_green(run, ["node paused"])
    held = evidence(run, "node paused", "held 3s")
    assert 'services.node.state = "unhealthy"' in held and "status exit 1" in held, held
    signals = [e["command"].split()[-2] for e in run.events if e["command"].endswith(" node")]
    assert signals == ["STOP", "CONT"], signals
    assert_back(box, hashes)


def test_a_proxy_that_keeps_admitting_with_the_node_down_fails_and_the_box_is_restored(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    with_defect(box, "proxy_ignores_node", "proxy")
    hashes = config_and_secret_hashes(box)
    contract = one_fault(tmp_path, "node stopped", detect_s=5.0)
    flags = ["--local", "--dir", str(box.path), "--matrix", str(contract)]
    run = run_gate(*flags, "--fault-injection", "--no-backup", *SAMPLE, out=tmp_path / "out")
    assert run.code == 1, run.output
    verdicts = steps(run, "node stopped")
    assert verdicts["armed"] == "pass" and verdicts["degraded within 5s"] == "fail", verdicts
    said = evidence(run, "node stopped", "degraded within 5s")
    assert "proxy.admitting = true (expected proxy.admitting == False)" in said, said
    assert "status exit 1" in evidence(run, "node stopped", "degraded within 5s", "observed")
    assert verdicts["recovered within 60s"] == "pass", verdicts  # healed: the node started
    assert "restore proven" in run.output
    assert_back(box, hashes)


def test_a_stack_that_never_recovers_after_sigcont_fails_and_is_rolled_back(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    with_defect(box, "node_wedges_after_freeze", "node")
    hashes = config_and_secret_hashes(box)
    contract = one_fault(tmp_path, "node paused", hold_s=1.0, recover_s=8.0)
    flags = ["--local", "--dir", str(box.path), "--matrix", str(contract)]
    run = run_gate(*flags, "--fault-injection", "--safety-backup", *SAMPLE, out=tmp_path / "out")
    assert run.code == 1, run.output
    verdicts = steps(run, "node paused")
    assert verdicts["held 1s"] == "pass" and verdicts["recovered within 8s"] == "fail", verdicts
    assert "not ready 8s after the heal" in evidence(run, "node paused", "recovered within 8s")
    assert "no later phase runs on it" in run.output
    assert not any(c["scenario"] for c in run.summary["checks"]), "the matrix ran on it"
    commands = [e["command"] for e in run.events]
    cont = next(i for i, c in enumerate(commands) if c.endswith("kill -s CONT node"))
    assert any(c.endswith("stackctl down") for c in commands[cont:]), "no rollback"
    assert "restore proven" in run.output
    assert_back(box, hashes)


def test_a_sigint_in_the_middle_of_a_fault_heals_it_and_restores_the_box(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    box = make_stack_box()
    hashes = config_and_secret_hashes(box)
    out = tmp_path / "out"
    local = ["--local", "--dir", str(box.path)]
    proc = start_gate(*local, "--fault-injection", "--no-backup", *SAMPLE, out=out)
    try:
        wait_for_event(out, "stackctl stop node")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = GateRun(code, (tmp_path / "out-console.txt").read_text(), out)
    assert run.code == 130, run.output
    assert run.verdict("repair: node stopped: heal node") == "pass"
    commands = [e["command"] for e in run.events]
    stop = next(i for i, c in enumerate(commands) if c.endswith("stop node"))
    assert any(c.endswith("start node") for c in commands[stop:]), "the fault was not healed"
    assert not any(c.endswith("STOP node") for c in commands), "a later fault ran"
    assert "restore proven" in run.output
    assert_back(box, hashes)
    assert json.loads((box.path / ".gate" / "state.json").read_text())["state"] == "clean"


def journal(box: Box) -> list[dict[str, Any]]:
    path = box.path / ".gate" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def lapsed(events: list[dict[str, Any]]) -> bool:
    return any(e["event"] == "lock-lapsed" for e in events)


def test_a_runner_killed_in_the_middle_of_a_fault_leaves_it_for_recover_to_heal(
    make_stack_box: Callable[..., Box],
    tmp_path: Path,
    short_lock_grace: None,  # the dead run's lock lapses 1 s after its end
) -> None:
    """SIGKILL (what a lost link looks like from the box): the node stays stopped, the
    on-box journal holds the open repair, and `--recover` heals it, then restores."""
    box = make_stack_box()
    hashes = config_and_secret_hashes(box)
    local = ["--local", "--dir", str(box.path)]
    flags = [*local, "--fault-injection", "--no-backup", *SAMPLE]
    killed = killed_after(flags, "stackctl stop node", tmp_path / "killed")
    opened = [e for e in journal(box) if e["event"] == "repair-open"]
    assert [(e["run_id"], e["what"]) for e in opened] == [(killed, "node stopped: heal node")]
    wait_for("the killed run's lock lapsed", lambda: journal(box), lapsed, timeout=60)
    assert box.status()[1]["services"]["node"]["state"] == "exited"

    recovered = run_gate(*local, "--recover", out=tmp_path / "recovered")
    assert recovered.code == 0, recovered.output
    assert "recover: node stopped: heal node: mended" in recovered.output
    assert "restore proven" in recovered.output
    assert_back(box, hashes)


# --- kvfront --------------------------------------------------------------------------------


@pytest.fixture
def kv_box(tmp_path: Path) -> Iterator[KvBox]:
    boxes = KvBoxes(tmp_path)
    yield boxes.make()
    boxes.close()


def test_every_kvfront_fault_passes_over_ssh_and_no_secret_leaks(
    kv_box: KvBox, sshd: Sshd, tmp_path: Path
) -> None:
    hashes = kv_hashes(kv_box)
    flags: list[Any] = [*ssh_args(sshd, kv_box, tmp_path / "inventory"), "--matrix", KV_CONTRACT]
    run = run_gate(*map(str, flags), "--fault-injection", "--no-backup", *KV, out=tmp_path / "o")
    assert_green(run, ["redis stopped", "redis paused"])
    said = evidence(run, "redis stopped", "held 3s")
    assert "front-api: code = 503" in said and 'healthz: status = "ok"' in said, said
    after = kv_hashes(kv_box)  # the TLS scenario minted secrets/front.*: kept, as ever
    assert {path: after.get(path) for path in hashes} == hashes
    assert set(after) - set(hashes) <= {"secrets/front.crt", "secrets/front.key"}
    code, status = kv_box.status()
    assert code == 0, status
    assert leaked(kv_box, run.everything_written()) == []
