"""`stackctl apply`: validate, render, mint, then recreate only what changed.

Order matters: every check that can refuse runs before the first write, so a refused apply
leaves the box exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from stacklib import VERSION, config, defects, envfile, secrets
from stacklib.config import ConfigError
from stacklib.supd import Supervisor, command_for, conf_programs, render_conf


class ApplyFailed(Exception):
    """apply could not finish (exit 1), as opposed to a bad config (exit 2)."""


def check_data_dir(box: Path, cfg: dict[str, Any]) -> None:
    """Refuse to flip node.compact on an existing data dir: that would destroy it."""
    if cfg["node"]["mode"] != "local":
        return
    fmt_file = config.data_dir(box, cfg) / "FORMAT"
    if not fmt_file.exists():
        return
    found = fmt_file.read_text(encoding="utf-8").strip()
    want = config.fmt_name(cfg["node"]["compact"])
    if found != want:
        raise ConfigError(
            f"node.compact={json.dumps(cfg['node']['compact'])} but {cfg['node']['data_dir']} "
            f"holds a {found} data dir; refusing to convert it in place "
            f"(point node.data_dir at a {want} or empty data dir)"
        )


def render_env(box: Path, cfg: dict[str, Any], rotate: tuple[str, ...]) -> dict[str, str]:
    """Rendered settings, then secrets (kept, or minted when absent), then unknown keys."""
    old = envfile.read(box / ".env")
    env = config.render_env_settings(cfg)
    for key in config.SECRET_KEYS:
        if key in old:
            env[key] = old[key]
    secrets.mint_missing(env, rotate)
    for key, value in old.items():
        env.setdefault(key, value)
    return env


def settings_hash(box: Path, name: str, cfg: dict[str, Any], settings: dict[str, Any],
                  env: dict[str, str]) -> str:  # fmt: skip
    """Everything a service reads at start, hashed: change any of it and it is recreated."""
    parts: dict[str, Any] = {"settings": settings, "version": VERSION}
    parts["secrets"] = {k: secrets.digest(env.get(k, "")) for k in config.secrets_used(name, cfg)}
    if cfg["node"]["mode"] == "remote" and name != "node":
        parts["remote_token"] = secrets.digest(cfg["node"]["remote_token"])
    if name == "dashboard" and cfg["dashboard"]["secure"]:
        parts["cert"] = secrets.digest((box / "secrets" / "dashboard.crt").read_bytes())
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_rendered(box: Path, cfg: dict[str, Any], env: dict[str, str]) -> str:
    """Write .env, secrets, run/<service>.json and return the supervisord.conf text."""
    envfile.write_private(box / ".env", envfile.format_env(env))
    secrets.ensure_node_key(box)
    if cfg["dashboard"]["secure"]:
        secrets.ensure_dashboard_cert(box)
    if cfg["node"]["mode"] == "local":
        data = config.data_dir(box, cfg)
        data.mkdir(parents=True, exist_ok=True)
        if not (data / "FORMAT").exists():
            (data / "FORMAT").write_text(config.fmt_name(cfg["node"]["compact"]) + "\n")
    run = box / "run"
    programs = {}
    for name, settings in config.service_settings(box, cfg).items():
        text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
        path = run / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        argv = command_for(box, name, settings, cfg["pool"]["tier"])
        programs[name] = (argv, settings_hash(box, name, cfg, settings, env))
    return render_conf(box, programs)


def rewrite_config(box: Path, cfg: dict[str, Any]) -> None:
    """The `rewrite_config_on_apply` defect: same meaning, different bytes every time."""
    path = box / "config.json"
    current = path.read_text(encoding="utf-8")
    for indent in (4, 3):
        text = json.dumps(cfg, indent=indent, sort_keys=True) + "\n"
        if text != current:
            path.write_text(text, encoding="utf-8")
            return


def apply(box: Path, assume_yes: bool) -> int:
    """The whole apply; returns the exit code."""
    cfg = config.load(box)
    switches = defects.load(box)
    check_data_dir(box, cfg)
    if switches.get("fail_apply_on_tier") == cfg["pool"]["tier"]:
        raise ApplyFailed(f"pool failed to come up with tier {cfg['pool']['tier']}")
    if not assume_yes and sys.stdin.isatty() and not _confirm():
        print("Aborted; nothing changed")
        return 1
    rotate = ("DASHBOARD_TOKEN",) if switches.get("rotate_secret_on_apply") else ()
    env = render_env(box, cfg, rotate)
    conf_path = box / "run" / "supervisord.conf"
    previous = conf_path.read_text(encoding="utf-8") if conf_path.exists() else ""
    conf_path.write_text(write_rendered(box, cfg, env), encoding="utf-8")
    if switches.get("rewrite_config_on_apply"):
        rewrite_config(box, cfg)
    sup = Supervisor(box)
    if not sup.running():
        sup.start_daemon()
        print("Started: " + ", ".join(config.expected_services(cfg)))
        return 0
    report = reconcile(sup, conf_programs(previous), config.expected_services(cfg))
    if switches.get("restart_on_every_apply"):
        sup.stop_many(["pool"])
        sup.call("startProcess", "pool", True, ok_faults=("ALREADY_STARTED",))
    for line in report:
        print(line)
    return 0


def reconcile(sup: Supervisor, previous: list[str], expected: list[str]) -> list[str]:
    """What `supervisorctl update` does, plus starting stopped services; returns report lines."""
    added, changed, removed = sup.call("reloadConfig")[0]
    sup.stop_many(removed + changed)
    for name in removed + changed:
        sup.call("removeProcessGroup", name)
    for name in changed + added:
        sup.call("addProcessGroup", name)
    created = [n for n in added if n not in previous]
    readded = [n for n in added if n in previous]
    states = {name: info["statename"] for name, info in sup.processes().items()}
    stopped = [n for n in expected if n not in changed + added and states.get(n) != "RUNNING"]
    for name in stopped:
        sup.call("startProcess", name, False, ok_faults=("ALREADY_STARTED",))
    lines = []
    if not (changed or created or removed):
        lines.append("No configuration changes detected")
    if changed or created:
        lines.append("Recreated: " + ", ".join(_ordered(changed + created, expected)))
    if removed:
        lines.append("Removed: " + ", ".join(sorted(removed)))
    if readded or stopped:
        lines.append("Started: " + ", ".join(_ordered(readded + stopped, expected)))
    return lines


def _ordered(names: list[str], expected: list[str]) -> list[str]:
    return sorted(names, key=lambda n: expected.index(n) if n in expected else len(expected))


def _confirm() -> bool:
    answer = input("Apply config.json to this box? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
