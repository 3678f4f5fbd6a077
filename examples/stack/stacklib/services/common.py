"""What every service does at start: parse `--box`, load its rendered settings and .env."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stacklib import envfile
from stacklib.net import exit_on_sigterm


@dataclass
class Runtime:
    """A service's view of its box: its settings file, the .env, and config.json."""

    name: str
    box: Path
    settings: dict[str, Any]
    env: dict[str, str]
    args: argparse.Namespace

    def scaled(self, seconds: float) -> float:
        """Every timing in the stack scales with stack.time_scale."""
        return seconds * float(self.settings["time_scale"])

    def node_token(self) -> str:
        """The bearer this service sends to the node: the local password or remote_token."""
        if self.settings.get("node_mode") == "remote":
            cfg = json.loads((self.box / "config.json").read_text(encoding="utf-8"))
            return str(cfg.get("node", {}).get("remote_token", ""))
        return self.env.get("NODE_RPC_PASSWORD", "")


def start(default_name: str, extra: dict[str, dict[str, Any]] | None = None) -> Runtime:
    """Parse the command line and read this service's rendered settings."""
    parser = argparse.ArgumentParser(prog=default_name)
    parser.add_argument("--box", required=True, type=Path)
    parser.add_argument("--name", default=default_name)
    for flag, kwargs in (extra or {}).items():
        parser.add_argument(flag, **kwargs)
    args = parser.parse_args()
    box = args.box.resolve()
    settings = json.loads((box / "run" / f"{args.name}.json").read_text(encoding="utf-8"))
    exit_on_sigterm()
    return Runtime(args.name, box, settings, envfile.read(box / ".env"), args)
