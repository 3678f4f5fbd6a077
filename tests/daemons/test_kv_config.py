"""kvfront without daemons: validation, rendering, install and kvctl's usage errors."""

from __future__ import annotations

import copy
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kvbox import KV_SRC, Box, install
from kvlib import config, render, secrets  # from KV_SRC (kvbox puts it on sys.path)

GOOD = {
    "front": {"port": 8443, "tls": True, "log_format": "combined"},
    "redis": {"port": 6390, "maxmemory_mb": 16, "maxmemory_policy": "allkeys-lru",
              "appendonly": True},
    "replica": {"enabled": True, "port": 6391},
    "api": {"port": 7390},
}  # fmt: skip
# Not real secrets: fixed, public test values.
ENV = {"REDIS_PASSWORD": "p" * 32, "ADMIN_TOKEN": "t" * 32}


def with_change(section: str, key: str, value: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(GOOD)
    cfg[section][key] = value
    return cfg


def test_a_full_config_validates_and_absent_keys_take_defaults() -> None:
    assert config.validate(GOOD) == GOOD
    partial = {"front": {"port": 1}, "redis": {"port": 2}, "replica": {"port": 3},
               "api": {"port": 4}}  # fmt: skip
    cfg = config.validate(partial)
    assert cfg["redis"]["maxmemory_policy"] == "noeviction" and cfg["front"]["tls"] is False
    assert config.expected_services(cfg) == ["redis", "api", "front"]
    assert config.expected_services(GOOD) == ["redis", "replica", "api", "front"]


@pytest.mark.parametrize(
    ("cfg", "names"),
    [
        ({**GOOD, "extra": {}}, "unknown section 'extra'"),
        (with_change("front", "colour", "red"), "unknown key front.colour"),
        (with_change("front", "tls", 1), "front.tls"),
        (with_change("front", "port", True), "front.port"),
        (with_change("front", "port", 70000), "front.port"),
        (with_change("front", "log_format", "xml"), "front.log_format"),
        (with_change("redis", "maxmemory_policy", "lru"), "redis.maxmemory_policy"),
        (with_change("redis", "maxmemory_mb", -1), "redis.maxmemory_mb"),
        (with_change("redis", "maxmemory_mb", "64"), "redis.maxmemory_mb"),
        (with_change("replica", "port", 6390), "replica.port: 6390 is also redis.port"),
        ([], "top level"),
    ],
)
def test_validation_names_the_bad_key(cfg: Any, names: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.validate(cfg)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_a_disabled_replica_may_share_a_port() -> None:
    cfg = with_change("replica", "port", 6390)
    cfg["replica"]["enabled"] = False
    assert config.validate(cfg)["replica"]["port"] == 6390


@pytest.mark.parametrize("value", ["", "short", "has space in it ok?", 'quote"d-but-long-enough'])
def test_check_env_refuses_unusable_secrets_without_echoing_them(value: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        secrets.check_env({"REDIS_PASSWORD": value})
    assert "REDIS_PASSWORD" in str(err.value)
    assert not value or value not in str(err.value)


def test_rendered_files_carry_settings_and_secrets_where_the_daemons_read_them() -> None:
    box = Path("/srv/kv")
    files = render.files_for(box, config.validate(GOOD), ENV)
    assert list(files) == ["redis", "replica", "api", "front"]
    redis_conf = files["redis"]["conf/redis.conf"].splitlines()
    assert f"requirepass {ENV['REDIS_PASSWORD']}" in redis_conf
    assert "maxmemory-policy allkeys-lru" in redis_conf
    assert f"maxmemory {16 * 1024 * 1024}" in redis_conf and "appendonly yes" in redis_conf
    assert "bind 127.0.0.1" in redis_conf and "dir /srv/kv/data/redis" in redis_conf
    replica = files["replica"]["conf/replica.conf"].splitlines()
    assert "replicaof 127.0.0.1 6390" in replica
    assert f"masterauth {ENV['REDIS_PASSWORD']}" in replica
    assert not any(line.startswith("maxmemory") for line in replica)
    webdis = json.loads(files["api"]["conf/webdis.json"])
    assert webdis["redis_auth"] == ENV["REDIS_PASSWORD"] and webdis["http_host"] == "127.0.0.1"
    assert "CONFIG" not in webdis["acl"][1]["enabled"] and webdis["daemonize"] is False
    nginx = files["front"]["conf/nginx.conf"]
    assert "listen 127.0.0.1:8443 ssl;" in nginx and "access_log" in nginx
    assert "front-access.log combined;" in nginx
    assert ENV["ADMIN_TOKEN"] not in nginx  # the token lives in the map file only
    assert files["front"]["conf/admin_token.map"] == f'"Bearer {ENV["ADMIN_TOKEN"]}" 1;\n'


def test_rendering_without_tls_or_replica() -> None:
    cfg = config.validate(with_change("replica", "enabled", False))
    cfg["front"].update(tls=False, log_format="json")
    files = render.files_for(Path("/srv/kv"), cfg, ENV)
    assert list(files) == ["redis", "api", "front"]
    nginx = files["front"]["conf/nginx.conf"]
    assert "listen 127.0.0.1:8443;" in nginx and "ssl_certificate" not in nginx
    assert "front-access.log kvfront_json;" in nginx


def test_install_creates_a_box_that_was_never_applied(tmp_path: Path) -> None:
    box = Box(tmp_path / "box")
    proc = install(box.path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("kvctl apply -y")
    cfg = box.config()
    ports = [cfg[s]["port"] for s in ("front", "redis", "replica", "api")]
    assert len(set(ports)) == 4 and all(1024 <= p <= 65535 for p in ports)
    assert config.validate(cfg) == cfg
    for name in ("conf", "secrets", "backups"):
        assert stat.S_IMODE((box.path / name).stat().st_mode) == 0o700
    assert not (box.path / ".env").exists()  # secrets are minted by the first apply
    code, doc = box.status()
    assert code == 2 and doc["overall"] == "unknown" and doc["services"] == []
    assert doc["reasons"] == ["never applied (run kvctl apply)"]
    for args in (("up",), ("stop", "redis"), ("logs", "nope"), ("version", "--json")):
        proc = box.ctl(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == ""
    # Installing again refreshes the code and keeps the edited config.
    box.edit(redis={"maxmemory_policy": "allkeys-lfu"})
    before = (box.path / "config.json").read_bytes()
    proc = install(box.path)
    assert proc.returncode == 0 and "kept" in proc.stdout
    assert (box.path / "config.json").read_bytes() == before


def test_install_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    spaced = tmp_path / "a box"
    proc = install(spaced)
    assert proc.returncode == 2 and "letters, digits" in proc.stderr
    assert not spaced.exists()
    bare = subprocess.run(
        [str(KV_SRC / "install.sh"), str(tmp_path / "b"), "--python", "/usr/bin/python3"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if "cannot import supervisor" not in bare.stderr:
        assert subprocess.run(["/usr/bin/python3", "-c", "import supervisor"]).returncode == 0
        pytest.skip("the system python has supervisor: no python without it to try")
    assert bare.returncode == 2 and not (tmp_path / "b").exists()
