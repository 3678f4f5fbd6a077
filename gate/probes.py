"""Probes: the read-only ways a contract lets the gate look at a box.

Each probe is a declaration; gate/observe.py runs it on the box (through boxtool, so a
secret a probe needs is read there and never crosses the wire) and turns its answer into a
JSON value that checks search with jmespath. A field may be a value or a function of the
config under test (`Value`), so one probe follows every scenario (a port that moves, a
URL whose scheme follows a TLS switch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, TypeVar, Union
from urllib.parse import urlsplit

T = TypeVar("T")
Value = Union[T, Callable[[Mapping[str, Any]], T]]  # noqa: UP007 - a generic alias

STATUS = "status"
"""The name checks use for the status command's JSON."""


def at(value: Value[T], cfg: Mapping[str, Any]) -> T:
    """A probe field's value for this config."""
    if callable(value):
        return value(cfg)
    return value


def _always(_cfg: Mapping[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Status:
    """The stack's status command: its exit code is the stack's own verdict (0 healthy) and
    its JSON (an object or a list) is probe `status`."""

    command: str = "status --json"
    name: str = STATUS
    applies: Callable[[Mapping[str, Any]], bool] = _always
    wait: str | None = None
    """The status command's blocking form, if the stack has one (`status --json --wait
    {timeout}`): the same output and exit codes, given once the stack is healthy, or at
    `{timeout}` seconds (filled in by the gate). Readiness then asks it (in slices of at
    most 5 s, gate/battery.py BLOCK_SLICE_S) instead of polling (docs/writing-a-matrix.md,
    Status.wait); its answer is still judged as a status read."""

    def __post_init__(self) -> None:
        if self.wait is None:
            return
        try:
            filled = self.wait.format(timeout=1)
        except (LookupError, ValueError, TypeError, AttributeError) as exc:  # {timeout[0]}...
            raise ValueError(
                f"Status.wait {self.wait!r}: only {{timeout}} is filled in ({exc})"
            ) from None
        if filled == self.wait:
            raise ValueError(f"Status.wait {self.wait!r} must say how long: put {{timeout}} in it")

    def waiting(self, seconds: float) -> str:
        """The blocking form for at most `seconds` (whole seconds, at least 1)."""
        assert self.wait is not None
        return self.wait.format(timeout=max(1, math.ceil(seconds)))


@dataclass(frozen=True)
class Header:
    """An auth header whose value is read from the env file on the box: `template` with the
    key's value in place of `{}`."""

    env_key: str
    name: str = "Authorization"
    template: str = "Bearer {}"


@dataclass(frozen=True)
class CaFile:
    """Verify the server's certificate against this CA file on the box (stack-relative)."""

    path: str


@dataclass(frozen=True)
class InsecureLoopback:
    """Do not verify the certificate: allowed for loopback URLs only, and every check
    reading the probe says so in its evidence."""


Tls = CaFile | InsecureLoopback | None


@dataclass(frozen=True)
class Http:
    """A JSON endpoint fetched on the box. With `auth`, the gate also sends the request
    without it and expects a refusal (401 or 403): the positive control of that auth."""

    name: str
    url: Value[str]
    auth: Header | None = None
    tls: Value[Tls] = None
    applies: Callable[[Mapping[str, Any]], bool] = _always
    ready: bool = True
    """Readiness waits until this endpoint answers 200 with JSON."""

    def check_tls(self, cfg: Mapping[str, Any]) -> str:
        """Why this probe's TLS declaration does not fit its URL ('' when it does)."""
        url, tls = urlsplit(at(self.url, cfg)), at(self.tls, cfg)
        if url.scheme == "https" and tls is None:
            return f"probe {self.name}: an https URL needs tls=CaFile(...) or InsecureLoopback()"
        if isinstance(tls, InsecureLoopback) and not _loopback(url.hostname or ""):
            return f"probe {self.name}: InsecureLoopback is for loopback URLs, not {url.hostname}"
        return ""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Command:
    """A read-only command run in the stack dir; `{control}` stands for the control command.

    `output`: "json", "text" (one string) or "lines" (non-empty lines, stripped). `env`
    maps a variable of the command to an env-file key: boxtool sets it on the box, so a
    secret reaches the command through its environment, never its argv."""

    name: str
    command: Value[str]
    output: str = "json"
    env: Mapping[str, str] = field(default_factory=dict)
    applies: Callable[[Mapping[str, Any]], bool] = _always

    def __post_init__(self) -> None:
        if self.output not in ("json", "text", "lines"):
            raise ValueError(f"Command probe {self.name}: output must be json, text or lines")


@dataclass(frozen=True)
class Port:
    """A TCP port on the box: {"open": connectable at `host`, "tls": speaks TLS (None when
    closed), "listening": the addresses the kernel has a listener bound to on that port}.

    `listening` is the daemon's real bind, whatever its config file says."""

    name: str
    port: Value[int]
    host: str = "127.0.0.1"
    applies: Callable[[Mapping[str, Any]], bool] = _always
    handshake: bool = True
    """Try a TLS handshake to fill `tls`. A plaintext server that waits for a full request
    line (redis) holds it to boxtool's 3 s timeout on every read: say False there."""


FILE_FORMATS = ("text", "lines", "env", "keyvalue", "json")


@dataclass(frozen=True)
class File:
    """A file on the box, parsed: "text", "lines", "env" (KEY=value), "keyvalue" (`key value`
    lines, as redis.conf) or "json". Values of secret keys and secret strings are masked."""

    name: str
    path: Value[str]
    format: str = "lines"
    applies: Callable[[Mapping[str, Any]], bool] = _always

    def __post_init__(self) -> None:
        if self.format not in FILE_FORMATS:
            raise ValueError(f"File probe {self.name}: format must be one of {FILE_FORMATS}")


Probe = Status | Http | Command | Port | File
