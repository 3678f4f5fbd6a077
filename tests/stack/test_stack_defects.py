"""Each defect switch in defects.json really changes behaviour (and is off by default:
the lifecycle tests prove the healthy behaviour on boxes without the file)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from stackbox import Box, file_hash, wait_for
from stacklib.services.node import FREEZE_GAP_S

pytestmark = pytest.mark.slow


def with_defect(make_box: Callable[..., Box], **switches: object) -> Box:
    box = make_box()
    (box.path / "defects.json").write_text(json.dumps(switches))
    box.wait_healthy()
    return box


def test_rotate_secret_on_apply(make_box: Callable[..., Box]) -> None:
    box = with_defect(make_box, rotate_secret_on_apply=True)
    before = box.env()
    proc = box.ctl("apply", "-y")
    after = box.env()
    assert proc.returncode == 0
    assert after["DASHBOARD_TOKEN"] != before["DASHBOARD_TOKEN"]
    assert after["PROXY_AUTH_TOKEN"] == before["PROXY_AUTH_TOKEN"]
    assert after["NODE_RPC_PASSWORD"] == before["NODE_RPC_PASSWORD"]


def test_restart_on_every_apply(make_box: Callable[..., Box]) -> None:
    box = with_defect(make_box, restart_on_every_apply=True)
    before = box.pids()
    proc = box.ctl("apply", "-y")
    assert proc.stdout.strip() == "No configuration changes detected"
    after = box.pids()
    assert after["pool"][0] != before["pool"][0]
    assert {n: p for n, p in after.items() if n != "pool"} == {
        n: p for n, p in before.items() if n != "pool"
    }


def test_fail_apply_on_tier(make_box: Callable[..., Box]) -> None:
    box = with_defect(make_box, fail_apply_on_tier="nano")
    box.edit(pool={"tier": "nano"})
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 1 and "nano" in proc.stderr
    assert box.get("pool", "/status")["tier"] == "mini"
    box.edit(pool={"tier": "main"})
    assert box.ctl("apply", "-y").returncode == 0


def test_rewrite_config_on_apply(make_box: Callable[..., Box]) -> None:
    box = with_defect(make_box, rewrite_config_on_apply=True)
    path = box.path / "config.json"
    for _ in range(2):
        before_bytes, before = file_hash(path), box.config()
        assert box.ctl("apply", "-y").returncode == 0
        assert file_hash(path) != before_bytes
        assert box.config() == before


def test_leak_token_to_log(make_box: Callable[..., Box]) -> None:
    box = make_box()
    token = box.env()["PROXY_AUTH_TOKEN"]
    box.wait_healthy()
    assert token not in box.ctl("logs", "proxy", "-n", "1000").stdout
    assert box.ctl("doctor").returncode == 0
    (box.path / "defects.json").write_text(json.dumps({"leak_token_to_log": True}))
    box.ctl("stop", "proxy")
    box.ctl("start", "proxy")
    wait_for("token in proxy.log", lambda: (box.path / "logs/proxy.log").read_text(),
             lambda text: token in text)  # fmt: skip
    proc = box.ctl("doctor")
    assert proc.returncode == 1 and "FAIL logs/proxy.log contains a secret" in proc.stdout
    assert token not in proc.stdout


def test_restore_does_nothing(make_box: Callable[..., Box]) -> None:
    box = with_defect(make_box, restore_does_nothing=True)
    proc = box.ctl("backup")
    archive = proc.stdout.split(": ", 1)[1].strip()
    saved = file_hash(box.path / "config.json")
    box.edit(pool={"tier": "main"})
    diverged = file_hash(box.path / "config.json")
    assert diverged != saved
    proc = box.ctl("restore", archive)
    assert proc.returncode == 0 and proc.stdout.startswith("Restored "), proc.stderr
    assert file_hash(box.path / "config.json") == diverged
    (box.path / "defects.json").unlink()
    assert box.ctl("restore", archive).returncode == 0
    assert file_hash(box.path / "config.json") == saved


def restart_with(box: Box, service: str, **switches: object) -> None:
    """Turn switches on and restart the one service that reads them at start."""
    (box.path / "defects.json").write_text(json.dumps(switches))
    box.ctl("stop", service)
    box.ctl("start", service)
    box.wait_healthy(timeout=90)


def proxy_stats(box: Box) -> dict[str, object]:
    stats = box.get("proxy", "/stats")
    assert isinstance(stats, dict), stats
    return stats


def test_proxy_ignores_node(make_box: Callable[..., Box]) -> None:
    """With the node stopped, every read over three debounces says the node is unreachable
    and the proxy still admitting (a healthy one stops: test_stack_lifecycle)."""
    box = make_box()
    restart_with(box, "proxy", proxy_ignores_node=True)
    cfg = box.config()
    debounce = cfg["proxy"]["debounce_s"] * cfg["stack"]["time_scale"]
    assert box.ctl("stop", "node").returncode == 0
    wait_for("the proxy sees the node gone", lambda: proxy_stats(box),
             lambda s: s["node_reachable"] is False, timeout=60)  # fmt: skip
    deadline = time.monotonic() + 3 * debounce + 1
    reads = []
    while time.monotonic() < deadline:  # a window, sampled: "never stops" is not one read
        reads.append(proxy_stats(box))
        time.sleep(0.2)
    assert len(reads) >= 5 and all(r["admitting"] is True for r in reads), reads
    assert all(r["node_reachable"] is False for r in reads), reads
    assert box.ctl("start", "node").returncode == 0


def test_node_wedges_after_freeze(make_box: Callable[..., Box]) -> None:
    box = make_box()
    restart_with(box, "node", node_wedges_after_freeze=True)
    before = (box.path / "logs/node.log").read_text()
    assert box.ctl("kill", "-s", "STOP", "node").returncode == 0
    box.wait_exit(1)
    time.sleep(FREEZE_GAP_S + 0.5)  # the freeze must outlast the node's gap: time is the signal
    assert box.ctl("kill", "-s", "CONT", "node").returncode == 0
    wait_for("the node wedged on its thaw", lambda: (box.path / "logs/node.log").read_text(),
             lambda text: "wedged" in text[len(before):])  # fmt: skip
    code, doc = box.status()
    assert code == 1 and doc["services"]["node"]["state"] == "unhealthy", doc
