"""What keeps `--check` safe to point at a real box: host keys, the box lock, secrets that
never leave it, and private, complete artifacts.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from harness import REPO, Box, install, kill_leftovers, run_gate, wait_for, write_inventory

import gate
from gate.lock import HOLDER_FILE, LOCK_FILE
from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

RECORD_FIELDS = {"name", "verdict", "expected", "observed", "evidence", "duration"}


# --- host keys ----------------------------------------------------------------------------


def inventory_for(server: Sshd, box: Box, inventory: Path, known_hosts: Path) -> list[str]:
    """inventory/box.toml reaching `box` through `server`, trusting only `known_hosts`."""
    write_inventory(
        inventory,
        "box",
        host=server.host,
        port=server.port,
        user=server.user,
        identity=str(server.identity),
        dir=str(box.path),
        known_hosts=str(known_hosts),
    )
    return ["--host", "box", "--inventory", str(inventory)]


def test_host_keys_unknown_refused_accepted_on_request_changed_refused(
    stack_box: Box, sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    server = sshd_factory()
    known_hosts = tmp_path / "project" / "known_hosts"
    known_hosts.parent.mkdir()
    known_hosts.write_text("")
    flags = inventory_for(server, stack_box, tmp_path / "inventory", known_hosts)

    unknown = run_gate(*flags, "--check", out=tmp_path / "unknown")
    assert unknown.code == 2, unknown.output
    assert f"unknown host key for 127.0.0.1:{server.port}: {server.fingerprint}" in unknown.output
    assert "--accept-new-host-key" in unknown.output
    assert "Traceback" not in unknown.output
    assert known_hosts.read_text() == "", "an unknown key was recorded without consent"
    assert not (stack_box.path / ".gate").exists(), "the box was touched behind an unknown key"
    assert unknown.summary["checks"] == []

    accepted = run_gate(*flags, "--check", "--accept-new-host-key", out=tmp_path / "accepted")
    assert accepted.code == 0, accepted.output
    recorded = known_hosts.read_text()
    assert recorded == server.known_hosts_line

    old = server.restart_with_new_host_key()
    assert old != server.fingerprint
    changed = run_gate(*flags, "--check", out=tmp_path / "changed")
    assert changed.code == 2, changed.output
    assert f"host key for 127.0.0.1:{server.port} CHANGED" in changed.output
    assert f"expected {old}, offered {server.fingerprint}" in changed.output
    assert "Traceback" not in changed.output
    assert changed.summary["checks"] == []

    # opting in to *new* keys never overrides a *changed* one
    still = run_gate(*flags, "--check", "--accept-new-host-key", out=tmp_path / "still")
    assert still.code == 2, still.output
    assert server.fingerprint in still.output
    assert known_hosts.read_text() == recorded, "a changed key was recorded"


# --- the box lock -------------------------------------------------------------------------


class LockHolder:
    """`flock MODE .gate/lock cat` from the test: held until its stdin closes."""

    def __init__(self, box: Box, mode: str) -> None:
        self.lock = box.path / LOCK_FILE
        self.lock.parent.mkdir(mode=0o700, exist_ok=True)
        self.proc = subprocess.Popen(
            ["flock", mode, str(self.lock), "cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        blocked = "-s" if mode == "-x" else "-x"  # a mode this holder must block
        wait_for(f"lock {mode} held", self.probe(blocked), lambda code: code == 1, timeout=15)

    def probe(self, mode: str) -> Callable[[], int]:
        """Return code of a non-blocking `flock MODE` try: 0 free, 1 held against it."""
        argv = ["flock", "-n", mode, str(self.lock), "true"]
        return lambda: subprocess.run(argv, check=False).returncode

    def still_held(self) -> bool:
        return self.proc.poll() is None and self.probe("-x")() == 1

    def release(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def hold_lock(stack_box: Box) -> Iterator[Callable[[str], LockHolder]]:
    holders: list[LockHolder] = []

    def hold(mode: str) -> LockHolder:
        holders.append(LockHolder(stack_box, mode))
        return holders[-1]

    yield hold
    for holder in holders:
        holder.release()


def test_locked_box_exits_75_naming_the_holder(
    stack_box: Box,
    hold_lock: Callable[[str], LockHolder],
    via: Callable[[Box], list[str]],
    tmp_path: Path,
) -> None:
    holder = hold_lock("-x")  # what a matrix run holds, with the record it writes beside it
    info = {
        "run_id": "20260101-000000-c0ffee",
        "user": "alice",
        "runner": "ci-runner-7",
        "pid": holder.proc.pid,
        "started": "2026-01-01T00:00:00Z",
    }
    (stack_box.path / HOLDER_FILE).write_text(json.dumps(info))
    (stack_box.path / HOLDER_FILE).chmod(0o600)

    locked = run_gate(*via(stack_box), "--check", out=tmp_path / "locked")

    assert locked.code == 75, locked.output
    assert (
        f"locked by run 20260101-000000-c0ffee (alice@ci-runner-7 pid {holder.proc.pid}, "
        "since 2026-01-01T00:00:00Z)"
    ) in locked.output
    assert "Traceback" not in locked.output
    assert locked.summary["verdict"] == "box locked"
    assert locked.summary["checks"] == []
    assert not (stack_box.path / ".gate" / "journal.jsonl").exists(), "ran without the lock"
    assert not any("stackctl status" in e["command"] for e in locked.events)
    assert holder.still_held(), "the gate broke another run's lock"


def test_a_check_holding_the_lock_shared_does_not_block_another_check(
    stack_box: Box, hold_lock: Callable[[str], LockHolder], tmp_path: Path
) -> None:
    other = hold_lock("-s")  # what a concurrent --check holds
    run = run_gate("--local", "--dir", str(stack_box.path), "--check", out=tmp_path / "results")
    assert run.code == 0, run.output
    assert run.summary["counts"]["pass"] >= 15
    assert other.still_held(), "the other check lost its lock"


# --- canary secrets -----------------------------------------------------------------------


def canary(kind: str) -> str:
    return f"canary{kind}{secrets.token_hex(8)}"


@pytest.fixture
def canary_box(tmp_path: Path) -> Iterator[tuple[Box, dict[str, str]]]:
    """A box holding known secret values in every place a secret lives, with a failing check.

    PROXY_AUTH_TOKEN is planted in .env before the first apply (apply keeps existing
    secrets), node.remote_token and userinfo in node.remote_url in config.json, and the
    minted DASHBOARD_TOKEN in a service log; worker-2 is stopped so captures are written.
    """
    box = Box(tmp_path / "canary-box")
    proc = install(box.path, "--python", sys.executable)
    assert proc.returncode == 0, proc.stderr
    planted = {
        "proxy": canary("proxy"),
        "remote_token": canary("remotetoken"),
        "url_password": canary("urlpassword"),
    }
    env = box.path / ".env"
    env.write_text(f"PROXY_AUTH_TOKEN={planted['proxy']}\n")
    env.chmod(0o600)
    box.edit(
        node={
            "remote_token": planted["remote_token"],
            "remote_url": f"http://u:{planted['url_password']}@127.0.0.1:1",
        }
    )
    try:
        applied = box.ctl("apply", "-y")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        box.wait_healthy(timeout=60)
        assert box.env()["PROXY_AUTH_TOKEN"] == planted["proxy"], "apply replaced the canary"
        minted = box.env()
        planted["dashboard"] = minted["DASHBOARD_TOKEN"]
        planted["rpc_password"] = minted["NODE_RPC_PASSWORD"]
        planted["node_key"] = (box.path / "secrets" / "node.key").read_text().strip()
        with (box.path / "logs" / "dashboard.log").open("a") as log:
            log.write(f"debug: request carried dashboard token {planted['dashboard']}\n")
        assert box.ctl("stop", "worker-2").returncode == 0
        box.wait_exit(1)
        yield box, planted
    finally:
        box.ctl("down")
        kill_leftovers(box.path)


def test_canary_secrets_never_leave_the_box(
    canary_box: tuple[Box, dict[str, str]], via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    box, planted = canary_box
    run = run_gate(*via(box), "--check", out=tmp_path / "results")
    assert run.code == 1, run.output
    assert run.verdict("services: every expected service running") == "fail"

    captures = run.run_dir / "captures" / "check"
    log = (captures / "logs" / "dashboard.log").read_text()
    assert "debug: request carried dashboard token ***" in log, "the planted line was not read"
    config = json.loads((captures / "config.json").read_text())
    assert config["node"]["remote_token"] == "***"
    assert config["node"]["remote_url"] == "http://u:***@127.0.0.1:1"
    env = json.loads((captures / "probes" / "env.json").read_text())
    for key in ("PROXY_AUTH_TOKEN", "DASHBOARD_TOKEN", "NODE_RPC_PASSWORD"):
        assert env[key] == "***", (key, env[key])
    assert env["POOL_TIER"] == "mini", "settings (not secrets) must read back in clear"

    report = (run.run_dir / "report.html").read_text()
    assert "services: every expected service running" in report, "report.html drew no check"
    assert "captures/check/logs/dashboard.log" in report, "report.html links no capture"
    everything = run.everything_written()  # report.html and summary.md included
    assert len(everything) > 5000, "too little was written for the grep to mean anything"
    leaked = [name for name, value in planted.items() if value in everything]
    assert leaked == [], f"secret values left the box: {leaked}"
    # and no secret value shows up in part, e.g. cut by a line wrap
    for name, value in planted.items():
        assert value[:16] not in everything, f"a prefix of {name} left the box"


# --- artifacts ----------------------------------------------------------------------------


def test_artifacts_are_private_and_complete_and_json_prints_the_summary(
    stack_box: Box, tmp_path: Path
) -> None:
    assert stack_box.ctl("stop", "worker-2").returncode == 0
    stack_box.wait_exit(1)
    out = tmp_path / "results"
    run = run_gate("--local", "--dir", str(stack_box.path), "--check", "--json", out=out)
    assert run.code == 1, run.output

    run_dir = run.run_dir
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "manifest.json",
        "events.jsonl",
        "summary.json",
        "junit.xml",
        "status.txt",
    }
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (p for p in run_dir.rglob("*") if p.is_dir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["gate_version"] == gate.__version__
    revision = manifest["gate_git"]["revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{revision}^{{commit}}"])
    assert known.returncode == 0, f"{revision} is not a commit of this repo"
    assert isinstance(manifest["gate_git"]["dirty"], bool)
    assert manifest["target"] == "local"
    version = json.loads(stack_box.ctl("version", "--json").stdout)
    assert manifest["stack"] == version
    assert manifest["stack"]["stack"]

    summary = run.summary
    checks = summary["checks"]
    assert len(checks) >= 17
    for check in checks:
        assert set(check) >= RECORD_FIELDS, check
        assert check["verdict"] in {"pass", "fail", "inconclusive", "skip"}
        assert isinstance(check["duration"], float) and check["duration"] >= 0
        assert check["name"] and check["expected"], check
    counts = summary["counts"]
    assert counts["fail"] >= 2
    assert sum(counts.values()) == len(checks)

    suite = ElementTree.parse(run_dir / "junit.xml").getroot()
    assert suite.tag == "testsuites"
    cases = suite.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in checks]
    assert int(suite.get("tests", "-1")) == len(checks)
    assert int(suite.get("failures", "-1")) == counts["fail"]
    assert int(suite.get("errors", "-1")) == counts["inconclusive"]
    assert int(suite.get("skipped", "-1")) == counts["skip"]
    assert sum(c.find("failure") is not None for c in cases) == counts["fail"]
    red = next(c for c in cases if c.get("name") == "services: every expected service running")
    failure = red.find("failure")
    assert failure is not None and "worker-2 is exited" in failure.get("message", "")

    printed, _end = json.JSONDecoder().raw_decode(run.output.lstrip())
    assert printed == summary, "--json did not print the summary written to summary.json"
