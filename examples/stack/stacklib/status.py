"""`stackctl status`: supervisord's view plus a real probe of every service.

A process supervisord calls RUNNING can still be frozen (SIGSTOP) or deaf; only an answer to a
probe within a short timeout (or a fresh heartbeat, for workers) counts as `running`.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stacklib import VERSION, config, envfile
from stacklib.net import FetchError, fetch_json
from stacklib.ready import announced, mark
from stacklib.supd import Supervisor, SupervisorDown

PROBE_TIMEOUT_S = 1.0
EXIT_HEALTHY, EXIT_DEGRADED, EXIT_UNKNOWN = 0, 1, 2
MARK_POLL_S = 0.02
"""A round of ready marks is an open and a read per service not yet marked: tens of
microseconds of CPU every 20 ms."""
RECHECK_S, BACKSTOP_S = 0.25, (1.0, 8.0)
"""The full status (an HTTP probe of every service) runs the moment the last service is
marked, then every RECHECK_S while it is still not healthy. While some are unmarked it
runs anyway, from every 1 s backing off to every 8 s: a service that never marks (or a
mark that lies) costs lag, never a wrong answer."""


def probe_targets(
    box: Path, cfg: dict[str, Any], env: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """(url, bearer) per service with a port; the node uses the same URL and token as the pool."""
    node_token = env.get("NODE_RPC_PASSWORD", "")
    if cfg["node"]["mode"] == "remote":
        node_token = cfg["node"]["remote_token"]
    scheme = "https" if cfg["dashboard"]["secure"] else "http"
    targets = {
        "node": (config.node_url(cfg) + "/info", node_token),
        "pool": (f"http://127.0.0.1:{cfg['pool']['port']}/status", ""),
        "proxy": (f"http://127.0.0.1:{cfg['proxy']['port']}/stats", ""),
        "dashboard": (
            f"{scheme}://127.0.0.1:{cfg['dashboard']['port']}/api/state",
            env.get("DASHBOARD_TOKEN", ""),
        ),
    }
    if cfg["extras"]["cache"]:
        targets["cache"] = (f"http://127.0.0.1:{cfg['extras']['cache_port']}/health", "")
    return targets


def probe_all(box: Path, cfg: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Probe every target in parallel; a value is the JSON answer or a FetchError."""
    cafile = str(box / "secrets" / "dashboard.crt") if cfg["dashboard"]["secure"] else None

    def one(item: tuple[str, tuple[str, str]]) -> tuple[str, Any]:
        name, (url, token) = item
        try:
            ca = cafile if name == "dashboard" else None
            return name, fetch_json(url, token, timeout=PROBE_TIMEOUT_S, cafile=ca)
        except FetchError as exc:
            return name, exc

    targets = probe_targets(box, cfg, env)
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return dict(pool.map(one, targets.items()))


def heartbeat_age(box: Path, name: str) -> float | None:
    """Seconds since a worker last touched its heartbeat file (None when it never did)."""
    try:
        return time.time() - (box / "run" / f"{name}.heartbeat").stat().st_mtime
    except OSError:
        return None


