"""Host specs: which box to gate and how to reach it, from inventory/NAME.toml or a URL-ish spec.

    resolve_host("box", inventory)             -> inventory/box.toml
    resolve_host("inventory/box.toml", ...)    -> the same file, named explicitly
    resolve_host("root@10.0.0.5:2222", ...)    -> ad hoc; the caller supplies --dir
    resolve_host("ssh://root@box:2222", ...)   -> the same, written as a URL
    resolve_host("box-alias", ...)             -> no such file: an ~/.ssh/config alias
    local_spec("/srv/stack")                   -> --local

Everything is validated here, before the first side effect; each problem is one
UsageError line naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gate.errors import UsageError

KNOWN_HOSTS_FILE = "known_hosts"
TRANSPORTS = ("persistent", "exec")
"""How commands reach an SSH box: one persistent channel (the default), or an exec channel
each (gate/target.py)."""
MOVED = {"workers": 'run-wide values are facts now: put `workers = "2"` under [requirements]'}

DEFAULT_WATCHDOG_S = 180
"""A few minutes: well past a reconnect (the lock's grace), short of a human noticing."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_HOST = re.compile(r"[A-Za-z0-9_.:%-]+")
_KEYS = {
    "host": str,
    "port": int,
    "user": str,
    "identity": str,
    "dir": str,
    "control": str,
    "known_hosts": str,
    "transport": str,
    "reconnect_s": int,
    "watchdog_s": int,
    "requirements": dict,
}


@dataclass(frozen=True)
class HostSpec:
    """One box: where it is, how to log in, where its stack lives, what it must provide.

    `port` and `user` of None mean "let ~/.ssh/config decide, then OpenSSH's defaults".
    `dir` is empty for ad hoc specs until the caller applies `--dir`.
    """

    name: str
    host: str
    port: int | None = None
    user: str | None = None
    identity: Path | None = None
    dir: str = ""
    control: str = ""
    """The control command; empty: the contract's own (StackContract.control)."""
    known_hosts: Path | None = None
    requirements: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    local: bool = False
    transport: str = TRANSPORTS[0]
    reconnect_s: int = 0
    """How long a dropped link is retried before the run ends inconclusive (0: one try)."""
    watchdog_s: int = DEFAULT_WATCHDOG_S
    """How long a mutating run's runner may be silent (no lifeline, no command in flight)
    with the box dirty before the on-box watchdog restores the baseline (0: off)."""

    def require_dir(self) -> str:
        """The stack dir, or a usage error saying how to give one."""
        if not self.dir:
            raise UsageError(
                f"no stack dir for host {self.name!r}: "
                "pass --dir or set `dir` in its inventory file"
            )
        return self.dir


def local_spec(stack_dir: str) -> HostSpec:
    """The spec for `--local`: this machine, no SSH."""
    return HostSpec(name="local", host="localhost", dir=stack_dir, local=True)


def resolve_host(spec: str, inventory_dir: Path) -> HostSpec:
    """Turn `--host` into a HostSpec: an inventory file if one names it, else user@host[:port]."""
    spec = spec.strip()
    if not spec:
        raise UsageError("empty host spec: pass an inventory name or user@host[:port]")
    if _names_a_file(spec):
        return load_inventory(_inventory_name(spec, inventory_dir), inventory_dir)
    if _NAME.fullmatch(spec) and inventory_path(spec, inventory_dir).is_file():
        return load_inventory(spec, inventory_dir)
    return parse_address(spec, inventory_dir)


def load_inventory_spec(spec: str, inventory_dir: Path) -> HostSpec:
    """`--local --host NAME`: the box's inventory file, used on the box itself."""
    name = _inventory_name(spec, inventory_dir) if _names_a_file(spec) else spec
    return load_inventory(name, inventory_dir)


def inventory_path(name: str, inventory_dir: Path) -> Path:
    """Where the file for inventory `name` lives; the name is checked so it cannot escape."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise UsageError(
            f"bad inventory name {name!r}: use letters, digits, '.', '_' and '-' "
            f"(a file directly in {inventory_dir}/)"
        )
    return inventory_dir / f"{name}.toml"


def _names_a_file(spec: str) -> bool:
    return spec.endswith(".toml") or "/" in spec.removeprefix("ssh://")


def _inventory_name(spec: str, inventory_dir: Path) -> str:
    """`box.toml` or `inventory/box.toml` -> `box`; any other folder is refused."""
    path = Path(spec)
    if path.parent != Path(".") and path.parent.resolve() != inventory_dir.resolve():
        raise UsageError(f"{spec}: inventory files must live directly in {inventory_dir}/")
    return path.name.removesuffix(".toml")


# --- ad hoc specs ---------------------------------------------------------------------

_ADDRESS = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]+\]|[^:@]+)(?::(?P<port>[^:]*))?")


def parse_address(spec: str, inventory_dir: Path) -> HostSpec:
    """`[ssh://][user@]host[:port]`, host being an address, `[ipv6]` or an ssh config alias."""
    match = _ADDRESS.fullmatch(spec.removeprefix("ssh://"))
    if not match:
        raise UsageError(f"bad host spec {spec!r}: expected an inventory name or user@host[:port]")
    user, host, port = match["user"], match["host"].strip("[]"), match["port"]
    if user is not None and not _USER.fullmatch(user):
        raise UsageError(f"bad user {user!r} in host spec {spec!r}")
    if not _HOST.fullmatch(host):
        raise UsageError(f"bad host {host!r} in host spec {spec!r}")
    return HostSpec(
        name=spec,
        host=host,
        port=None if port is None else _parse_port(port, f"host spec {spec!r}"),
        user=user,
        known_hosts=inventory_dir / KNOWN_HOSTS_FILE,
    )


def _parse_port(text: str, where: str) -> int:
    if not text.isdigit():
        raise UsageError(f"{where}: bad port {text!r}: expected a number 1-65535")
    return _check_port(int(text), where)


def _check_port(port: int, where: str) -> int:
    if not 1 <= port <= 65535:
        raise UsageError(f"{where}: bad port {port}: expected 1-65535")
    return port


# --- inventory files ------------------------------------------------------------------


def load_inventory(name: str, inventory_dir: Path) -> HostSpec:
    """Load and validate inventory/NAME.toml; every problem is one line naming the file."""
    path = inventory_path(name, inventory_dir)
    data = _read_toml(path)
    _check_keys(data, path)
    where = str(path)
    port = data.get("port")
    return HostSpec(
        name=name,
        host=data.get("host", name),
        port=None if port is None else _check_port(port, where),
        user=data.get("user"),
        identity=_expand(data.get("identity")),
        dir=_required_dir(data, path),
        control=_non_empty(data, "control", "(contract)", path) if "control" in data else "",
        known_hosts=_known_hosts(data.get("known_hosts"), inventory_dir),
        requirements=_requirements(data.get("requirements", {}), path),
        transport=check_transport(data.get("transport", TRANSPORTS[0]), f"{path}: transport"),
        reconnect_s=_non_negative(data.get("reconnect_s", 0), f"{path}: reconnect_s"),
        watchdog_s=_non_negative(data.get("watchdog_s", DEFAULT_WATCHDOG_S), f"{path}: watchdog_s"),
    )


def _non_negative(value: int, where: str) -> int:
    if value < 0:
        raise UsageError(f"{where} must be 0 or more seconds, got {value}")
    return value


def check_transport(value: str, where: str) -> str:
    if value not in TRANSPORTS:
        raise UsageError(f"{where}: {value!r} is not one of {', '.join(TRANSPORTS)}")
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no such inventory file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from exc


def _check_keys(data: dict[str, Any], path: Path) -> None:
    for key, value in data.items():
        expected = _KEYS.get(key)
        if key in MOVED:
            raise UsageError(f"{path}: {key!r} is no inventory key any more: {MOVED[key]}")
        if expected is None:
            known = ", ".join(sorted(_KEYS))
            raise UsageError(f"{path}: unknown key {key!r} (known keys: {known})")
        if not isinstance(value, expected) or isinstance(value, bool):
            wanted = {str: "a string", int: "an integer", dict: "a table"}[expected]
            raise UsageError(f"{path}: {key} must be {wanted}, got {value!r}")


def _required_dir(data: dict[str, Any], path: Path) -> str:
    if "dir" not in data:
        raise UsageError(f"{path}: missing required key 'dir' (the stack dir on the box)")
    return _non_empty(data, "dir", "", path)


def _non_empty(data: dict[str, Any], key: str, default: str, path: Path) -> str:
    value: str = data.get(key, default)
    if not value.strip():
        raise UsageError(f"{path}: {key} must not be empty")
    return value


def _expand(value: str | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def _known_hosts(value: str | None, inventory_dir: Path) -> Path:
    """Relative paths are relative to the project root, the inventory folder's parent."""
    if value is None:
        return inventory_dir / KNOWN_HOSTS_FILE
    path = Path(value).expanduser()
    return path if path.is_absolute() else inventory_dir.parent / path


def _requirements(table: dict[str, Any], path: Path) -> Mapping[str, str]:
    for key, value in table.items():
        if not isinstance(value, str):
            raise UsageError(
                f"{path}: requirements.{key} must be a string, got {value!r} (quote it)"
            )
    return MappingProxyType(dict(table))
