"""`kvctl status`: every expected service's state from supervisord plus a real answer.

Exit 0 healthy, 1 degraded or down, 2 unknown (never applied, .env unreadable, or
supervisord not answering sensibly).
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kvlib import VERSION, resp, secrets, state
from kvlib.config import ConfigError
from kvlib.supd import Supervisor, SupervisorDown

PROBE_TIMEOUT_S = 1.0
EXIT = {"healthy": 0, "degraded": 1, "down": 1, "unknown": 2}


def collect(box: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {"overall": "unknown", "reasons": [], "services": [], "version": VERSION}
    st = state.load(box)
    if st is None:
        doc["reasons"] = ["never applied (run kvctl apply)"]
        return doc
    doc["front"] = {"url": state.front_url(st)}
    st = dict(st, cafile=str(box / "secrets" / secrets.CERT))
    try:
        password = secrets.read_env(box).get("REDIS_PASSWORD", "")
    except (OSError, ConfigError) as exc:
        doc["reasons"] = [f".env unreadable: {type(exc).__name__}"]
        return doc
    try:
        infos = Supervisor(box).processes()
    except SupervisorDown:
        doc["overall"] = "down"
        doc["services"] = [
            {"name": n, "state": "exited", "pid": None, "detail": "supervisord not running"}
            for n in st["services"]
        ]
        doc["reasons"] = ["supervisord not running"]
        return doc
    except (OSError, xmlrpc.client.Error, http.client.HTTPException) as exc:
        doc["reasons"] = [f"supervisord not answering: {type(exc).__name__}"]
        return doc
    with ThreadPoolExecutor(max_workers=len(st["services"])) as pool:
        futures = [pool.submit(_service, n, infos.get(n), st, password) for n in st["services"]]
        results = [f.result() for f in futures]
    _blame_redis(results)
    for entry, reasons in results:
        doc["services"].append(entry)
        doc["reasons"] += reasons
    doc["overall"] = "degraded" if doc["reasons"] else "healthy"
    return doc


def _service(
    name: str, info: dict[str, Any] | None, st: dict[str, Any], password: str
) -> tuple[dict[str, Any], list[str]]:
    """(the services entry, reasons) for one expected service."""
    if info is None:
        return {"name": name, "state": "missing", "pid": None}, [f"{name}: missing"]
    if info["statename"] not in ("RUNNING", "STARTING"):
        entry = {"name": name, "state": "exited", "pid": None,
                 "detail": info["statename"].lower(), "exitstatus": info["exitstatus"]}  # fmt: skip
        return entry, [f"{name}: exited"]
    entry = {"name": name, "state": "running", "pid": info["pid"]}
    problem, extra = PROBES[name](st, password)
    if problem is not None:
        entry["state"], entry["detail"] = "unhealthy", problem
        return entry, [f"{name}: {problem}"]
    return entry, extra


def _blame_redis(results: list[tuple[dict[str, Any], list[str]]]) -> None:
    """webdis answers nothing while redis hangs: then the api is running, redis is the fault."""
    by_name = {entry["name"]: (entry, reasons) for entry, reasons in results}
    redis_ok = by_name.get("redis", ({"state": ""}, []))[0]["state"] == "running"
    api = by_name.get("api")
    if api and not redis_ok and api[0]["state"] == "unhealthy":
        api[0]["state"] = "running"
        del api[0]["detail"]
        api[1][:] = ["api: no answer through webdis while redis is down"]


def _probe_redis(st: dict[str, Any], password: str) -> tuple[str | None, list[str]]:
    try:
        answer = resp.command(st["ports"]["redis"], password, "PING", timeout=PROBE_TIMEOUT_S)
    except resp.RespError as exc:
        return f"PING failed: {exc}", []
    return (None, []) if answer == "PONG" else (f"PING answered {answer[:40]!r}", [])


def _probe_replica(st: dict[str, Any], password: str) -> tuple[str | None, list[str]]:
    port = st["ports"]["replica"]
    try:
        info = resp.info_fields(resp.command(port, password, "INFO", "replication"))
    except resp.RespError as exc:
        return f"INFO failed: {exc}", []
    if info.get("role") != "slave":
        return None, [f"replica: role is {info.get('role')}"]
    if info.get("master_link_status") != "up":
        return None, ["replica: link to the primary is down"]
    return None, []


def _probe_api(st: dict[str, Any], password: str) -> tuple[str | None, list[str]]:
    code, body = get(f"http://127.0.0.1:{st['ports']['api']}/PING")
    if code is None:
        return f"no answer: {body}", []
    if code != 200 or body.get("PING") != [True, "PONG"]:
        return None, [f"api: redis not reachable through webdis (HTTP {code})"]
    return None, []


def _probe_front(st: dict[str, Any], password: str) -> tuple[str | None, list[str]]:
    base, cafile = state.front_url(st), st["cafile"] if st["tls"] else None
    code, body = get(f"{base}/healthz", cafile)
    if code is None:
        return f"no answer: {body}", []
    if code != 200 or body.get("status") != "ok":
        return f"/healthz answered HTTP {code}", []
    code, body = get(f"{base}/api/PING", cafile)
    if code is None:
        return None, [f"front: /api/PING through the front got no answer: {body}"]
    if code != 200 or body.get("PING") != [True, "PONG"]:
        return None, [f"front: /api/PING through the front failed (HTTP {code})"]
    return None, []


PROBES = {
    "redis": _probe_redis,
    "replica": _probe_replica,
    "api": _probe_api,
    "front": _probe_front,
}


def get(url: str, cafile: str | None = None) -> tuple[int | None, Any]:
    """(HTTP code, JSON body or {}) or (None, why) when nothing answered in time.

    HTTPS is verified against the box's own certificate (secrets/front.crt).
    """
    ctx = None
    if cafile:
        try:
            ctx = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            return None, f"cannot load {cafile}: {type(exc).__name__}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S, context=ctx) as reply:
            return reply.status, _json(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason) or type(exc).__name__


def _json(data: bytes) -> Any:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def render_text(doc: dict[str, Any]) -> str:
    lines = []
    for svc in doc["services"]:
        pid = f"pid {svc['pid']}" if svc["pid"] else ""
        detail = f"({svc['detail']})" if svc.get("detail") else ""
        parts = (f"{svc['name']:<8}", f"{svc['state']:<9}", pid, detail)
        lines.append(" ".join(p for p in parts if p))
    lines += [f"reason: {r}" for r in doc["reasons"]]
    lines.append(f"overall: {doc['overall']}")
    return "\n".join(lines)
