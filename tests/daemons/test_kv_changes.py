"""Applying changes: only the daemon whose rendered config changed is recreated, each axis is
observed at its raw source (redis-cli, the access log, the TLS handshake, the replica), and
secrets are kept; a refused config touches nothing."""

from __future__ import annotations

import json
import re
import ssl
import stat
from collections.abc import Callable
from typing import Any

import pytest
from kvbox import Box, digest, http_get, tree_hashes, wait_for

pytestmark = pytest.mark.slow
COMBINED = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /healthz HTTP/1\.1" 200 \d+ "-" "[^"]*"$')


def secret_digests(box: Box) -> dict[str, str]:
    out = {k: box.secret_digest(k) for k in ("REDIS_PASSWORD", "ADMIN_TOKEN")}
    out[".env"] = digest((box.path / ".env").read_bytes())
    return out


def last_access_line(box: Box, path: str = "/healthz") -> str:
    """nginx writes the access line after it sends the response, so the client can read the log
    first: wait for the request's own line (the earlier health polls hit other paths)."""
    log = box.path / "logs" / "front-access.log"
    return wait_for(
        f"the access line of {path}",
        lambda: (log.read_text().splitlines() or [""])[-1],
        lambda line: f"GET {path} " in line or f'"uri":"{path}"' in line,
    )


def apply(box: Box) -> str:
    proc = box.ctl("apply", "-y")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_log_format_recreates_only_the_front(box: Box) -> None:
    before, keys = box.pids(), secret_digests(box)
    box.front("/healthz")
    assert json.loads(last_access_line(box))["status"] == 200  # json before: the control
    box.edit(front={"log_format": "combined"})
    assert apply(box) == "Recreated: front\n"
    box.wait_healthy()
    after = box.pids()
    assert after["front"] != before["front"]
    assert {n: after[n] for n in ("redis", "api")} == {n: before[n] for n in ("redis", "api")}
    box.front("/healthz")
    assert COMBINED.match(last_access_line(box)), last_access_line(box)
    assert "front-access.log combined;" in (box.path / "conf" / "nginx.conf").read_text()
    assert secret_digests(box) == keys
    assert apply(box) == "No configuration changes detected\n"


def test_memory_settings_change_only_through_redis(box: Box) -> None:
    assert box.config_get("maxmemory-policy") == "noeviction"
    assert box.redis_cli("SET", "kvtest:kept", "yes") == "OK"
    before, keys = box.pids(), secret_digests(box)
    box.edit(redis={"maxmemory_policy": "allkeys-lru", "maxmemory_mb": 16})
    assert apply(box) == "Recreated: redis\n"
    box.wait_healthy()
    after = box.pids()
    assert after["redis"] != before["redis"]
    assert (after["api"], after["front"]) == (before["api"], before["front"])
    assert box.config_get("maxmemory-policy") == "allkeys-lru"
    assert box.config_get("maxmemory") == str(16 * 1024 * 1024)
    assert box.redis_cli("GET", "kvtest:kept") == "yes"  # saved at SIGTERM, loaded at start
    assert box.front("/api/GET/kvtest:kept")[:2] == (200, {"GET": "yes"})  # webdis reconnected
    assert secret_digests(box) == keys


def test_appendonly_off_and_on_again_keeps_every_key(box: Box) -> None:
    """Redis starts empty when appendonly is turned on with only an RDB on disk, and an AOF
    left from an earlier time is stale: apply seeds the AOF from the fresh RDB each time."""
    for step, aof in enumerate((True, False, True)):
        assert box.redis_cli("SET", f"kvtest:{step}", "v") == "OK"
        box.edit(redis={"appendonly": aof})
        assert apply(box) == "Recreated: redis\n"
        box.wait_healthy()
        assert box.config_get("appendonly") == ("yes" if aof else "no")
        keys = [box.redis_cli("GET", f"kvtest:{n}") for n in range(step + 1)]
        assert keys == ["v"] * (step + 1), step


def test_replica_comes_and_goes(box: Box) -> None:
    before = box.pids()
    box.edit(replica={"enabled": True})
    assert apply(box) == "Recreated: replica\n"
    doc = box.wait_healthy()
    assert [s["name"] for s in doc["services"]] == ["redis", "replica", "api", "front"]
    assert {n: p for n, p in box.pids().items() if n != "replica"} == before
    info = box.redis_cli("INFO", "replication")
    assert "role:master" in info and "connected_slaves:1" in info
    assert box.redis_cli("SET", "kvtest:copied", "1") == "OK"
    wait_for("the key on the replica", lambda: box.redis_cli("GET", "kvtest:copied", replica=True),
             lambda v: v == "1")  # fmt: skip
    assert "READONLY" in box.redis_cli("SET", "x", "1", replica=True)
    assert box.file_holds_secret("conf/replica.conf", "REDIS_PASSWORD")
    box.edit(replica={"enabled": False})
    assert apply(box) == "Removed: replica\n"
    doc = box.wait_healthy()
    assert [s["name"] for s in doc["services"]] == ["redis", "api", "front"]
    assert not (box.path / "conf" / "replica.conf").exists()
    assert "connected_slaves:0" in box.redis_cli("INFO", "replication")


def test_tls_uses_a_minted_certificate_that_is_never_rotated(box: Box) -> None:
    plain = box.front("/healthz")
    assert plain[:2] == (200, {"status": "ok", "scheme": "http"})
    box.edit(front={"tls": True})
    assert apply(box) == "Recreated: front\n"
    doc = box.wait_healthy()
    assert doc["front"]["url"].startswith("https://")
    for name in ("front.crt", "front.key"):
        assert stat.S_IMODE((box.path / "secrets" / name).stat().st_mode) == 0o600
    cert = digest((box.path / "secrets" / "front.crt").read_bytes())
    # Verified against the box's own certificate, for 127.0.0.1.
    assert box.front("/healthz")[:2] == (200, {"status": "ok", "scheme": "https"})
    assert box.front("/admin/status", auth="ADMIN_TOKEN")[1]["scheme"] == "https"
    untrusted = http_get(f"https://127.0.0.1:{box.port('front')}/healthz")
    assert untrusted[0] is None and "CERTIFICATE_VERIFY_FAILED" in untrusted[1]
    assert box.front("/healthz", tls=False)[0] == 400  # plain HTTP to the TLS port
    box.edit(front={"tls": False})
    assert apply(box) == "Recreated: front\n"
    box.wait_healthy()
    assert box.front("/healthz")[:2] == (200, {"status": "ok", "scheme": "http"})
    box.edit(front={"tls": True})
    assert apply(box) == "Recreated: front\n"
    box.wait_healthy()
    assert digest((box.path / "secrets" / "front.crt").read_bytes()) == cert
    ctx = ssl.create_default_context(cafile=str(box.path / "secrets" / "front.crt"))
    assert ctx.cert_store_stats()["x509"] == 1


def test_secrets_are_minted_when_missing_and_never_rotated(box: Box) -> None:
    keys = secret_digests(box)
    for _ in range(2):
        box.edit(front={"log_format": "combined"})
        apply(box)
        box.edit(front={"log_format": "json"})
        apply(box)
    assert secret_digests(box) == keys
    # Drop the token line: apply mints a new one and recreates only the front that reads it.
    env = (box.path / ".env").read_text().splitlines()
    (box.path / ".env").write_text("".join(f"{ln}\n" for ln in env if "ADMIN_TOKEN" not in ln))
    before = box.pids()
    assert apply(box) == "Recreated: front\n"
    assert box.secret_digest("REDIS_PASSWORD") == keys["REDIS_PASSWORD"]
    assert box.secret_digest("ADMIN_TOKEN") != keys["ADMIN_TOKEN"]
    assert stat.S_IMODE((box.path / ".env").stat().st_mode) == 0o600
    box.wait_healthy()
    assert (box.pids()["redis"], box.pids()["api"]) == (before["redis"], before["api"])
    assert box.front("/admin/status", auth="ADMIN_TOKEN")[0] == 200
    assert box.file_holds_secret("conf/admin_token.map", "ADMIN_TOKEN")


BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("unknown key", lambda c: c["redis"].update(colour="red"), "redis.colour"),
    ("bad policy", lambda c: c["redis"].update(maxmemory_policy="lru"), "maxmemory_policy"),
    ("bool port", lambda c: c["front"].update(port=True), "front.port"),
    ("clash", lambda c: c["replica"].update(enabled=True, port=c["api"]["port"]), "replica.port"),
    ("not json", lambda c: "{", "not valid JSON"),
]


