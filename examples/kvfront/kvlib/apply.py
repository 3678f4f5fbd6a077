"""`kvctl apply`: validate, mint missing secrets, render, recreate only what changed.

Everything that can refuse runs before the first write, so a refused apply leaves the box as
it was. A daemon is recreated when a file it reads at start (its rendered config, the token
map, the TLS pair) or its command line changed: supervisord sees that as a new
KVFRONT_CONFIG_HASH in the program's environment.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvlib import SERVICES, config, daemons, render, secrets, state
from kvlib.supd import Supervisor, conf_hashes, render_conf

PRIORITY = {"redis": 10, "replica": 20, "api": 20, "front": 30}


class ApplyFailed(Exception):
    """apply could not finish (exit 1), as opposed to a refused config (exit 2)."""


def apply(box: Path, assume_yes: bool) -> int:
    cfg = config.load(box)
    secrets.check_env(secrets.read_env(box))
    try:
        bins = daemons.require("nginx", "redis-server", "webdis", "openssl")
    except RuntimeError as exc:
        raise ApplyFailed(str(exc)) from None
    if not assume_yes and sys.stdin.isatty() and not _confirm():
        print("Aborted; nothing changed")
        return 1
    env = secrets.ensure_env(box)
    if cfg["front"]["tls"]:
        secrets.ensure_cert(box)
    aof_on = cfg["redis"]["appendonly"] and not _aof_was_on(box)
    programs = write_rendered(box, cfg, env, bins)
    conf_path = box / "run" / "supervisord.conf"
    previous = conf_path.read_text(encoding="utf-8") if conf_path.exists() else ""
    secrets.write_private(conf_path, render_conf(box, programs))
    secrets.write_private(box / "run" / "state.json",
                          json.dumps(state.from_config(cfg), indent=2) + "\n")  # fmt: skip
    expected = config.expected_services(cfg)
    drop_stale(box, expected)
    sup = Supervisor(box)
    if not sup.running():
        if aof_on:
            seed_aof(box)
        sup.start_daemon()
        print("Started: " + ", ".join(expected))
        return 0
    before_start = (lambda names: seed_aof(box) if "redis" in names else None) if aof_on else None
    for line in reconcile(sup, conf_hashes(previous), expected, before_start):
        print(line)
    return 0


def write_rendered(
    box: Path, cfg: dict[str, Any], env: dict[str, str], bins: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Write every rendered file whose bytes changed; the supervisord programs."""
    for sub in ("conf", "run", "logs", "data/redis", "run/nginx"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    (box / "conf").chmod(0o700)
    if cfg["replica"]["enabled"]:
        (box / "data" / "replica").mkdir(parents=True, exist_ok=True)
    programs = {}
    for name, files in render.files_for(box, cfg, env).items():
        digest = hashlib.sha256()
        for rel, text in sorted(files.items()):
            secrets.write_private(box / rel, text)
            digest.update(f"{rel}\0{text}\0".encode())
        argv, directory = command_for(box, name, bins)
        digest.update(json.dumps(argv).encode())
        if name == "front" and cfg["front"]["tls"]:
            for fname in (secrets.CERT, secrets.KEY):
                digest.update((box / "secrets" / fname).read_bytes())
        programs[name] = {"argv": argv, "directory": directory,
                          "hash": digest.hexdigest()[:16], "priority": PRIORITY[name]}  # fmt: skip
    return programs


def command_for(box: Path, name: str, bins: dict[str, str]) -> tuple[list[str], Path]:
    """argv and working directory of one program."""
    conf = box / "conf"
    if name == "redis":
        return [bins["redis-server"], str(conf / "redis.conf")], box / "data" / "redis"
    if name == "replica":
        return [bins["redis-server"], str(conf / "replica.conf")], box / "data" / "replica"
    if name == "api":
        return [bins["webdis"], str(conf / "webdis.json")], box / "run"
    return [bins["nginx"], "-p", f"{box}/", "-c", str(conf / "nginx.conf")], box / "run"


def reconcile(
    sup: Supervisor,
    previous: dict[str, str],
    expected: list[str],
    before_start: Callable[[list[str]], None] | None = None,
) -> list[str]:
    """`supervisorctl update`, plus starting expected services that are down; report lines.

    `previous` maps the last apply's programs to their hashes: a program `rm`ed since then
    comes back as "added" and is reported as Started unless its configuration changed.
    `before_start` sees the programs about to start, once they are all stopped.
    """
    added, changed, removed = sup.call("reloadConfig")[0]
    sup.stop_many(removed + changed)
    for name in removed + changed:
        sup.call("removeProcessGroup", name)
    if before_start:
        before_start(changed + added)
    for name in _ordered(changed + added):
        sup.call("addProcessGroup", name)
    current = conf_hashes((sup.box / "run" / "supervisord.conf").read_text(encoding="utf-8"))
    created = [n for n in added if previous.get(n) != current.get(n)]
    readded = [n for n in added if n not in created]
    states = {name: info["statename"] for name, info in sup.processes().items()}
    down = [n for n in expected if n not in changed + added and states.get(n) != "RUNNING"]
    for name in down:
        sup.call("startProcess", name, False, ok_faults=("ALREADY_STARTED",))
    lines = []
    if changed or created:
        lines.append("Recreated: " + ", ".join(_ordered(changed + created)))
    if removed:
        lines.append("Removed: " + ", ".join(_ordered(removed)))
    if not lines:
        lines.append("No configuration changes detected")
    if readded or down:
        lines.append("Started: " + ", ".join(_ordered(readded + down)))
    return lines


def _aof_was_on(box: Path) -> bool:
    """Whether the redis.conf of the last apply had appendonly on."""
    path = box / "conf" / "redis.conf"
    return path.exists() and "appendonly yes" in path.read_text(encoding="utf-8").splitlines()


def seed_aof(box: Path) -> None:
    """Turning appendonly on: redis would start empty (with AOF on it reads only the AOF), so
    seed the AOF from the RDB that the stopped redis saved, in Redis 7's own manifest layout.

    An AOF left from an earlier time with AOF on is stale (the RDB is newer): it is kept aside
    as appendonlydir.stale.
    """
    data = box / "data" / "redis"
    aof, dump = data / "appendonlydir", data / "dump.rdb"
    if aof.exists():
        shutil.rmtree(data / "appendonlydir.stale", ignore_errors=True)
        aof.rename(data / "appendonlydir.stale")
    if not dump.exists():
        return
    aof.mkdir()
    shutil.copy2(dump, aof / "appendonly.aof.1.base.rdb")
    (aof / "appendonly.aof.manifest").write_text("file appendonly.aof.1.base.rdb seq 1 type b\n")


def drop_stale(box: Path, expected: list[str]) -> None:
    """A disabled replica's rendered config (it holds the password) goes with it."""
    if "replica" not in expected:
        (box / "conf" / "replica.conf").unlink(missing_ok=True)


def _ordered(names: list[str]) -> list[str]:
    return sorted(set(names), key=lambda n: SERVICES.index(n) if n in SERVICES else len(SERVICES))


def _confirm() -> bool:
    return input("Apply config.json to this box? [y/N] ").strip().lower() in ("y", "yes")
