"""Called by install.sh: create a box's directories and, for a fresh box, its config.json with
free ports picked now (so several boxes run side by side without fixed ports)."""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import socket
from pathlib import Path

from stacklib.config import DEFAULTS, PORT_KEYS, validate

DIRS = ("data", "backups", "logs", "run")


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free ports on 127.0.0.1 (all held until picked)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def default_config(time_scale: float) -> dict[str, dict[str, object]]:
    """DEFAULTS with every port filled in and the requested time scale."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg["stack"]["time_scale"] = time_scale
    for (section, key), port in zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True):
        cfg[section][key] = port
    validate(cfg)
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(prog="stacklib.install")
    parser.add_argument("--box", type=Path, required=True)
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    box = args.box.resolve()
    for name in DIRS:
        (box / name).mkdir(parents=True, exist_ok=True)
    cfg_path = box / "config.json"
    if cfg_path.exists():
        print(f"Updated the stack code in {box}; config.json kept")
        return
    cfg_path.write_text(json.dumps(default_config(args.time_scale), indent=2) + "\n")
    print(f"Installed a box in {box}; next: {box}/stackctl apply -y")


if __name__ == "__main__":
    main()
