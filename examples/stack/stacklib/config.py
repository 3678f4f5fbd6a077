"""Validate config.json and render what the services need from it.

Validation runs before anything is written, so a bad config changes nothing.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULTS: dict[str, dict[str, Any]] = {
    "stack": {"time_scale": 1.0},
    "node": {
        "mode": "local",
        "compact": False,
        "lan_access": False,
        "rpc_port": 0,
        "data_dir": "data/node",
        "remote_url": "",
        "remote_token": "",
    },
    "pool": {"tier": "mini", "port": 0},
    "proxy": {"port": 0, "debounce_s": 10},
    "dashboard": {"port": 0, "secure": False, "strict": False},
    "workers": {"count": 2},
    "extras": {"cache": False, "cache_port": 0},
}

TIERS = ("main", "mini", "nano")
MODES = ("local", "remote")
MAX_WORKERS = 16
PORT_KEYS = (
    ("node", "rpc_port"),
    ("pool", "port"),
    ("proxy", "port"),
    ("dashboard", "port"),
    ("extras", "cache_port"),
)
SECRET_KEYS = ("PROXY_AUTH_TOKEN", "DASHBOARD_TOKEN", "NODE_RPC_PASSWORD")


class ConfigError(Exception):
    """A config.json problem, reported as one line with exit code 2."""


def load(box: Path) -> dict[str, Any]:
    """Read and validate `box/config.json`, filling absent keys from DEFAULTS."""
    path = box / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config.json not found in {box}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config.json unreadable: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config.json is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    return validate(raw)


def validate(raw: Any) -> dict[str, Any]:
    """Return a complete config or raise ConfigError naming the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("config.json must hold a JSON object")
    cfg = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in DEFAULTS:
            raise ConfigError(f"unknown section {section!r}")
        if not isinstance(values, dict):
            raise ConfigError(f"{section} must be an object")
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"unknown key {section}.{key}")
            cfg[section][key] = value
    _check_types(cfg)
    _check_values(cfg)
    return cfg


