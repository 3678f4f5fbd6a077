"""The proxy: admits workers (`POST /share`, bearer PROXY_AUTH_TOKEN) and counts their shares.

Fail-closed: with an empty token it refuses to start. When the node is unreachable for longer
than the debounce it stops admitting, and readmits as soon as the node answers again.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from stacklib import SERVICE_VERSIONS
from stacklib.net import FetchError, JsonHandler, bearer_ok, fetch_json, log, serve
from stacklib.ready import announce
from stacklib.services.common import Runtime, start

SHARE_S = 1.0
MIN_SHARE_S = 0.25


def share_interval(rt: Runtime) -> float:
    """Workers submit every 1 s x time_scale, but not faster than 4/s (keeps tests light)."""
    return max(MIN_SHARE_S, rt.scaled(SHARE_S))


class Admission:
    """Node reachability with a debounce, plus share and worker bookkeeping."""

    def __init__(self, rt: Runtime) -> None:
        self.debounce = rt.scaled(float(rt.settings["debounce_s"]))
        self.online_window = max(1.0, share_interval(rt) * 5)
        self.last_ok = time.monotonic()
        self.admitting = True
        self.node_reachable = True
        self.shares = 0
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.ignores_node = _defect(rt, "proxy_ignores_node")

    def node_seen(self, ok: bool) -> None:
        now = time.monotonic()
        self.node_reachable = ok
        if ok:
            self.last_ok = now
        admitting = ok or now - self.last_ok <= self.debounce or self.ignores_node
        if admitting != self.admitting:
            log(
                "proxy",
                "node back: readmitting workers"
                if admitting
                else "node unreachable: not admitting",
            )
        self.admitting = admitting

    def share(self, worker: str) -> bool:
        with self.lock:
            if not self.admitting:
                return False
            self.shares += 1
            self.seen[worker] = time.monotonic()
            return True

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            online = sum(1 for t in self.seen.values() if now - t <= self.online_window)
            online = online if self.admitting else 0
            return {
                "admitting": self.admitting,
                "node_reachable": self.node_reachable,
                "workers_online": online,
                "shares_total": self.shares,
                "version": SERVICE_VERSIONS["proxy"],
            }


def main() -> None:
    rt = start("proxy")
    token = rt.env.get("PROXY_AUTH_TOKEN", "")
    if not token and not _defect(rt, "start_proxy_without_token"):
        log("proxy", "refusing to start an unauthenticated proxy control API")
        sys.exit(1)
    if _defect(rt, "leak_token_to_log"):
        log("proxy", f"debug: auth token is {token}")
    adm = Admission(rt)

    def share(req: JsonHandler) -> tuple[int, Any]:
        if not bearer_ok(req.headers.get("Authorization"), token):
            return 401, {"error": "bad token"}
        body = req.read_json()
        worker = str(body.get("worker", "?")) if isinstance(body, dict) else "?"
        if not adm.share(worker):
            return 503, {"error": "not admitting: node unreachable"}
        return 200, {"accepted": True}

    routes = {("POST", "/share"): share, ("GET", "/stats"): lambda req: (200, adm.stats())}
    serve("127.0.0.1", int(rt.settings["port"]), routes)
    log("proxy", f"admitting workers on 127.0.0.1:{rt.settings['port']}")
    announce(rt.box, rt.name)
    node_token = rt.node_token()
    while True:
        try:
            fetch_json(rt.settings["node_url"] + "/info", node_token, timeout=0.5)
            adm.node_seen(True)
        except FetchError:
            adm.node_seen(False)
        time.sleep(max(0.25, min(0.5, rt.scaled(1.0))))


def _defect(rt: Runtime, switch: str) -> bool:
    """A defect switch of defects.json (opt-in, for gate's own tests), e.g.
    `proxy_ignores_node`: keep admitting with the node down, whatever the debounce."""
    if not rt.box.joinpath("defects.json").exists():
        return False
    from stacklib.defects import load

    return bool(load(rt.box).get(switch))


if __name__ == "__main__":
    main()
