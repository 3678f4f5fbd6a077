"""A healthy kvfront box, only looked at: status, endpoints, the CLI probe, where secrets go."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from kvbox import Box, box_processes, http_get, listening, tree_hashes

pytestmark = pytest.mark.slow
DEFAULT = ["redis", "api", "front"]
EXES = {"redis": {"redis-server", "redis-check-rdb"}, "api": {"webdis"}, "front": {"nginx"}}


def test_install_and_apply_give_a_healthy_box(shared_box: Box) -> None:
    box = shared_box
    code, doc = box.status()
    assert code == 0 and doc["overall"] == "healthy" and doc["reasons"] == []
    assert [s["name"] for s in doc["services"]] == DEFAULT
    for svc in doc["services"]:
        assert svc["state"] == "running", svc
        exe = os.path.basename(os.readlink(f"/proc/{svc['pid']}/exe"))
        assert exe in EXES[svc["name"]], (svc, exe)  # the Debian daemon itself runs
    assert box.env_keys() == ["ADMIN_TOKEN", "REDIS_PASSWORD"]  # .env holds secrets only
    assert stat.S_IMODE((box.path / ".env").stat().st_mode) == 0o600
    for rel in ("redis.conf", "webdis.json", "nginx.conf", "admin_token.map"):
        assert stat.S_IMODE((box.path / "conf" / rel).stat().st_mode) == 0o600, rel
    assert box.ctl("status").returncode == 0


def test_every_daemon_listens_on_loopback_only(shared_box: Box) -> None:
    box = shared_box
    socks = listening(set(box_processes(box.path)))
    ports = {box.port(s) for s in ("front", "redis", "api")}
    assert {port for _, port in socks} == ports  # each daemon seen listening on its port
    assert {addr for addr, _ in socks} == {"127.0.0.1"}


def test_status_json_lists_services_without_start_times(shared_box: Box) -> None:
    code, doc = shared_box.status()
    assert code == 0
    assert set(doc) == {"overall", "reasons", "services", "version", "front"}
    assert isinstance(doc["services"], list)
    for svc in doc["services"]:
        assert set(svc) == {"name", "state", "pid"} and isinstance(svc["pid"], int)
    assert doc["front"] == {"url": f"http://127.0.0.1:{shared_box.port('front')}"}
    text = json.dumps(doc)
    assert "start" not in text and "time" not in text


def test_second_apply_changes_nothing(shared_box: Box) -> None:
    box = shared_box
    before, files = box.pids(), tree_hashes(box.path)
    mtimes = {p: p.stat().st_mtime_ns for p in (box.path / "conf").iterdir()}
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "No configuration changes detected\n"
    assert box.pids() == before and all(isinstance(p, int) for p in before.values())
    assert tree_hashes(box.path) == files
    assert {p: p.stat().st_mtime_ns for p in (box.path / "conf").iterdir()} == mtimes


def test_admin_api_refuses_without_the_token_and_answers_with_it(shared_box: Box) -> None:
    box = shared_box
    code, body, headers = box.front("/admin/status")
    assert (code, body) == (401, {"error": "unauthorized"})
    assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    code, body, _ = box.front("/admin/status", header="Bearer " + "0" * 43)
    assert code == 401
    code, body, _ = box.front("/admin/status", header="Basic YWRtaW46YWRtaW4=")
    assert code == 401
    code, body, _ = box.front("/admin/status", auth="ADMIN_TOKEN")
    assert code == 200, body
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    assert body["server"] == "nginx" and f"nginx/{body['version']}" in nginx_v
    front_pid = box.pids()["front"]
    stat_line = Path(f"/proc/{body['worker_pid']}/stat").read_text()
    worker_ppid = int(stat_line.rsplit(")", 1)[1].split()[1])
    assert worker_ppid == front_pid  # answered by a worker of the front's own nginx master
    assert body["connections"]["active"] >= 1 and body["scheme"] == "http"


def test_public_endpoints_reach_redis_through_webdis_read_only(shared_box: Box) -> None:
    box = shared_box
    assert box.front("/healthz")[:2] == (200, {"status": "ok", "scheme": "http"})
    assert box.front("/api/PING")[:2] == (200, {"PING": [True, "PONG"]})
    assert box.redis_cli("SET", "kvtest:greeting", "hello") == "OK"
    assert box.front("/api/GET/kvtest:greeting")[:2] == (200, {"GET": "hello"})
    assert box.front("/api/DBSIZE")[1]["DBSIZE"] >= 1
    for path in ("/api/SET/kvtest:greeting/x", "/api/CONFIG/GET/maxmemory-policy", "/api/INFO"):
        assert box.front(path)[:2] == (403, {"error": "forbidden"}), path
    assert box.redis_cli("GET", "kvtest:greeting") == "hello"  # the refused SET changed nothing
    direct = http_get(f"http://127.0.0.1:{box.port('api')}/PING")
    assert direct[:2] == (200, {"PING": [True, "PONG"]})
    assert box.front("/nope")[0] == 404


def test_redis_cli_probe_needs_the_password(shared_box: Box) -> None:
    box = shared_box
    assert "NOAUTH" in box.redis_cli("PING", auth=False)  # without it: refused
    assert box.redis_cli("PING") == "PONG"
    assert box.config_get("maxmemory-policy") == "noeviction"
    assert box.config_get("maxmemory") == str(64 * 1024 * 1024)
    assert box.config_get("appendonly") == "no"
    # kvctl's own wrapper gives the same answer (the password goes through the environment).
    proc = box.ctl("redis-cli", "CONFIG", "GET", "maxmemory-policy")
    assert proc.stdout.split() == ["maxmemory-policy", "noeviction"]


def test_secrets_reach_the_rendered_configs_and_nothing_else(shared_box: Box) -> None:
    box = shared_box
    assert box.file_holds_secret("conf/redis.conf", "REDIS_PASSWORD")
    assert box.file_holds_secret("conf/webdis.json", "REDIS_PASSWORD")
    assert box.file_holds_secret("conf/admin_token.map", "ADMIN_TOKEN")
    assert not box.file_holds_secret("conf/nginx.conf", "ADMIN_TOKEN")
    for key in ("REDIS_PASSWORD", "ADMIN_TOKEN"):
        assert box.any_file_holds_secret("logs", key) == [], key
        assert box.any_file_holds_secret("run", key) == [], key
    outputs = [box.ctl(*a).stdout for a in (("status", "--json"), ("status",), ("version",))]
    assert box.text_holds_secret("\n".join(outputs)) == []
    # No daemon carries a secret on its command line.
    for pid in box_processes(box.path):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert box.text_holds_secret(cmdline) == [], pid


def test_version_is_text_and_logs_tail(shared_box: Box) -> None:
    box = shared_box
    proc = box.ctl("version")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == "kvfront 1.0.0"
    assert [line.split()[0] for line in lines[1:]] == ["nginx", "redis-server", "webdis"]
    assert all(re.fullmatch(r"\S+ \d[\w.+~:-]*", line) for line in lines[1:]), lines
    assert box.ctl("version", "--json").returncode == 2
    box.front("/healthz")
    proc = box.ctl("logs", "access", "-n", "1")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1
    assert json.loads(proc.stdout)["uri"] == "/healthz"  # the default log_format is json
    proc = box.ctl("logs", "redis", "-n", "3")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3
    assert box.ctl("logs", "nope").returncode == 2
