"""End-to-end: real supervisord and services in tmp boxes, driven only through stackctl."""

from __future__ import annotations

import json
import ssl
import stat
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from stackbox import (
    Box,
    file_hash,
    listen_addresses,
    services_running_in,
    tree_hashes,
    wait_for,
)

pytestmark = pytest.mark.slow
DEFAULT = ["node", "pool", "proxy", "dashboard", "worker-1", "worker-2"]


def secret_hashes(box: Box) -> dict[str, str]:
    env = box.env()
    out = {k: file_hash_text(env[k]) for k in ("PROXY_AUTH_TOKEN", "DASHBOARD_TOKEN",
                                               "NODE_RPC_PASSWORD")}  # fmt: skip
    for path in sorted((box.path / "secrets").iterdir()):
        out[path.name] = file_hash(path)
    return out


def file_hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_fresh_install_becomes_healthy(shared_box: Box) -> None:
    box = shared_box
    code, doc = box.status()
    assert code == 0 and doc["overall"] == "healthy" and doc["reasons"] == []
    assert doc["expected"] == DEFAULT
    assert all(doc["services"][n]["state"] == "running" for n in DEFAULT)
    assert all(isinstance(doc["services"][n]["pid"], int) for n in DEFAULT)
    assert doc["node"] == {"endpoint": f"http://127.0.0.1:{box.port('node', 'rpc_port')}",
                           "synchronized": True}  # fmt: skip
    info = box.get("node", "/info", "rpc_port")
    assert info["synchronized"] and info["height"] >= info["target_height"] > 0
    assert stat.S_IMODE((box.path / ".env").stat().st_mode) == 0o600
    first = wait_for("2 workers online", box.api_state, lambda s: s["workers"]["online"] == 2)
    wait_for("shares to accumulate", box.api_state,
             lambda s: s["shares"]["total"] > first["shares"]["total"])  # fmt: skip
    assert first["node"]["compact"] is False and first["pool"] == {"tier": "mini", "ready": True}


def test_cold_start_syncs_before_it_reports_synchronized(make_box: Callable[..., Box]) -> None:
    box = make_box(stack={"time_scale": 0.25})  # a 5 s cold sync, slow enough to watch
    seen = wait_for("a /info answer", lambda: box.get("node", "/info", "rpc_port"),
                    lambda v: isinstance(v, dict))  # fmt: skip
    assert seen["synchronized"] is False and seen["height"] < seen["target_height"]
    assert box.status()[0] == 1
    box.wait_healthy()


def test_second_apply_is_a_noop(shared_box: Box) -> None:
    box = shared_box
    before, files = box.pids(), tree_hashes(box.path)
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0
    assert proc.stdout.strip() == "No configuration changes detected"
    assert box.pids() == before
    assert tree_hashes(box.path) == files


def test_tier_change_recreates_only_the_pool(box: Box) -> None:
    before = box.pids()
    box.edit(pool={"tier": "nano"})
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0 and proc.stdout.strip() == "Recreated: pool", proc.stdout
    after = box.pids()
    assert after["pool"] != before["pool"]
    assert {n: p for n, p in after.items() if n != "pool"} == {
        n: p for n, p in before.items() if n != "pool"
    }
    wait_for("pool on tier nano", lambda: box.get("pool", "/status"),
             lambda s: isinstance(s, dict) and s["tier"] == "nano")  # fmt: skip
    assert box.env()["POOL_TIER"] == "nano"
    wait_for("dashboard to show nano", box.api_state, lambda s: s["pool"]["tier"] == "nano")


def test_secrets_survive_every_apply(box: Box) -> None:
    box.edit(dashboard={"secure": True})
    assert box.ctl("apply", "-y").returncode == 0
    before = secret_hashes(box)
    assert "dashboard.crt" in before
    for change in ({"pool": {"tier": "main"}}, {"workers": {"count": 3}},
                   {"dashboard": {"secure": False}}, {"dashboard": {"secure": True}}):  # fmt: skip
        box.edit(**change)
        proc = box.ctl("apply", "-y")
        assert proc.returncode == 0, proc.stderr
        assert secret_hashes(box) == before, change
    box.wait_healthy()


