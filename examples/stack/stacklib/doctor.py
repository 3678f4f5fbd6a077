"""`stackctl doctor`: one OK/FAIL line per check, so a human (or gate) sees what is wrong."""

from __future__ import annotations

import importlib.util
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stacklib import config, envfile
from stacklib.status import collect

Check = tuple[bool, str]


def checks(box: Path) -> Iterator[Check]:
    """Yield (ok, message); stops early when config.json is unusable."""
    yield (
        importlib.util.find_spec("supervisor") is not None,
        f"python {sys.executable} has supervisor",
    )
    try:
        cfg = config.load(box)
    except config.ConfigError as exc:
        yield False, f"config.json: {exc}"
        return
    yield True, "config.json is valid"
    yield from env_checks(box)
    yield from secret_file_checks(box, cfg)
    yield from data_checks(box, cfg)
    yield from runtime_checks(box)


def env_checks(box: Path) -> Iterator[Check]:
    """.env exists with mode 0600 and every secret has a non-empty value."""
    path = box / ".env"
    if not path.exists():
        yield False, ".env missing (run stackctl apply)"
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    yield mode == 0o600, f".env mode is {mode:o} (want 600)"
    env = envfile.read(path)
    for key in config.SECRET_KEYS:
        yield bool(env.get(key)), f"{key} is set" if env.get(key) else f"{key} is empty or missing"


def secret_file_checks(box: Path, cfg: dict[str, Any]) -> Iterator[Check]:
    """secrets/ is private; node.key exists; the cert exists when the dashboard is secure."""
    sdir = box / "secrets"
    if not sdir.is_dir():
        yield False, "secrets/ missing (run stackctl apply)"
        return
    mode = stat.S_IMODE(sdir.stat().st_mode)
    yield mode == 0o700, f"secrets/ mode is {mode:o} (want 700)"
    yield (sdir / "node.key").is_file(), "secrets/node.key present"
    if cfg["dashboard"]["secure"]:
        yield (sdir / "dashboard.crt").is_file(), "secrets/dashboard.crt present"


def data_checks(box: Path, cfg: dict[str, Any]) -> Iterator[Check]:
    """The data dir's FORMAT matches node.compact (local mode only)."""
    if cfg["node"]["mode"] != "local":
        yield True, f"node is remote: {config.node_url(cfg).split('@')[-1]}"
        return
    fmt_file = config.data_dir(box, cfg) / "FORMAT"
    want = config.fmt_name(cfg["node"]["compact"])
    found = fmt_file.read_text().strip() if fmt_file.exists() else "none"
    yield found in (want, "none"), f"data dir format {found} (node.compact wants {want})"


def runtime_checks(box: Path) -> Iterator[Check]:
    """Services and the verdict from status; and no secret value in any log."""
    code, doc = collect(box)
    for name, svc in doc["services"].items():
        yield svc["state"] == "running", f"{name} {svc['state']} {svc.get('detail', '')}".rstrip()
    yield code == 0, f"overall {doc['overall']}" + "".join(f"; {r}" for r in doc["reasons"])
    env = envfile.read(box / ".env")
    values = [env[k] for k in config.SECRET_KEYS if env.get(k)]
    for log in sorted((box / "logs").glob("*.log")):
        text = log.read_text(encoding="utf-8", errors="replace")
        leaked = any(value in text for value in values)
        yield not leaked, f"logs/{log.name} {'contains a secret' if leaked else 'holds no secret'}"


def doctor(box: Path) -> int:
    """Print every check; exit 1 when any failed."""
    failed = 0
    for ok, message in checks(box):
        print(("OK " if ok else "FAIL ") + message)
        failed += not ok
    return 1 if failed else 0