def test_a_refused_config_or_secret_touches_nothing(box: Box) -> None:
    good = (box.path / "config.json").read_text()
    env = (box.path / ".env").read_text()
    before, files = box.pids(), tree_hashes(box.path)
    cases = [(name, json.dumps(_changed(good, f)) if (r := f(json.loads(good))) is None else r,
              env, key) for name, f, key in BAD_CONFIGS]  # fmt: skip
    cases.append(("empty secret", good, re.sub(r"(?m)^ADMIN_TOKEN=.*$", "ADMIN_TOKEN=", env),
                  "ADMIN_TOKEN is empty"))  # fmt: skip
    cases.append(("quoted secret", good, re.sub(r"(?m)^(REDIS_PASSWORD=.*)$", r'\1"', env),
                  "REDIS_PASSWORD must be"))  # fmt: skip
    for name, cfg_text, env_text, key in cases:
        (box.path / "config.json").write_text(cfg_text)
        (box.path / ".env").write_text(env_text)
        edited = tree_hashes(box.path)
        proc = box.ctl("apply", "-y")
        assert (proc.returncode, proc.stdout) == (2, ""), name
        assert key in proc.stderr and len(proc.stderr.splitlines()) == 1, (name, proc.stderr)
        assert box.text_holds_secret(proc.stderr) == [], name
        assert tree_hashes(box.path) == edited, name
        assert box.pids() == before, name
    (box.path / "config.json").write_text(good)
    (box.path / ".env").write_text(env)
    assert tree_hashes(box.path) == files
    assert box.ctl("apply", "-y").stdout == "No configuration changes detected\n"


def _changed(text: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    cfg = json.loads(text)
    change(cfg)
    return dict(cfg)