def test_secrets_are_never_printed(shared_box: Box) -> None:
    box = shared_box
    env = box.env()
    commands = [("apply", "-y"), ("status", "--json"), ("doctor",), ("logs", "proxy"),
                ("logs", "dashboard"), ("backup",), ("version",)]  # fmt: skip
    outputs = [box.ctl(*a) for a in commands]
    text = "".join(p.stdout + p.stderr for p in outputs)
    for key in ("PROXY_AUTH_TOKEN", "DASHBOARD_TOKEN", "NODE_RPC_PASSWORD"):
        assert env[key] not in text, key
    assert outputs[2].returncode == 0 and "FAIL" not in outputs[2].stdout


def test_proxy_fails_closed_with_an_empty_token(box: Box) -> None:
    env_text = (box.path / ".env").read_text()
    token = box.env()["PROXY_AUTH_TOKEN"]
    (box.path / ".env").write_text(
        env_text.replace(f"PROXY_AUTH_TOKEN={token}", "PROXY_AUTH_TOKEN=")
    )
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0 and "proxy" in proc.stdout
    assert box.env()["PROXY_AUTH_TOKEN"] == ""  # an existing key is kept, even empty
    doc = box.wait_exit(1)
    wait_for("proxy exited", box.status,
             lambda s: s[1]["services"]["proxy"]["state"] == "exited", interval=0.5)  # fmt: skip
    log = box.ctl("logs", "proxy").stdout
    assert "refusing to start an unauthenticated proxy control API" in log
    assert "proxy: exited" in box.status()[1]["reasons"], doc
    assert box.status()[1]["services"]["proxy"]["exitstatus"] != 0
    assert "FAIL PROXY_AUTH_TOKEN is empty" in box.ctl("doctor").stdout


def test_node_outage_stops_admission_and_recovery_readmits(box: Box) -> None:
    assert box.get("proxy", "/stats")["admitting"] is True
    assert box.ctl("stop", "node").returncode == 0
    doc = box.wait_exit(1)
    assert doc["services"]["node"]["state"] == "exited"
    proc = box.ctl("doctor")
    assert proc.returncode == 1 and "FAIL node exited" in proc.stdout
    wait_for("proxy to stop admitting", lambda: box.get("proxy", "/stats"),
             lambda s: s["admitting"] is False)  # fmt: skip
    stalled = box.get("proxy", "/stats")["shares_total"]
    assert box.ctl("start", "node").returncode == 0
    wait_for("proxy to readmit", lambda: box.get("proxy", "/stats"),
             lambda s: s["admitting"] is True and s["shares_total"] > stalled)  # fmt: skip
    box.wait_healthy()


def test_debounce_rides_out_a_short_outage(make_box: Callable[..., Box]) -> None:
    """With a long debounce the proxy keeps admitting while the node is briefly down."""
    box = make_box(proxy={"debounce_s": 600})
    box.wait_healthy()
    box.ctl("stop", "node")
    wait_for("proxy to see the node gone", lambda: box.get("proxy", "/stats"),
             lambda s: s["node_reachable"] is False)  # fmt: skip
    assert box.status()[0] == 1
    assert [box.get("proxy", "/stats")["admitting"] for _ in range(5)] == [True] * 5


def test_sigstop_reads_unhealthy_and_sigcont_recovers(box: Box) -> None:
    assert box.ctl("kill", "-s", "SIGSTOP", "pool").returncode == 0
    assert box.ctl("kill", "-s", "SIGSTOP", "worker-1").returncode == 0
    doc = wait_for("pool and worker-1 unhealthy", box.status,
                   lambda s: s[1]["services"]["pool"]["state"] == "unhealthy"
                   and s[1]["services"]["worker-1"]["state"] == "unhealthy",
                   interval=0.5)[1]  # fmt: skip
    assert box.status()[0] == 1 and doc["services"]["node"]["state"] == "running"
    box.ctl("kill", "-s", "SIGCONT", "pool")
    box.ctl("kill", "-s", "SIGCONT", "worker-1")
    box.wait_healthy()
    assert box.ctl("kill", "-s", "KILL", "worker-2").returncode == 0
    assert box.wait_exit(1)["services"]["worker-2"]["state"] == "exited"


