"""Just enough of the redis protocol (RESP2) for status: AUTH, PING, INFO."""

from __future__ import annotations

import socket
from typing import Any


class RespError(Exception):
    """No usable answer: refused, timed out, or an error reply."""


def command(port: int, password: str, *args: str, timeout: float = 1.0) -> str:
    """AUTH, then one command; its reply as text (bulk or simple string)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            reader = sock.makefile("rb")
            sock.sendall(_encode("AUTH", password) + _encode(*args))
            try:
                _reply(reader)
            except RespError as exc:
                raise RespError(f"AUTH refused ({exc})") from None
            return _reply(reader)
    except OSError as exc:
        raise RespError(str(exc) or type(exc).__name__) from None


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(reader: Any) -> str:
    line = reader.readline()
    if not line:
        raise RespError("connection closed")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RespError(rest.split(" ", 1)[0])  # the error class only (never echo input)
    if kind == b":":
        return rest
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return ""
        return str(reader.read(size + 2)[:-2].decode(errors="replace"))
    raise RespError(f"unexpected reply {kind!r}")


def info_fields(text: str) -> dict[str, str]:
    """`INFO` text as a dict."""
    return dict(
        line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")
    )
