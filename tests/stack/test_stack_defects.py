"""Each defect switch in defects.json really changes behaviour (and is off by default:
the lifecycle tests prove the healthy behaviour on boxes without the file)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from stackbox import Box, file_hash, wait_for

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