def service_state(box: Path, cfg: dict[str, Any], name: str, info: dict[str, Any] | None,
                  probes: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One entry of `services`: state, pid, start time and why it is not running, if so."""
    if info is None:
        return {"state": "missing", "pid": None, "started": None}
    entry: dict[str, Any] = {"pid": info["pid"] or None, "started": float(info["start"]) or None}
    if info["statename"] != "RUNNING":
        entry.update(state="exited", pid=None, detail=info["statename"].lower())
        entry["exitstatus"] = info.get("exitstatus")
        return entry
    problem = probe_problem(box, cfg, name, probes)
    entry["state"] = "unhealthy" if problem else "running"
    if problem:
        entry["detail"] = problem
    return entry


def unexpected_state(info: dict[str, Any]) -> dict[str, Any]:
    """A program supervisord runs that the config does not ask for (config edited, not applied)."""
    running = info["statename"] == "RUNNING"
    return {
        "state": "running" if running else "exited",
        "pid": info["pid"] if running else None,
        "started": float(info["start"]) or None,
        "detail": "not in config (run apply)",
        "unexpected": True,
    }


def probe_problem(box: Path, cfg: dict[str, Any], name: str, probes: dict[str, Any]) -> str:
    """Why a RUNNING process does not count as healthy, or '' when it answers."""
    if name.startswith("worker-"):
        age = heartbeat_age(box, name)
        limit = max(2.0, 5 * float(cfg["stack"]["time_scale"]))
        if age is None or age > limit:
            return "no heartbeat" if age is None else f"heartbeat {age:.1f}s old"
        return ""
    result = probes.get(name)
    if isinstance(result, FetchError):
        return f"not answering: {result}"
    return ""


def verdict(cfg: dict[str, Any], services: dict[str, Any], probes: dict[str, Any]) -> list[str]:
    """Reasons the box is not healthy; empty means healthy."""
    reasons = [
        f"{n}: {s['state']}"
        for n, s in services.items()
        if s["state"] != "running" and not s.get("unexpected")
    ]
    reasons += [
        f"{n}: running but not in config" for n, s in services.items() if s.get("unexpected")
    ]
    node = probes.get("node")
    if not isinstance(node, dict):
        reasons.append(f"node unreachable: {node}")
    elif not node.get("synchronized"):
        reasons.append(f"node not synchronized ({node.get('height')}/{node.get('target_height')})")
    proxy = probes.get("proxy")
    if isinstance(proxy, dict) and not proxy.get("admitting"):
        reasons.append("proxy not admitting workers")
    if cfg["dashboard"]["strict"]:
        pool = probes.get("pool")
        if not (isinstance(pool, dict) and pool.get("ready")):
            reasons.append("pool not ready (dashboard.strict)")
    return reasons


def collect(box: Path) -> tuple[int, dict[str, Any]]:
    """The status document and exit code; config trouble means 'could not determine' (2)."""
    try:
        cfg = config.load(box)
    except config.ConfigError as exc:
        return EXIT_UNKNOWN, {"overall": "unknown", "reasons": [str(exc)], "services": {},
                              "expected": [], "node": None, "version": VERSION}  # fmt: skip
    expected = config.expected_services(cfg)
    doc: dict[str, Any] = {
        "overall": "unknown",
        "reasons": [],
        "services": {},
        "expected": expected,
    }
    doc["node"] = {"endpoint": config.node_url(cfg), "synchronized": None}
    doc["version"] = VERSION
    try:
        infos = Supervisor(box).processes()
    except SupervisorDown:
        doc["services"] = {n: {"state": "exited", "pid": None, "started": None} for n in expected}
        doc.update(overall="down", reasons=["supervisord is not running (stackctl up)"])
        return EXIT_DEGRADED, doc
    except OSError as exc:
        doc["reasons"] = [f"supervisord did not answer: {exc}"]
        return EXIT_UNKNOWN, doc
    probes = probe_all(box, cfg, envfile.read(box / ".env"))
    services = {n: service_state(box, cfg, n, infos.get(n), probes) for n in expected}
    services.update({n: unexpected_state(info) for n, info in infos.items() if n not in expected})
    node = probes.get("node")
    doc["node"]["synchronized"] = (
        bool(node.get("synchronized")) if isinstance(node, dict) else False
    )
    pool = probes.get("pool")
    doc["pool"] = {k: pool.get(k) for k in ("tier", "ready")} if isinstance(pool, dict) else None
    doc["services"] = services
    doc["reasons"] = verdict(cfg, services, probes)
    doc["overall"] = "degraded" if doc["reasons"] else "healthy"
    return (EXIT_DEGRADED if doc["reasons"] else EXIT_HEALTHY), doc


def render_text(doc: dict[str, Any]) -> str:
    """Human-readable status: one line per service, then the verdict."""
    lines = []
    for name, svc in doc["services"].items():
        pid = f"pid {svc['pid']}" if svc.get("pid") else ""
        detail = svc.get("detail", "")
        lines.append(f"{name:<12} {svc['state']:<10} {pid:<12} {detail}".rstrip())
    lines.append(f"overall: {doc['overall']}")
    lines += [f"  - {reason}" for reason in doc["reasons"]]
    return "\n".join(lines)


def wait(box: Path, timeout: float) -> tuple[int, dict[str, Any]]:
    """`status --wait`: collect's answer once it is healthy, or its last one at `timeout`.

    Polling collect itself would cost every service an HTTP probe a few times a second;
    the ready marks (stacklib/ready.py) cost an open and a read each, so they are polled."""
    deadline = time.monotonic() + timeout
    try:
        unmarked = {mark(box, name) for name in config.expected_services(config.load(box))}
    except config.ConfigError:
        return collect(box)  # says why, exit 2
    backstop = BACKSTOP_S[0]
    next_status = time.monotonic() + backstop
    while True:
        were_unmarked = bool(unmarked)
        unmarked = {path for path in unmarked if not announced(path)}
        if (were_unmarked and not unmarked) or time.monotonic() >= min(next_status, deadline):
            code, doc = collect(box)
            if code == EXIT_HEALTHY or time.monotonic() >= deadline:
                return code, doc
            backstop = RECHECK_S if not unmarked else min(2 * backstop, BACKSTOP_S[1])
            next_status = time.monotonic() + backstop
        time.sleep(MARK_POLL_S)