def test_rm_shows_missing_until_up(box: Box) -> None:
    assert box.ctl("rm", "worker-2").returncode == 0
    doc = box.wait_exit(1)
    assert doc["services"]["worker-2"] == {"state": "missing", "pid": None, "started": None}
    assert "worker-2" not in services_running_in(box.path)
    proc = box.ctl("up")
    assert proc.returncode == 0 and "worker-2" in proc.stdout
    box.wait_healthy()
    assert box.ctl("rm", "pool").returncode == 0
    assert box.status()[1]["services"]["pool"]["state"] == "missing"
    proc = box.ctl("apply", "-y")
    assert "No configuration changes detected" in proc.stdout and "Started: pool" in proc.stdout
    box.wait_healthy()


def test_restart_and_down_up(box: Box) -> None:
    before = box.pids()
    assert box.ctl("restart").returncode == 0
    after = box.pids()
    assert all(after[n][0] != before[n][0] for n in DEFAULT)
    box.wait_healthy()
    assert box.ctl("down").returncode == 0
    code, doc = box.status()
    assert code == 1 and doc["overall"] == "down"
    assert services_running_in(box.path) == set()
    assert box.ctl("up").returncode == 0
    box.wait_healthy()


def test_status_wait_answers_once_healthy_and_at_its_timeout_when_not(box: Box) -> None:
    """`status --wait` is status's blocking form (gate's Status.wait): after a restart it
    answers healthy, each service marked by the process now running it; with a service
    stopped it answers degraded at its timeout."""
    assert box.ctl("restart").returncode == 0
    waited = box.ctl("status", "--json", "--wait", "30")
    assert (waited.returncode, json.loads(waited.stdout)["overall"]) == (0, "healthy")
    marks = {n: int((box.path / "run" / f"{n}.ready").read_text()) for n in DEFAULT}
    assert marks == {n: pid for n, (pid, _) in box.pids().items()}
    (box.path / "run" / "worker-2.ready").unlink()  # a service that never marks again
    began = time.monotonic()
    waited = box.ctl("status", "--json", "--wait", "40")
    assert waited.returncode == 0 and time.monotonic() - began < 20  # answered, not timed out
    assert box.ctl("stop", "worker-1").returncode == 0
    waited = box.ctl("status", "--json", "--wait", "1")
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["services"]["worker-1"]["state"] == "exited"


def test_backup_restore_round_trip_after_divergence(box: Box) -> None:
    proc = box.ctl("backup", "-y")
    assert proc.returncode == 0 and proc.stdout.startswith("Backup written to: ")
    archive = Path(proc.stdout.split(": ", 1)[1].strip())
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    saved = {n: file_hash(box.path / n) for n in ("config.json", ".env", "secrets/node.key")}
    old_token = box.env()["DASHBOARD_TOKEN"]
    # Diverge for real: new tier, and a token lost from .env (apply mints a new one).
    box.edit(pool={"tier": "main"})
    env = (box.path / ".env").read_text().replace(f"DASHBOARD_TOKEN={old_token}\n", "")
    (box.path / ".env").write_text(env)
    assert box.ctl("apply", "-y").returncode == 0
    assert box.env()["DASHBOARD_TOKEN"] != old_token
    wait_for("pool on tier main", lambda: box.get("pool", "/status"),
             lambda s: isinstance(s, dict) and s["tier"] == "main")  # fmt: skip
    proc = box.ctl("restore", str(archive))
    assert proc.returncode == 0, proc.stderr
    assert {n: file_hash(box.path / n) for n in saved} == saved
    assert stat.S_IMODE((box.path / ".env").stat().st_mode) == 0o600
    proc = box.ctl("apply", "-y")
    assert "pool" in proc.stdout and "dashboard" in proc.stdout
    box.wait_healthy()
    assert box.get("pool", "/status")["tier"] == "mini"
    assert box.get("dashboard", "/api/state", token=old_token)["pool"]["tier"] == "mini"


