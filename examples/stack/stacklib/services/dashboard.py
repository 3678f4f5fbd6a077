"""The dashboard: `GET /api/state` (bearer DASHBOARD_TOKEN) gathered live from the other
services. 127.0.0.1 only; HTTPS with the box's self-signed certificate when secure."""

from __future__ import annotations

import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stacklib import VERSION
from stacklib.net import FetchError, JsonHandler, bearer_ok, fetch_json, log, serve
from stacklib.ready import announce
from stacklib.services.common import Runtime, start


def gather(rt: Runtime, node_token: str) -> dict[str, Any]:
    """Ask node, pool, proxy and cache in parallel; a silent peer reads as null."""
    s = rt.settings
    urls = {
        "node": (s["node_url"] + "/info", node_token),
        "pool": (s["pool_url"] + "/status", ""),
        "proxy": (s["proxy_url"] + "/stats", ""),
    }
    if s["cache_url"]:
        urls["cache"] = (s["cache_url"] + "/health", "")

    def one(item: tuple[str, tuple[str, str]]) -> tuple[str, Any]:
        name, (url, token) = item
        try:
            return name, fetch_json(url, token, timeout=0.4)
        except FetchError:
            return name, None

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(pool.map(one, urls.items()))
    return shape(rt, got)


def shape(rt: Runtime, got: dict[str, Any]) -> dict[str, Any]:
    """The /api/state document of docs/sample-stack.md."""
    node = got.get("node") or {}
    pool = got.get("pool") or {}
    proxy = got.get("proxy") or {}
    cache_enabled = bool(rt.settings["cache_url"])
    return {
        "node": {
            "mode": rt.settings["node_mode"],
            "synchronized": node.get("synchronized", False),
            "height": node.get("height"),
            "target_height": node.get("target_height"),
            "compact": node.get("compact"),
        },
        "pool": {"tier": pool.get("tier"), "ready": pool.get("ready", False)},
        "proxy": {"admitting": proxy.get("admitting", False)},
        "workers": {"online": proxy.get("workers_online", 0)},
        "shares": {"total": proxy.get("shares_total", 0)},
        "cache": {
            "enabled": cache_enabled,
            "healthy": bool(got.get("cache")) if cache_enabled else None,
        },
        "strict": bool(rt.settings["strict"]),
        "version": VERSION,
    }


def tls_context(rt: Runtime) -> ssl.SSLContext:
    """Server context from secrets/dashboard.crt + .key, minted by apply."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    secrets = rt.box / "secrets"
    ctx.load_cert_chain(secrets / "dashboard.crt", secrets / "dashboard.key")
    return ctx


def main() -> None:
    rt = start("dashboard")
    token = rt.env.get("DASHBOARD_TOKEN", "")
    node_token = rt.node_token()

    def state(req: JsonHandler) -> tuple[int, Any]:
        if not bearer_ok(req.headers.get("Authorization"), token):
            return 401, {"error": "bearer token required"}
        return 200, gather(rt, node_token)

    context = tls_context(rt) if rt.settings["secure"] else None
    serve("127.0.0.1", int(rt.settings["port"]), {("GET", "/api/state"): state}, context)
    scheme = "https" if context else "http"
    log("dashboard", f"serving {scheme}://127.0.0.1:{rt.settings['port']}/api/state")
    announce(rt.box, rt.name)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
