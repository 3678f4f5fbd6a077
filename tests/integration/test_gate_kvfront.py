"""`invoke gate` against real kvfront boxes (nginx, webdis, redis: docs/daemons-stack.md)
with the repo's kvfront contract (examples/kvfront/matrix.py), over a real loopback sshd.

Green: `--check` on a healthy box, and the whole matrix, after which the box is put back
byte for byte (config, .env, the TLS pair and every rendered file, compared here as well as
by gate's own proof). Red: a stopped daemon, and a redis setting changed at runtime that only
the redis-cli probe can see. No run may print or write a secret the box's .env holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ssh_args
from harness import MUTATING_VERBS, GateRun, run_gate
from kvfront_box import CONTRACT, Box, KvBoxes, kv_hashes, leaked

from gate.matrix import coverage, validate_matrix
from gate.observed import observers
from gate.options import load_contract_file
from gate.testing.sshd import Sshd

SCENARIOS = ["tls-combined-lru", "aof-replica", "tls-replica"]
AXES = [
    "front.tls",
    "front.log_format",
    "redis.maxmemory_policy",
    "redis.maxmemory_mb",
    "redis.appendonly",
    "replica.enabled",
]
POLICY_RAW = "redis-config: maxmemory-policy matches redis.maxmemory_policy"
POLICY_RENDERED = "redis-conf: maxmemory-policy rendered"
SERVICES_RUNNING = "services: every expected service running"
STATUS_EXIT = "status: exit code 0"


@pytest.fixture
def make_kv_box(tmp_path: Path) -> Iterator[Callable[..., Box]]:
    boxes = KvBoxes(tmp_path)
    yield boxes.make
    boxes.close()


@pytest.fixture
def kv_box(make_kv_box: Callable[..., Box]) -> Box:
    """A freshly installed, applied and healthy kvfront box."""
    return make_kv_box()


def over_ssh(server: Sshd, box: Box, tmp_path: Path) -> list[str]:
    """The flags that gate `box` through `server` with the kvfront contract."""
    return [*ssh_args(server, box, tmp_path / "inventory"), "--matrix", str(CONTRACT)]


def record(run: GateRun, name: str, scenario: str | None = None) -> dict[str, Any]:
    """The one summary record of check `name` (in `scenario`, or outside any)."""
    found = [
        c
        for c in run.summary["checks"]
        if c["name"] == name and (c["scenario"] or None) == scenario
    ]
    assert len(found) == 1, (
        f"{name!r} in {scenario}: {len(found)} records; {sorted(run.verdicts())}"
    )
    return dict(found[0])


def assert_no_secret(box: Box, run: GateRun) -> None:
    """Neither the console nor any file of the run holds a secret of the box's .env."""
    # the canary search itself works: the box's rendered files do hold both secrets
    rendered = "".join(
        (box.path / "conf" / f).read_text() for f in ("redis.conf", "admin_token.map")
    )
    assert sorted(leaked(box, rendered)) == ["ADMIN_TOKEN", "REDIS_PASSWORD"]
    written = run.everything_written()
    assert len(written) > 1000, "the run wrote (almost) nothing to search"
    assert not leaked(box, written), "a secret reached gate's output"


# --- the contract file itself ---------------------------------------------------------------


def test_every_axis_is_observed_covered_and_declares_what_it_touches() -> None:
    """Offline: the contract loads, the matrix is valid, every value of every axis is run by
    some scenario, and each axis has an observer."""
    loaded = load_contract_file(CONTRACT)
    matrix = validate_matrix(loaded.matrix)
    assert [a.path for a in matrix.axes] == AXES
    assert [s.name for s in matrix.scenarios] == SCENARIOS
    assert coverage(matrix, list(matrix.scenarios)).uncovered == []
    assert all(a.touches for a in matrix.axes), "every axis declares its scope"
    found = observers(matrix, loaded.contract, None, dict(loaded.contract.facts))
    assert {path for path, names in found.items() if not names} == set(), found
    # each memory axis has a raw observer (redis-cli), not only the rendered file
    for path in ("redis.maxmemory_policy", "redis.maxmemory_mb", "redis.appendonly"):
        assert any(n.startswith("redis-config: ") for n in found[path]), (path, found[path])


