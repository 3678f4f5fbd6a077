"""Small HTTP helpers shared by the services and by `stackctl status`."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

Route = Callable[["JsonHandler"], tuple[int, Any]]


class FetchError(Exception):
    """A peer did not answer with JSON in time (down, stopped, or wrong token)."""


def split_userinfo(url: str) -> tuple[str, str | None]:
    """Strip `user:pass@` from a URL and return it with a Basic auth header value, if any."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    raw = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, "Basic " + base64.b64encode(raw).decode()


def fetch_json(
    url: str,
    token: str = "",
    timeout: float = 1.0,
    body: dict[str, Any] | None = None,
    cafile: str | None = None,
) -> Any:
    """GET (or POST `body`) and decode JSON; any failure becomes FetchError with a short reason."""
    clean, basic = split_userinfo(url)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(clean, data=data, method="POST" if data else "GET")
    if data:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    elif basic:
        req.add_header("Authorization", basic)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPException: a peer stopped mid-answer (IncompleteRead) is a failure like any other
        reason = getattr(exc, "reason", exc)
        raise FetchError(str(reason) or type(exc).__name__) from None


def bearer_ok(header: str | None, secret: str) -> bool:
    """Accept `Bearer SECRET` or Basic auth whose password is SECRET."""
    if not header or not secret:
        return False
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        return value.strip() == secret
    if scheme == "Basic":
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return decoded.partition(":")[2] == secret
    return False


class JsonHandler(BaseHTTPRequestHandler):
    """Dispatches GET/POST paths to routes; answers JSON; keeps request noise out of logs."""

    routes: ClassVar[dict[tuple[str, str], Route]] = {}

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        route = self.routes.get((method, self.path.split("?")[0]))
        code, payload = route(self) if route else (404, {"error": "not found"})
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        """The request body as JSON, or None when absent or malformed."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return None

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request lines: workers post every interval."""


def serve(
    bind: str,
    port: int,
    routes: dict[tuple[str, str], Route],
    ssl_context: ssl.SSLContext | None = None,
) -> ThreadingHTTPServer:
    """Start a threaded JSON server in the background and return it."""
    handler = type("Handler", (JsonHandler,), {"routes": routes})
    server = ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks (state flushes) run on stop."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def log(name: str, message: str) -> None:
    """One line to stdout, which supervisord writes to logs/<service>.log."""
    print(f"{name}: {message}", file=sys.stdout, flush=True)