def test_restore_refuses_bad_archives(box: Box, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar")
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "passwd").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(box.path / "config.json", arcname="config.json")
        tar.add(tmp_path / "passwd", arcname="../passwd")
    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(box.path / "config.json", arcname="config.json")
    before = tree_hashes(box.path)
    for path in (tmp_path / "missing.tar.gz", garbage, evil, partial):
        proc = box.ctl("restore", str(path))
        assert proc.returncode == 2 and "restore refused" in proc.stderr, path
        assert tree_hashes(box.path) == before, path
    assert not (tmp_path.parent / "passwd").exists()


def test_remote_mode_runs_no_local_node(make_box: Callable[..., Box]) -> None:
    upstream = make_box("upstream")
    upstream.wait_healthy()
    url = f"http://127.0.0.1:{upstream.port('node', 'rpc_port')}"
    box = make_box("edge")
    box.wait_healthy()
    box.edit(node={"mode": "remote", "remote_url": url,
                   "remote_token": upstream.env()["NODE_RPC_PASSWORD"]})  # fmt: skip
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0, proc.stderr
    assert "Removed: node" in proc.stdout
    doc = box.wait_healthy()
    assert "node" not in doc["expected"] and "node" not in doc["services"]
    assert doc["node"] == {"endpoint": url, "synchronized": True}
    assert "node" not in services_running_in(box.path)
    assert box.env()["NODE_URL"] == url
    state = wait_for("remote node in /api/state", box.api_state,
                     lambda s: s["node"]["synchronized"] is True)  # fmt: skip
    assert state["node"]["mode"] == "remote"
    # The edge box depends on the upstream node: stopping it degrades the edge box.
    upstream.ctl("stop", "node")
    assert "node unreachable" in " ".join(box.wait_exit(1)["reasons"])


def test_remote_node_rejects_a_wrong_token(make_box: Callable[..., Box]) -> None:
    upstream = make_box("upstream")
    url = f"http://127.0.0.1:{upstream.port('node', 'rpc_port')}"
    box = make_box("edge", node={"mode": "remote", "remote_url": url, "remote_token": "wrong"})
    doc = box.wait_exit(1)
    wait_for("401 from the upstream node", box.status,
             lambda s: any("HTTP 401" in r for r in s[1]["reasons"]), interval=0.5)  # fmt: skip
    assert doc["node"]["synchronized"] is False


def test_compact_flip_is_refused_in_place(box: Box) -> None:
    before, pids = tree_hashes(box.path), box.pids()
    box.edit(node={"compact": True})
    edited = tree_hashes(box.path)
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 2
    assert "refusing to convert" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert tree_hashes(box.path) == edited and edited != before
    assert box.pids() == pids
    # Pointing node.data_dir at a fresh dir is the sanctioned way to switch formats.
    box.edit(node={"compact": True, "data_dir": "data/node-compact"})
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0 and proc.stdout.strip() == "Recreated: node", proc.stdout
    assert (box.path / "data/node-compact/FORMAT").read_text().strip() == "compact"
    assert (box.path / "data/node/FORMAT").read_text().strip() == "full"
    box.wait_healthy()
    assert box.get("node", "/info", "rpc_port")["compact"] is True
    assert box.api_state()["node"]["compact"] is True


def test_warm_restart_keeps_height(box: Box) -> None:
    wait_for("chain.json", lambda: (box.path / "data/node/chain.json").exists(), bool)
    stored = json.loads((box.path / "data/node/chain.json").read_text())["height"]
    box.ctl("stop", "node")
    box.ctl("start", "node")
    info = wait_for("node answering", lambda: box.get("node", "/info", "rpc_port"),
                    lambda v: isinstance(v, dict))  # fmt: skip
    assert info["height"] >= stored > 0
    assert "warm start" in box.ctl("logs", "node", "-n", "2").stdout