# --- green ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_check_passes_on_a_healthy_box_and_changes_nothing(
    kv_box: Box, sshd: Sshd, tmp_path: Path
) -> None:
    before, pids = kv_hashes(kv_box), kv_box.pids()

    run = run_gate(*over_ssh(sshd, kv_box, tmp_path), "--check", out=tmp_path / "results")

    assert run.code == 0, run.output
    assert run.summary["counts"]["fail"] == 0
    assert run.summary["counts"]["inconclusive"] == 0
    for name in (
        STATUS_EXIT,
        SERVICES_RUNNING,
        POLICY_RAW,
        POLICY_RENDERED,
        "redis-config: maxmemory matches redis.maxmemory_mb",
        "redis-config: appendonly matches redis.appendonly",
        "redis-replication: connected replicas as replica.enabled says",
        "healthz: scheme follows front.tls",
        "admin: served by nginx",
        "front-port: speaks TLS as front.tls says",
        "access-log: last line in front.log_format",
        "nginx-conf: access_log format rendered",
        "secrets: REDIS_PASSWORD in use in conf/redis.conf",
        "secrets: REDIS_PASSWORD in use in conf/webdis.json",
        "secrets: ADMIN_TOKEN in use in conf/admin_token.map",
        "auth: admin refuses a request without credentials",
        "auth: admin refuses a request with a wrong credential",
    ):
        assert record(run, name)["verdict"] == "pass", record(run, name)
    kv_commands = [e["command"] for e in run.events if "kvctl" in e["command"]]
    assert kv_commands, "the check never asked the stack anything"
    for command in kv_commands:
        assert not any(verb in f" {command} " for verb in MUTATING_VERBS), command
    assert kv_hashes(kv_box) == before
    assert kv_box.pids() == pids
    assert_no_secret(kv_box, run)


@pytest.mark.slow
def test_full_matrix_over_ssh_is_green_and_the_box_is_put_back_byte_for_byte(
    kv_box: Box, sshd: Sshd, tmp_path: Path
) -> None:
    before = kv_hashes(kv_box)
    assert {"config.json", ".env", "conf/redis.conf", "conf/webdis.json"} <= set(before)
    assert not any(p.startswith("secrets/") for p in before), "precondition: TLS never on yet"
    raw_before = {k: kv_box.config_get(k) for k in ("maxmemory-policy", "maxmemory", "appendonly")}

    run = run_gate(
        *over_ssh(sshd, kv_box, tmp_path), "--strict", out=tmp_path / "results", timeout=600
    )

    assert run.code == 0, run.output
    counts = run.summary["counts"]
    assert (counts["fail"], counts["inconclusive"], counts["skip"]) == (0, 0, 0), counts
    assert [s["scenario"] for s in run.summary["scenarios"]] == SCENARIOS
    for scenario in SCENARIOS:
        for name in (
            "apply succeeded",
            "ready",
            "scope: services outside the change kept their pids",
            "idempotent: second apply reports no change",
            "idempotent: no service restarted",
            "secrets: kept (fingerprints equal the baseline)",
            POLICY_RAW,
            "redis-config: maxmemory matches redis.maxmemory_mb",
            "redis-config: appendonly matches redis.appendonly",
            "redis-replication: connected replicas as replica.enabled says",
            "status: replica listed as replica.enabled says",
            "front-port: speaks TLS as front.tls says",
            "access-log: last line in front.log_format",
        ):
            assert record(run, name, scenario)["verdict"] == "pass", record(run, name, scenario)
    # the raw observers really saw the scenarios' values, not the baseline's
    assert json.loads(record(run, POLICY_RAW, "tls-combined-lru")["observed"]) == "allkeys-lru"
    assert json.loads(record(run, POLICY_RAW, "aof-replica")["observed"]) == "volatile-ttl"
    tls = record(run, "front-port: speaks TLS as front.tls says", "tls-replica")
    assert json.loads(tls["observed"]) is True, tls
    # gate's own proof of the restore
    proof = {c["name"]: c["verdict"] for c in run.summary["checks"] if c["phase"] == "restore"}
    assert set(proof.values()) == {"pass"}, proof
    config_bytes = record(run, "restore: config bytes identical")
    assert config_bytes["expected"] == config_bytes["observed"], config_bytes
    fingerprints = record(run, "restore: secrets: kept (fingerprints equal the baseline)")
    assert fingerprints["verdict"] == "pass", fingerprints
    assert run.summary["unobserved_axes"] == [], run.summary["unobserved_axes"]
    assert sorted(run.summary["axes_observed_by"]) == sorted(AXES)
    assert "restore proven" in run.output
    # and the bytes themselves: config, .env, rendered files equal; only the TLS pair a
    # scenario minted (apply keeps it while tls is off) may have appeared
    after = kv_hashes(kv_box)
    assert {p for p in before if after.get(p) != before[p]} == set()
    assert set(after) - set(before) == {"secrets/front.crt", "secrets/front.key"}
    assert json.loads((kv_box.path / ".gate" / "state.json").read_text())["state"] == "clean"
    # the running box is the box's own config again
    assert kv_box.status()[0] == 0
    assert set(kv_box.pids()) == {"redis", "api", "front"}
    assert {k: kv_box.config_get(k) for k in raw_before} == raw_before
    assert_no_secret(kv_box, run)


