"""Fast checks: install layout, config validation, refusals that must change nothing.

None of these need a running stack; each bad input is run through the real stackctl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stackbox import Box, install, tree_hashes
from stacklib import config, status, supd


def test_install_lays_out_a_box(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    for name in ("config.json", "stackctl", "stacklib/cli.py"):
        assert (box.path / name).is_file(), name
    for name in ("data", "backups", "logs", "run"):
        assert (box.path / name).is_dir(), name
    assert os.access(box.path / "stackctl", os.X_OK)
    assert os.path.abspath(sys.executable) in (box.path / "stackctl").read_text()
    cfg = config.validate(box.config())
    ports = [cfg[s][k] for s, k in config.PORT_KEYS]
    assert len(set(ports)) == len(ports) and all(p > 0 for p in ports)
    assert cfg["stack"]["time_scale"] == pytest.approx(0.05)


def test_two_installs_get_different_ports(make_box: Callable[..., Box]) -> None:
    a, b = make_box("a", apply=False), make_box("b", apply=False)
    ports_a = {a.config()[s][k] for s, k in config.PORT_KEYS}
    ports_b = {b.config()[s][k] for s, k in config.PORT_KEYS}
    assert not ports_a & ports_b


def test_reinstall_keeps_config(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    box.edit(pool={"tier": "main"})
    before = (box.path / "config.json").read_bytes()
    proc = install(box.path, "--python", sys.executable)
    assert proc.returncode == 0, proc.stderr
    assert (box.path / "config.json").read_bytes() == before


def test_install_refuses_python_without_supervisor(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = install(tmp_path / "box", "--python", str(venv / "bin" / "python"))
    assert proc.returncode == 2
    assert "cannot import supervisor" in proc.stderr
    assert not (tmp_path / "box" / "stackctl").exists()


BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("tier", lambda c: c["pool"].update(tier="giga"), "pool.tier"),
    ("mode", lambda c: c["node"].update(mode="cloud"), "node.mode"),
    ("bool", lambda c: c["node"].update(compact="yes"), "node.compact"),
    ("int", lambda c: c["workers"].update(count=True), "workers.count"),
    ("workers", lambda c: c["workers"].update(count=-1), "workers.count"),
    ("scale", lambda c: c["stack"].update(time_scale=0), "stack.time_scale"),
    ("port", lambda c: c["pool"].update(port=70000), "pool.port"),
    ("dup", lambda c: c["proxy"].update(port=c["pool"]["port"]), "port"),
    ("key", lambda c: c["pool"].update(colour="red"), "pool.colour"),
    ("section", lambda c: c.update(extra={}), "extra"),
    ("remote", lambda c: c["node"].update(mode="remote", remote_url=""), "node.remote_url"),
    ("url", lambda c: c["node"].update(mode="remote", remote_url="ftp://x"), "node.remote_url"),
]


@pytest.mark.parametrize("mutate,needle", [(m, n) for _, m, n in BAD_CONFIGS],
                         ids=[i for i, _, _ in BAD_CONFIGS])  # fmt: skip
def test_bad_config_is_refused_and_changes_nothing(
    make_box: Callable[..., Box], mutate: Callable[[dict[str, Any]], Any], needle: str
) -> None:
    box = make_box(apply=False)
    cfg = box.config()
    mutate(cfg)
    (box.path / "config.json").write_text(json.dumps(cfg))
    before = tree_hashes(box.path)
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert tree_hashes(box.path) == before
    assert not (box.path / ".env").exists()
    assert not supd.Supervisor(box.path).running()


def test_unparseable_config_is_refused(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    (box.path / "config.json").write_text("{not json")
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


def test_status_exit_2_when_config_unreadable(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    (box.path / "config.json").unlink()
    code, doc = box.status()
    assert code == 2 and doc["overall"] == "unknown"


def test_status_exit_1_when_never_started(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    code, doc = box.status()
    assert code == 1 and doc["overall"] == "down"
    assert {s["state"] for s in doc["services"].values()} == {"exited"}


def test_unknown_service_is_a_usage_error(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    for args in (("stop", "nginx"), ("kill", "-s", "SIGSTOP", "nginx"), ("rm", "cache")):
        proc = box.ctl(*args)
        assert proc.returncode == 2 and "no such service" in proc.stderr, args


def test_up_before_apply_is_refused(make_box: Callable[..., Box]) -> None:
    box = make_box(apply=False)
    proc = box.ctl("up")
    assert proc.returncode == 2 and "apply" in proc.stderr


def test_long_box_path_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    sock = supd.socket_path(deep)
    assert len(str(sock)) < 100 and str(sock).startswith("/tmp/stack-")
    assert supd.socket_path(tmp_path) == tmp_path / "run" / "supervisor.sock"


def test_env_renders_the_contract_keys() -> None:
    cfg = config.validate({"node": {"lan_access": True, "rpc_port": 1}, "pool": {"port": 2},
                           "proxy": {"port": 3}, "dashboard": {"port": 4}})  # fmt: skip
    env = config.render_env_settings(cfg)
    assert env["NODE_RPC_BIND"] == "0.0.0.0" and env["NODE_URL"] == "http://127.0.0.1:1"
    assert set(env) == {"NODE_MODE", "NODE_COMPACT", "NODE_RPC_BIND", "NODE_RPC_PORT",
                        "NODE_URL", "POOL_TIER", "DASHBOARD_SECURE", "DASHBOARD_STRICT",
                        "WORKERS_COUNT", "EXTRAS_CACHE"}  # fmt: skip


def test_strict_verdict_needs_pool_ready() -> None:
    """Same probes, strict off vs on: only strict turns a not-ready pool into a reason."""
    probes = {"node": {"synchronized": True}, "proxy": {"admitting": True},
              "pool": {"ready": False}}  # fmt: skip
    services = {"pool": {"state": "running"}}
    lax = config.validate(_ports(strict=False))
    strict = config.validate(_ports(strict=True))
    assert status.verdict(lax, services, probes) == []
    assert status.verdict(strict, services, probes) == ["pool not ready (dashboard.strict)"]


def _ports(strict: bool) -> dict[str, Any]:
    return {"node": {"rpc_port": 1}, "pool": {"port": 2}, "proxy": {"port": 3},
            "dashboard": {"port": 4, "strict": strict}}  # fmt: skip
