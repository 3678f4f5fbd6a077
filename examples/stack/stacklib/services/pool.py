"""The pool: `GET /status` -> {tier, ready}. Its tier comes from its own `--tier` flag, so the
reported tier proves which settings the running process was actually started with."""

from __future__ import annotations

import time
from typing import Any

from stacklib import SERVICE_VERSIONS
from stacklib.net import FetchError, JsonHandler, fetch_json, log, serve
from stacklib.ready import announce
from stacklib.services.common import start


def main() -> None:
    rt = start("pool", {"--tier": {"required": True, "choices": ["main", "mini", "nano"]}})
    state: dict[str, Any] = {"ready": False}
    token = rt.node_token()

    def status(req: JsonHandler) -> tuple[int, Any]:
        return 200, {
            "tier": rt.args.tier,
            "ready": state["ready"],
            "version": SERVICE_VERSIONS["pool"],
        }

    serve("127.0.0.1", int(rt.settings["port"]), {("GET", "/status"): status})
    log("pool", f"tier {rt.args.tier}: waiting for the node at {_redact(rt.settings['node_url'])}")
    announce(rt.box, rt.name)
    while True:
        try:
            ready = bool(fetch_json(rt.settings["node_url"] + "/info", token)["synchronized"])
        except (FetchError, KeyError, TypeError):
            ready = False
        if ready != state["ready"]:
            log("pool", "ready" if ready else "not ready: node unreachable or not synchronized")
        state["ready"] = ready
        time.sleep(max(0.25, min(0.5, rt.scaled(1.0))))


def _redact(url: str) -> str:
    """Never log userinfo from a remote_url."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.split("@")[-1]


if __name__ == "__main__":
    main()