# --- red ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stopped_daemon_fails_the_check(kv_box: Box, sshd: Sshd, tmp_path: Path) -> None:
    assert kv_box.ctl("stop", "api").returncode == 0
    kv_box.wait_state("api", "exited", code=1)

    run = run_gate(*over_ssh(sshd, kv_box, tmp_path), "--check", out=tmp_path / "results")

    assert run.code == 1, run.output
    assert "Traceback" not in run.output
    status = record(run, STATUS_EXIT)
    assert (status["verdict"], status["observed"]) == ("fail", "1"), status
    running = record(run, SERVICES_RUNNING)
    assert running["verdict"] == "fail", running
    assert "api" in running["evidence"], running
    # specific, not a blanket red: redis itself is fine
    assert record(run, POLICY_RAW)["verdict"] == "pass"
    assert record(run, "redis-conf: appendonly rendered")["verdict"] == "pass"
    assert_no_secret(kv_box, run)


@pytest.mark.slow
def test_a_runtime_setting_the_config_does_not_say_fails_only_the_cli_probe(
    kv_box: Box, sshd: Sshd, tmp_path: Path
) -> None:
    """CONFIG SET at runtime: redis.conf and status still look right; redis-cli does not."""
    assert kv_box.redis_cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == "OK"
    assert kv_box.config_get("maxmemory-policy") == "allkeys-lru"
    assert kv_box.status()[0] == 0, "precondition: the stack calls itself healthy"

    run = run_gate(*over_ssh(sshd, kv_box, tmp_path), "--check", out=tmp_path / "results")

    assert run.code == 1, run.output
    drift = record(run, POLICY_RAW)
    assert drift["verdict"] == "fail", drift
    assert json.loads(drift["observed"]) == "allkeys-lru", drift
    assert "noeviction" in drift["expected"], drift
    assert record(run, POLICY_RENDERED)["verdict"] == "pass"
    assert record(run, STATUS_EXIT)["verdict"] == "pass"
    failed = sorted(c["name"] for c in run.summary["checks"] if c["verdict"] == "fail")
    assert failed == [POLICY_RAW], failed
    assert_no_secret(kv_box, run)


@pytest.mark.slow
def test_readiness_is_fit_until_the_env_file_is_readable_by_others(
    kv_box: Box, sshd: Sshd, tmp_path: Path
) -> None:
    """--readiness judges every item the kvfront contract declares (no skip under
    --strict); an .env opened to the world turns exactly that item red."""
    flags = [*over_ssh(sshd, kv_box, tmp_path), "--readiness", "--strict"]
    fit = run_gate(*flags, out=tmp_path / "fit")
    assert fit.code == 0, fit.output
    assert fit.summary["counts"]["skip"] == 1, fit.output  # the replica's port: not enabled
    for name in ("front-port", "api-port", "redis-port"):
        assert record(fit, f"readiness: {name} bound to loopback only")["verdict"] == "pass"

    (kv_box.path / ".env").chmod(0o644)
    unfit = run_gate(*flags, out=tmp_path / "unfit")

    assert unfit.code == 1, unfit.output
    failed = sorted(c["name"] for c in unfit.summary["checks"] if c["verdict"] == "fail")
    assert failed == ["readiness: .env mode 0600 or stricter"], failed
    assert_no_secret(kv_box, unfit)


@pytest.mark.slow
def test_safety_backup_verifies_kvctls_archive_and_removes_it(
    kv_box: Box, sshd: Sshd, tmp_path: Path
) -> None:
    """`kvctl backup` prints the archive's path alone on its last line: read, verified on
    the box (config.json and .env inside), and taken off the box when the run passes."""
    backups = kv_box.path / "backups"
    before = sorted(backups.iterdir()) if backups.exists() else []
    flags = [*over_ssh(sshd, kv_box, tmp_path), "--safety-backup", "--scenario", "aof-replica"]
    run = run_gate(*flags, out=tmp_path / "results")
    assert run.code == 0, run.output
    assert record(run, "safety-backup: archive verified")["verdict"] == "pass"
    assert "safety backup removed: " in run.output
    assert (sorted(backups.iterdir()) if backups.exists() else []) == before
    assert_no_secret(kv_box, run)
