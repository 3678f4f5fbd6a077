"""Called by install.sh: create a box's directories and, for a new box, its config.json with
free ports picked now (so several boxes run side by side)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import re
import socket
import sys
from pathlib import Path

from kvlib.config import DEFAULTS, PORT_KEYS, validate

DIRS = {"conf": 0o700, "secrets": 0o700, "data": 0o755, "backups": 0o700, "logs": 0o755,
        "run": 0o755}  # fmt: skip
# The box path is written unquoted into nginx.conf and redis.conf.
SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+-]*")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (all held until all are picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def default_config() -> dict[str, dict[str, object]]:
    cfg = copy.deepcopy(DEFAULTS)
    for (section, key), port in zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True):
        cfg[section][key] = port
    validate(cfg)
    return cfg


def main() -> int:
    parser = argparse.ArgumentParser(prog="kvlib.install")
    parser.add_argument("--box", type=Path, required=True)
    box = parser.parse_args().box.resolve()
    if not SAFE_PATH.fullmatch(str(box)):
        print(f"install: {box}: use letters, digits and ._/+- only", file=sys.stderr)
        return 2
    for name, mode in DIRS.items():
        (box / name).mkdir(mode=mode, parents=True, exist_ok=True)
        (box / name).chmod(mode)
    cfg_path = box / "config.json"
    if cfg_path.exists():
        print(f"Updated the kvfront code in {box}; config.json, .env and data kept")
        return 0
    cfg_path.write_text(json.dumps(default_config(), indent=2) + "\n", encoding="utf-8")
    print(f"Installed a kvfront box in {box}; next: {box}/kvctl apply -y")
    return 0


if __name__ == "__main__":
    sys.exit(main())
