"""run/state.json: what the last apply set up (no secrets); status and lifecycle read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kvlib import VERSION
from kvlib.config import expected_services


def from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    services = expected_services(cfg)
    return {
        "version": VERSION,
        "services": services,
        "ports": {name: cfg[name]["port"] for name in services},
        "tls": cfg["front"]["tls"],
    }


def load(box: Path) -> dict[str, Any] | None:
    """The last applied state, or None when the box was never applied."""
    try:
        return dict(json.loads((box / "run" / "state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def front_url(st: dict[str, Any]) -> str:
    return f"{'https' if st['tls'] else 'http'}://127.0.0.1:{st['ports']['front']}"
