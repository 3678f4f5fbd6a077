"""Which boxes a fleet is: `--host a,b,c` or an inventory group, expanded and checked before
any box is touched.

    inventory/groups.toml
        [groups]
        release = ["box-a", "box-b", "root@10.0.0.7:2222"]

    fleet_entries("box", inv)        -> None: one box, today's run, unchanged
    fleet_entries("a,b", inv)        -> ("a", "b")
    fleet_entries("release", inv)    -> the group's members, in the file's order
    fleet_entries("release,c", inv)  -> the group's members, then c

In a fleet every entry is an inventory name or an address written as one (with `@`, a
`:port` or `ssh://`): a bare word that names no inventory file is an unknown box, not an
ssh config alias as it is for one `--host`, so a typo cannot send a fleet to a guess.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.inventory import inventory_path, resolve_host
from gate.options import Options

GROUPS_FILE = "groups.toml"
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class FleetBox:
    """One box of a fleet: its results dir and console prefix, what its run's --host gets,
    and where it is (for --list and the table)."""

    label: str
    entry: str
    where: str


@dataclass(frozen=True)
class Fleet:
    source: str
    """What the user named: `a,b,c` or `group release`."""
    boxes: tuple[FleetBox, ...]

    @property
    def labels(self) -> list[str]:
        return [box.label for box in self.boxes]


def groups_path(inventory_dir: Path) -> Path:
    return inventory_dir / GROUPS_FILE


def load_groups(inventory_dir: Path) -> dict[str, tuple[str, ...]]:
    """inventory/groups.toml's `[groups]` table (none: no file); one line per problem."""
    path = groups_path(inventory_dir)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"groups"})
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r} (known keys: groups)")
    table = data.get("groups", {})
    if not isinstance(table, dict):
        raise UsageError(f'{path}: groups must be a table: [groups] NAME = ["box", ...]')
    return {name: _members(name, value, path, inventory_dir) for name, value in table.items()}


def _members(name: str, value: Any, path: Path, inventory_dir: Path) -> tuple[str, ...]:
    where = f"{path}: groups.{name}"
    if not _GROUP_NAME.fullmatch(name):
        raise UsageError(f"{where}: bad group name (letters, digits, '.', '_', '-')")
    if inventory_path(name, inventory_dir).is_file():
        raise UsageError(f"{where}: {inventory_dir}/{name}.toml is a box of that name: rename one")
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise UsageError(f"{where} must be a list of box names, got {value!r}")
    if not value:
        raise UsageError(f"{where} is empty: a group names at least one box")
    return tuple(m.strip() for m in value)


def fleet_entries(host: str, inventory_dir: Path) -> tuple[str, ...] | None:
    """The boxes `--host` names when it names a fleet (a comma, or a group), else None."""
    groups = load_groups(inventory_dir)
    items = [item.strip() for item in host.split(",")]
    if len(items) == 1 and items[0] not in groups:
        if items[0] == GROUPS_FILE.removesuffix(".toml") and groups_path(inventory_dir).is_file():
            raise UsageError(f"--host groups: {groups_path(inventory_dir)} holds groups, not a box")
        return None
    entries: list[str] = []
    for item in items:
        if not item:
            raise UsageError(f"--host {host!r}: an empty name between commas")
        members = groups.get(item, (item,))
        for member in members:
            if member in groups:
                raise UsageError(
                    f"{groups_path(inventory_dir)}: groups.{item} names group {member!r}: "
                    "groups do not nest, list its boxes"
                )
        entries += members
    return tuple(entries)


def plan_fleet(opts: Options) -> Fleet | None:
    """The fleet `--host` names, each box checked and told apart; None for one box."""
    if not opts.host:
        return None
    entries = fleet_entries(opts.host, opts.inventory_dir)
    if entries is None:
        return None
    source = opts.host if "," in opts.host else f"group {opts.host}"
    if opts.local:
        raise UsageError(f"--local gates this machine, one box: not {source} (drop --local)")
    boxes: list[FleetBox] = []
    seen: dict[str, str] = {}
    for entry in entries:
        box, where = _box(entry, opts)
        if box.entry in (b.entry for b in boxes) or box.label in (b.label for b in boxes):
            raise UsageError(f"--host {source}: {entry!r} is named twice (a fleet runs a box once)")
        if where in seen:
            raise UsageError(
                f"--host {source}: {seen[where]!r} and {entry!r} are the same box ({where}): "
                "a fleet runs each box once"
            )
        seen[where] = entry
        boxes.append(box)
    return Fleet(source, tuple(boxes))


def _box(entry: str, opts: Options) -> tuple[FleetBox, str]:
    """The box, and what makes it the same box under another name (host, port, stack dir:
    the lock is per stack dir, whichever user logs in)."""
    if not _is_address(entry) and not inventory_path(entry, opts.inventory_dir).is_file():
        raise UsageError(
            f"unknown box {entry!r}: no {inventory_path(entry, opts.inventory_dir)} "
            "(write an address as user@host[:port])"
        )
    spec = resolve_host(entry, opts.inventory_dir)
    spec = replace(spec, dir=opts.dir or spec.dir)
    port = "" if spec.port is None else f":{spec.port}"
    user = "" if spec.user is None else f"{spec.user}@"
    label = _UNSAFE.sub("_", spec.name.removeprefix("ssh://")).strip("._") or "box"
    stack_dir = spec.dir or "(--dir)"
    return FleetBox(label, entry, f"{user}{spec.host}{port} {stack_dir}"), (
        f"{spec.host}{port} {stack_dir}"
    )


def _is_address(entry: str) -> bool:
    return "@" in entry or ":" in entry or "/" in entry or entry.endswith(".toml")