@pytest.mark.parametrize("lan,addr", [(False, "127.0.0.1"), (True, "0.0.0.0")])
def test_lan_access_sets_the_node_bind(make_box: Callable[..., Box], lan: bool, addr: str) -> None:
    box = make_box(node={"lan_access": lan})
    assert box.env()["NODE_RPC_BIND"] == addr
    port = box.port("node", "rpc_port")
    wait_for(f"node listening on {addr}", lambda: listen_addresses(port), lambda a: a == {addr})
    dash = box.port("dashboard")
    wait_for("dashboard listening", lambda: listen_addresses(dash), lambda a: a == {"127.0.0.1"})


def test_dashboard_needs_its_token_and_serves_https_when_secure(box: Box) -> None:
    assert "401" in box.get("dashboard", "/api/state")
    assert "401" in box.get("dashboard", "/api/state", token="nope")
    assert box.api_state()["strict"] is False
    box.edit(dashboard={"secure": True, "strict": True})
    proc = box.ctl("apply", "-y")
    assert proc.stdout.strip() == "Recreated: dashboard", proc.stdout
    assert (box.path / "secrets/dashboard.crt").exists()
    url = f"https://127.0.0.1:{box.port('dashboard')}/api/state"
    ctx = ssl.create_default_context(cafile=str(box.path / "secrets/dashboard.crt"))
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {box.env()['DASHBOARD_TOKEN']}"}
    )

    def fetch() -> object:
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError) as exc:
            return str(exc)

    state = wait_for("https /api/state", fetch, lambda v: isinstance(v, dict))
    assert isinstance(state, dict) and state["strict"] is True
    assert "error" in box.get("dashboard", "/api/state")  # plain http no longer works
    box.wait_healthy()


def test_cache_extra_is_reported(make_box: Callable[..., Box]) -> None:
    box = make_box(extras={"cache": True})
    doc = box.wait_healthy()
    assert doc["expected"][-1] == "cache" and doc["services"]["cache"]["state"] == "running"
    assert box.api_state()["cache"] == {"enabled": True, "healthy": True}
    box.ctl("stop", "cache")
    assert box.wait_exit(1)["services"]["cache"]["state"] == "exited"
    assert box.api_state()["cache"] == {"enabled": True, "healthy": False}
    box.edit(extras={"cache": False})
    proc = box.ctl("apply", "-y")
    assert "Removed: cache" in proc.stdout
    assert box.wait_healthy()["services"].keys() == set(DEFAULT)


def test_doctor_logs_and_version(shared_box: Box) -> None:
    box = shared_box
    proc = box.ctl("doctor")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith(("OK ", "FAIL ")) for line in lines)
    logs = box.ctl("logs", "node", "-n", "2").stdout.splitlines()
    assert 1 <= len(logs) <= 2 and all(line.startswith("node:") for line in logs)
    version = json.loads(box.ctl("version", "--json").stdout)
    assert version["stack"] == box.status()[1]["version"]
    assert set(version["services"]) >= {"node", "pool", "proxy", "dashboard", "worker"}


def test_side_by_side_boxes_are_independent(make_box: Callable[..., Box], shared_box: Box) -> None:
    box = make_box("second")
    box.wait_healthy()
    assert box.port("node", "rpc_port") != shared_box.port("node", "rpc_port")
    box.ctl("stop", "node")
    assert box.wait_exit(1)["services"]["node"]["state"] == "exited"
    assert shared_box.status()[0] == 0


def test_proxy_rejects_shares_without_the_token(shared_box: Box) -> None:
    url = f"http://127.0.0.1:{shared_box.port('proxy')}/share"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, data=b"{}", timeout=2)
    assert err.value.code == 401


def test_status_lists_a_running_service_the_config_no_longer_asks_for(
    make_box: Callable[..., Box],
) -> None:
    box = make_box(extras={"cache": True})
    box.wait_healthy()
    box.edit(extras={"cache": False})  # edited, not applied: the cache still runs
    code, doc = box.status()
    assert code == 1
    assert doc["services"]["cache"]["state"] == "running"
    assert doc["services"]["cache"]["unexpected"] is True
    assert "cache: running but not in config" in doc["reasons"]