def _check_types(cfg: dict[str, Any]) -> None:
    """Every key must keep the type of its default (bool is not a number here)."""
    for section, defaults in DEFAULTS.items():
        for key, default in defaults.items():
            value = cfg[section][key]
            name = f"{section}.{key}"
            if isinstance(default, bool):
                ok = isinstance(value, bool)
                want = "true or false"
            elif isinstance(default, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                want = "a number"
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
                want = "an integer"
            else:
                ok = isinstance(value, str)
                want = "a string"
            if not ok:
                raise ConfigError(f"{name} must be {want}, got {json.dumps(value)}")


def _check_values(cfg: dict[str, Any]) -> None:
    """Range and cross-key checks."""
    scale = cfg["stack"]["time_scale"]
    if not 0.01 <= scale <= 10:
        raise ConfigError(f"stack.time_scale must be between 0.01 and 10, got {scale}")
    if cfg["node"]["mode"] not in MODES:
        raise ConfigError(
            f"node.mode must be one of {', '.join(MODES)}, got {cfg['node']['mode']!r}"
        )
    if cfg["pool"]["tier"] not in TIERS:
        raise ConfigError(
            f"pool.tier must be one of {', '.join(TIERS)}, got {cfg['pool']['tier']!r}"
        )
    if not 0 <= cfg["workers"]["count"] <= MAX_WORKERS:
        raise ConfigError(f"workers.count must be between 0 and {MAX_WORKERS}")
    if not 0 <= cfg["proxy"]["debounce_s"] <= 3600:
        raise ConfigError("proxy.debounce_s must be between 0 and 3600")
    if not cfg["node"]["data_dir"].strip():
        raise ConfigError("node.data_dir must not be empty")
    if cfg["node"]["mode"] == "remote":
        _check_remote_url(cfg["node"]["remote_url"])
    _check_ports(cfg)


def _check_remote_url(url: str) -> None:
    """A remote node needs an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "node.remote_url must be an http(s)://host:port URL when node.mode is remote"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError("node.remote_url has an invalid port") from None


def _check_ports(cfg: dict[str, Any]) -> None:
    """Ports of enabled services must be valid and distinct."""
    seen: dict[int, str] = {}
    for section, key in active_port_keys(cfg):
        port = cfg[section][key]
        name = f"{section}.{key}"
        if not 1 <= port <= 65535:
            raise ConfigError(f"{name} must be a port between 1 and 65535, got {port}")
        if port in seen:
            raise ConfigError(f"{name} and {seen[port]} both use port {port}")
        seen[port] = name


def active_port_keys(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """The port keys whose services this config runs."""
    keys = list(PORT_KEYS)
    if cfg["node"]["mode"] != "local":
        keys.remove(("node", "rpc_port"))
    if not cfg["extras"]["cache"]:
        keys.remove(("extras", "cache_port"))
    return keys


def expected_services(cfg: dict[str, Any]) -> list[str]:
    """Supervisord program names this config runs, in start order."""
    names = ["node"] if cfg["node"]["mode"] == "local" else []
    names += ["pool", "proxy", "dashboard"]
    names += [f"worker-{i}" for i in range(1, cfg["workers"]["count"] + 1)]
    if cfg["extras"]["cache"]:
        names.append("cache")
    return names


def node_url(cfg: dict[str, Any]) -> str:
    """Where pool, proxy, dashboard and status reach the node."""
    if cfg["node"]["mode"] == "remote":
        return str(cfg["node"]["remote_url"]).rstrip("/")
    return f"http://127.0.0.1:{cfg['node']['rpc_port']}"


def data_dir(box: Path, cfg: dict[str, Any]) -> Path:
    """The node's data dir; relative paths are relative to the box."""
    path = Path(cfg["node"]["data_dir"])
    return path if path.is_absolute() else box / path


def fmt_name(compact: bool) -> str:
    """The on-disk FORMAT string for a compact flag."""
    return "compact" if compact else "full"


def render_env_settings(cfg: dict[str, Any]) -> dict[str, str]:
    """The non-secret .env keys (see docs/sample-stack.md)."""
    node = cfg["node"]
    return {
        "NODE_MODE": node["mode"],
        "NODE_COMPACT": _flag(node["compact"]),
        "NODE_RPC_BIND": "0.0.0.0" if node["lan_access"] else "127.0.0.1",
        "NODE_RPC_PORT": str(node["rpc_port"]),
        "NODE_URL": node_url(cfg),
        "POOL_TIER": cfg["pool"]["tier"],
        "DASHBOARD_SECURE": _flag(cfg["dashboard"]["secure"]),
        "DASHBOARD_STRICT": _flag(cfg["dashboard"]["strict"]),
        "WORKERS_COUNT": str(cfg["workers"]["count"]),
        "EXTRAS_CACHE": _flag(cfg["extras"]["cache"]),
    }


def _flag(value: bool) -> str:
    return "true" if value else "false"


def service_settings(box: Path, cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-service settings (no secrets); a change here recreates that service."""
    scale = float(cfg["stack"]["time_scale"])
    common = {"time_scale": scale, "node_url": node_url(cfg), "node_mode": cfg["node"]["mode"]}
    out: dict[str, dict[str, Any]] = {}
    if cfg["node"]["mode"] == "local":
        out["node"] = {
            "time_scale": scale,
            "bind": "0.0.0.0" if cfg["node"]["lan_access"] else "127.0.0.1",
            "port": cfg["node"]["rpc_port"],
            "compact": cfg["node"]["compact"],
            "data_dir": str(data_dir(box, cfg)),
        }
    out["pool"] = {**common, "port": cfg["pool"]["port"]}
    out["proxy"] = {
        **common,
        "port": cfg["proxy"]["port"],
        "debounce_s": cfg["proxy"]["debounce_s"],
    }
    out["dashboard"] = {
        **common,
        "port": cfg["dashboard"]["port"],
        "secure": cfg["dashboard"]["secure"],
        "strict": cfg["dashboard"]["strict"],
        "pool_url": f"http://127.0.0.1:{cfg['pool']['port']}",
        "proxy_url": f"http://127.0.0.1:{cfg['proxy']['port']}",
        "cache_url": f"http://127.0.0.1:{cfg['extras']['cache_port']}"
        if cfg["extras"]["cache"]
        else "",
    }
    for i in range(1, cfg["workers"]["count"] + 1):
        out[f"worker-{i}"] = {
            "time_scale": scale,
            "proxy_url": f"http://127.0.0.1:{cfg['proxy']['port']}",
        }
    if cfg["extras"]["cache"]:
        out["cache"] = {"time_scale": scale, "port": cfg["extras"]["cache_port"]}
    return out


def secrets_used(name: str, cfg: dict[str, Any]) -> list[str]:
    """The .env secrets a service reads at start; their digests join its settings hash."""
    node_secret = ["NODE_RPC_PASSWORD"] if cfg["node"]["mode"] == "local" else []
    if name == "node":
        return ["NODE_RPC_PASSWORD"]
    if name == "proxy":
        return ["PROXY_AUTH_TOKEN", *node_secret]
    if name == "dashboard":
        return ["DASHBOARD_TOKEN", *node_secret]
    if name == "pool":
        return node_secret
    if name.startswith("worker-"):
        return ["PROXY_AUTH_TOKEN"]
    return []
