"""The node: serves `GET /info`; syncs on a cold start, verifies its data dir on a warm one.

The data dir holds FORMAT (`compact` or `full`) and chain.json. A node never opens a data dir
of the other format: that is the stack's destructive axis, which `apply` guards too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stacklib import SERVICE_VERSIONS
from stacklib.net import JsonHandler, bearer_ok, log, serve
from stacklib.ready import announce
from stacklib.services.common import Runtime, start

GENESIS_TARGET = 120
COLD_SYNC_S = 20.0
WARM_VERIFY_S = 2.0
BLOCK_S = 10.0
FREEZE_GAP_S = 3.0
"""A main-loop pass this late means the process was frozen (SIGSTOP) in between."""


class Chain:
    """Height bookkeeping: a cold start climbs to the target, a warm one verifies first."""

    def __init__(self, rt: Runtime, stored: int | None) -> None:
        self.rt = rt
        self.cold = stored is None
        self.base = GENESIS_TARGET if stored is None else max(stored, 1)
        self.began = time.monotonic()
        self.phase_s = rt.scaled(COLD_SYNC_S if self.cold else WARM_VERIFY_S)
        self.lock = threading.Lock()

    def synchronized(self) -> bool:
        return time.monotonic() - self.began >= self.phase_s

    def until_synchronized(self) -> float:
        """Seconds left until synchronized (0 or less once it is)."""
        return self.phase_s - (time.monotonic() - self.began)

    def target(self) -> int:
        """The network height: grows one block per BLOCK_S (scaled) after the start."""
        return self.base + int((time.monotonic() - self.began) / self.rt.scaled(BLOCK_S))

    def height(self) -> int:
        elapsed = time.monotonic() - self.began
        if self.synchronized():
            return self.target()
        if self.cold:
            return int(self.base * elapsed / self.phase_s)
        return self.base

    def info(self) -> dict[str, Any]:
        return {
            "height": self.height(),
            "target_height": self.target(),
            "synchronized": self.synchronized(),
            "compact": bool(self.rt.settings["compact"]),
            "node_id": node_id(self.rt.box),
            "version": SERVICE_VERSIONS["node"],
        }


def node_id(box: Path) -> str:
    """A stable identity derived from secrets/node.key (never the key itself)."""
    try:
        return hashlib.sha256((box / "secrets" / "node.key").read_bytes()).hexdigest()[:16]
    except OSError:
        return "anonymous"


def open_data_dir(data: Path, want: str) -> int | None:
    """Check FORMAT (writing it into an empty dir) and return the stored height, if any."""
    data.mkdir(parents=True, exist_ok=True)
    fmt_file = data / "FORMAT"
    if not fmt_file.exists():
        fmt_file.write_text(want + "\n", encoding="utf-8")
    found = fmt_file.read_text(encoding="utf-8").strip()
    if found != want:
        log("node", f"refusing to open a {found} data dir as {want}: {data}")
        sys.exit(3)
    try:
        chain = json.loads((data / "chain.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if chain.get("format") != want:
        log("node", f"chain.json in {data} is not {want}; refusing to start")
        sys.exit(3)
    return int(chain["height"])


def save(data: Path, chain: Chain) -> None:
    """Persist the height atomically; only once synchronized (a partial sync is not kept)."""
    if not chain.synchronized():
        return
    payload: dict[str, Any] = {"format": _fmt(chain.rt), "height": chain.height()}
    if _fmt(chain.rt) == "full":
        payload["blocks"] = [
            f"{h:08x}" for h in range(max(0, payload["height"] - 16), payload["height"])
        ]
    tmp = data / ".chain.json.tmp"
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, data / "chain.json")


def _wedges(rt: Runtime) -> bool:
    """The `node_wedges_after_freeze` defect switch (opt-in, for gate's own tests): after a
    SIGSTOP/SIGCONT the node never answers /info again (a stack that never recovers)."""
    from stacklib.defects import load

    return bool(load(rt.box).get("node_wedges_after_freeze"))


def _fmt(rt: Runtime) -> str:
    return "compact" if rt.settings["compact"] else "full"


def main() -> None:
    rt = start("node")
    data = Path(rt.settings["data_dir"])
    chain = Chain(rt, open_data_dir(data, _fmt(rt)))
    password = rt.env.get("NODE_RPC_PASSWORD", "")
    wedged = threading.Event()

    def info(req: JsonHandler) -> tuple[int, Any]:
        if wedged.is_set():  # the defect: a lock never released after the thaw
            threading.Event().wait()
        header = req.headers.get("Authorization")
        if header is not None and not bearer_ok(header, password):
            return 401, {"error": "bad credentials"}
        return 200, chain.info()

    routes = {("GET", "/info"): info, ("GET", "/health"): lambda req: (200, {"ok": True})}
    serve(rt.settings["bind"], int(rt.settings["port"]), routes)
    kind = "cold start: syncing" if chain.cold else "warm start: verifying data dir"
    log("node", f"listening on {rt.settings['bind']}:{rt.settings['port']} ({_fmt(rt)}); {kind}")
    announced = False
    wedges = _wedges(rt)
    last = time.monotonic()
    try:
        while True:
            # Until it is announced, wake at the sync moment itself: the log line says when
            # the node became ready (within a few ms), which the readiness bench measures
            # gate against (bench/readiness_lag.py).
            time.sleep(0.5 if announced else min(0.5, max(0.005, chain.until_synchronized())))
            now = time.monotonic()
            frozen, last = now - last > FREEZE_GAP_S, now
            if wedges and frozen and not wedged.is_set():
                log("node", "thawed after a freeze: wedged (defect node_wedges_after_freeze)")
                wedged.set()
            if chain.synchronized() and not announced:
                log("node", f"synchronized at height {chain.height()}")
                announce(rt.box, rt.name)
                announced = True
            save(data, chain)
    finally:
        save(data, chain)


if __name__ == "__main__":
    main()
