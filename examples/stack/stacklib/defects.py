"""Opt-in defect switches (`defects.json`), used by gate's own tests to prove it catches them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KNOWN = (
    "rotate_secret_on_apply",
    "restart_on_every_apply",
    "fail_apply_on_tier",
    "rewrite_config_on_apply",
    "leak_token_to_log",
    "restore_does_nothing",
    "start_proxy_without_token",
    "proxy_ignores_node",
    "node_wedges_after_freeze",
)


def load(box: Path) -> dict[str, Any]:
    """The switches that are on; absent or unreadable file means none."""
    try:
        raw = json.loads((box / "defects.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {key: value for key, value in raw.items() if key in KNOWN and value}
