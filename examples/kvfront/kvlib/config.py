"""config.json: defaults, validation (one line naming the key), and what a config runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from kvlib import SERVICES

POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
LOG_FORMATS = ("json", "combined")
MAX_MEMORY_MB = 65536

DEFAULTS: dict[str, dict[str, Any]] = {
    "front": {"port": 0, "tls": False, "log_format": "json"},
    "redis": {"port": 0, "maxmemory_mb": 64, "maxmemory_policy": "noeviction", "appendonly": False},
    "replica": {"enabled": False, "port": 0},
    "api": {"port": 0},
}
# Install picks a free port for each of these.
PORT_KEYS = (("front", "port"), ("redis", "port"), ("replica", "port"), ("api", "port"))


class ConfigError(Exception):
    """config.json (or .env, or an archive) is unusable: one line, exit 2, nothing touched."""


def load(box: Path) -> dict[str, Any]:
    """Read and validate BOX/config.json; absent keys are filled from DEFAULTS."""
    path = box / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config.json: missing (run install.sh)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config.json: unreadable: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"config.json: not valid JSON: {exc}") from None
    return validate(raw)


def validate(raw: Any) -> dict[str, Any]:
    """The validated config (a new dict); raises ConfigError naming the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("config.json: the top level must be an object")
    cfg = copy.deepcopy(DEFAULTS)
    for section, values in raw.items():
        if section not in DEFAULTS:
            raise ConfigError(f"config.json: unknown section {section!r}")
        if not isinstance(values, dict):
            raise ConfigError(f"config.json: {section}: must be an object")
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"config.json: unknown key {section}.{key}")
            cfg[section][key] = value
    for section, key in PORT_KEYS:
        _int(cfg, section, key, 1, 65535)
    _bool(cfg, "front", "tls")
    _choice(cfg, "front", "log_format", LOG_FORMATS)
    _int(cfg, "redis", "maxmemory_mb", 0, MAX_MEMORY_MB)
    _choice(cfg, "redis", "maxmemory_policy", POLICIES)
    _bool(cfg, "redis", "appendonly")
    _bool(cfg, "replica", "enabled")
    _distinct_ports(cfg)
    return cfg


def _int(cfg: dict[str, Any], section: str, key: str, low: int, high: int) -> None:
    value = cfg[section][key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"config.json: {section}.{key}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"config.json: {section}.{key}: must be {low}..{high}, got {value}")


def _bool(cfg: dict[str, Any], section: str, key: str) -> None:
    value = cfg[section][key]
    if not isinstance(value, bool):
        raise ConfigError(f"config.json: {section}.{key}: expected true or false, got {value!r}")


def _choice(cfg: dict[str, Any], section: str, key: str, allowed: tuple[str, ...]) -> None:
    value = cfg[section][key]
    if value not in allowed or not isinstance(value, str):
        raise ConfigError(
            f"config.json: {section}.{key}: expected one of {', '.join(allowed)}; got {value!r}"
        )


def _distinct_ports(cfg: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name in expected_services(cfg):
        port = cfg[name]["port"]
        if port in seen:
            raise ConfigError(f"config.json: {name}.port: {port} is also {seen[port]}.port")
        seen[port] = name


def expected_services(cfg: dict[str, Any]) -> list[str]:
    """The services this config runs, in SERVICES order."""
    return [n for n in SERVICES if n != "replica" or cfg["replica"]["enabled"]]
