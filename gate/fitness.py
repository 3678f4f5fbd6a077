"""`--readiness`: is the box fit for gating? Its facts, and one verdict per item.

The facts (file modes, sizes, free space, the backup dir, tools on PATH) are read on the
box by `boxtool fitness`, which prints only kinds, modes, sizes, names and booleans; the
listeners come from the contract's Port probes. Every function below but `read_fitness`
is pure: facts in, one CheckRecord out, so each item is shown red in a unit test. An
unfit item's evidence is one line saying how to fix it; an item the contract leaves
undeclared is a named skip (class missing when the contract could declare it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import ip_address
from typing import Any

from gate.box import Box
from gate.checks import CheckRecord, Reading, SkipClass, Verdict, from_reading
from gate.contract import Readiness, StackContract
from gate.observe import read_json_tool
from gate.probes import Command, Http, Port

PHASE = "readiness"
PRIVATE = 0o600
"""An env or secret file may carry no permission bit outside this (0600, 0400, 0000)."""


def read_fitness(box: Box) -> Reading[Mapping[str, Any]]:
    """The box's facts for the contract's Readiness, read by boxtool (read-only)."""
    from gate.engine.engine import REQUIRED_TOOLS  # the engine imports the phases: not at top

    readiness = box.contract.readiness
    wanted = {
        "backup_dir": readiness.backup_dir,
        "data_paths": list(readiness.data_paths),
        "tools": list(dict.fromkeys([*REQUIRED_TOOLS, *readiness.tools])),
    }
    return read_json_tool(box, "fitness", json.dumps(wanted, sort_keys=True))


def record(name: str, verdict: Verdict, expected: str, observed: str, evidence: str) -> CheckRecord:
    return CheckRecord(name, verdict, expected, observed, one_line(evidence), phase=PHASE)


def one_line(text: str) -> str:
    """An item's evidence is one line, whatever a daemon's answer held."""
    return " ".join(text.split())


def unreadable(name: str, facts: Reading[Any], expected: str) -> CheckRecord | None:
    """The record for facts that could not be read (could not ask, or a bad answer)."""
    early = from_reading(name, facts, expected)
    if early is not None:
        early.phase = PHASE
        if early.verdict is Verdict.FAIL:
            early.evidence = one_line(f"the box answered badly ({facts.error}): fix that, re-run")
    return early


# --- healthy --------------------------------------------------------------------------------


def check_healthy(battery: Sequence[CheckRecord], check_hint: str) -> CheckRecord:
    """Status exit 0 and every check of the battery green, as `--check` judges it: one item
    (the battery's records go to the run's artifacts)."""
    name = "readiness: healthy (status exit 0, every check green)"
    expected = f"{len(battery)} checks pass"
    failed = [r for r in battery if r.verdict is Verdict.FAIL]
    unasked = [r for r in battery if r.verdict is Verdict.INCONCLUSIVE]
    passed = sum(r.verdict is Verdict.PASS for r in battery)
    observed = f"{passed} pass, {len(failed)} fail, {len(unasked)} inconclusive"
    if failed:
        shown = ", ".join(f"{r.name} ({r.observed or r.evidence})"[:90] for r in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        fix = f"fix the stack until `{check_hint}` passes: failed {shown}{more}"
        return record(name, Verdict.FAIL, expected, observed, fix)
    if unasked:
        why = unasked[0].evidence or "could not ask"
        return record(name, Verdict.INCONCLUSIVE, expected, observed, why)
    if not battery:
        return record(name, Verdict.FAIL, expected, observed, "no check ran: declare checks")
    return record(name, Verdict.PASS, expected, observed, f"{passed} checks pass")


def check_secrets_found(prints: Reading[Mapping[str, Mapping[str, str]]]) -> CheckRecord:
    """The contract's secret patterns match something, as a mutating run's baseline needs."""
    name = "readiness: secrets found for the baseline to fingerprint"
    if (early := unreadable(name, prints, ">= 1 secret")) is not None:
        return early
    counts = {category: len(items) for category, items in (prints.value or {}).items()}
    observed = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
    if not sum(counts.values()):
        fix = (
            "no secret matches the contract's Secrets (env_keys, files, config_paths): "
            "fix those patterns or the env file, or every mutating run stops at its baseline"
        )
        return record(name, Verdict.FAIL, ">= 1 secret", observed, fix)
    return record(name, Verdict.PASS, ">= 1 secret", observed, f"{sum(counts.values())} found")


# --- files, space, the backup dir, tools ------------------------------------------------------


def check_modes(
    facts: Reading[Mapping[str, Any]], env_file: str, env_used: bool = True
) -> list[CheckRecord]:
    """The env file and every secret file: mode 0600 or stricter (one item per file). An
    absent env file the contract reads nothing from is a by-design skip."""
    if (early := unreadable("readiness: env and secret files private", facts, "0600")) is not None:
        return [early]
    files: Mapping[str, Mapping[str, Any]] = (facts.value or {}).get("files", {})
    records = []
    for path, info in files.items():
        if path == env_file and not env_used and not info.get("exists"):
            why = f"{path} is absent and the contract reads no key from it"
            records.append(
                _skip(f"readiness: {path} mode 0600 or stricter", why, SkipClass.BY_DESIGN)
            )
            continue
        records.append(_mode(path, info, path == env_file))
    return records


def uses_env_file(contract: StackContract) -> bool:
    """Whether the contract reads any key from its env file (secrets, headers, commands)."""
    secrets = contract.secrets
    return bool(
        secrets.env_keys
        or secrets.in_use
        or any(isinstance(p, Http) and p.auth is not None for p in contract.probes)
        or any(isinstance(p, Command) and p.env for p in contract.probes)
    )


def _mode(path: str, info: Mapping[str, Any], env: bool) -> CheckRecord:
    name = f"readiness: {path} mode 0600 or stricter"
    if not info.get("exists"):
        what = "the env file" if env else "a secret file"
        fix = f"{what} {path} is missing: create it (mode 0600) before gating"
        return record(name, Verdict.FAIL, "0600 or stricter", "missing", fix)
    mode = str(info.get("mode", "?"))
    link = " (through a symlink)" if info.get("link") else ""
    if not info.get("regular"):
        fix = f"{path} is not a regular file{link}: make it one, mode 0600"
        return record(name, Verdict.FAIL, "0600 or stricter", f"{mode}, not a file", fix)
    if int(mode, 8) & ~PRIVATE:
        fix = f"{path} is mode {mode}{link}, readable beyond its owner: chmod 600 {path}"
        return record(name, Verdict.FAIL, "0600 or stricter", mode, fix)
    return record(name, Verdict.PASS, "0600 or stricter", mode, f"mode {mode}{link}")


def check_headroom(facts: Reading[Mapping[str, Any]], readiness: Readiness) -> CheckRecord:
    """Free space for a backup: `headroom` times the newest archive in the backup dir, or
    (with none yet) times the config, the env file and the data paths together."""
    name = "readiness: disk headroom for a backup"
    factor = readiness.headroom
    expected = f">= {factor:g} x a backup"
    if (early := unreadable(name, facts, expected)) is not None:
        return early
    value: Mapping[str, Any] = facts.value or {}
    backup_dir = value.get("backup_dir") or {}
    newest = backup_dir.get("newest")
    if newest:
        size, source = int(newest["size"]), f"newest archive {backup_dir['path']}/{newest['name']}"
    else:
        sizes: Mapping[str, int | None] = value.get("sizes", {})
        size = sum(s or 0 for s in sizes.values())
        absent = [p for p, s in sizes.items() if s is None]
        source = "no archive yet; " + " + ".join(p for p in sizes if sizes[p] is not None)
        source += f" (absent: {', '.join(absent)})" if absent else ""
    if "free" in backup_dir:
        free, where = int(backup_dir["free"]), f"the filesystem of {backup_dir['path']}"
    else:
        free, where = int(value.get("stack_free", 0)), "the stack dir's filesystem"
    need = int(size * factor)
    observed = f"{human(free)} free, {factor:g} x {human(size)} = {human(need)} needed"
    if free < need:
        fix = (
            f"{where} has {human(free)} free but a backup needs {factor:g} x {human(size)} "
            f"({source}): free {human(need - free)} there, or move the backups to a bigger disk"
        )
        return record(name, Verdict.FAIL, expected, observed, fix)
    return record(name, Verdict.PASS, expected, observed, f"{observed} ({source}) on {where}")


def check_backup_dir(
    facts: Reading[Mapping[str, Any]], readiness: Readiness, has_backup: bool
) -> CheckRecord:
    """The backup dir is a dir this user may write into."""
    where = readiness.backup_dir
    name = f"readiness: backup dir {where or '(undeclared)'} writable"
    if where is None:
        if not has_backup:
            why = "the contract declares no backup action: nothing will be written"
            return _skip(name, why, SkipClass.BY_DESIGN)
        why = "declare Readiness(backup_dir=...) naming where the backup action writes"
        return _skip(name, why, SkipClass.MISSING)
    if (early := unreadable(name, facts, "a writable dir")) is not None:
        return early
    found: Mapping[str, Any] = (facts.value or {}).get("backup_dir") or {}
    kind = str(found.get("kind", "missing"))
    if kind == "missing":
        fix = f"{where} does not exist: mkdir -p {where} (as the user gate logs in as)"
        return record(name, Verdict.FAIL, "a writable dir", "missing", fix)
    if kind != "dir":
        fix = f"{where} is {kind}: replace it with a directory the backup can write into"
        return record(name, Verdict.FAIL, "a writable dir", kind, fix)
    if not found.get("writable"):
        fix = (
            f"{where} is not writable by the user gate logs in as: chown or chmod it "
            "(a read-only or immutable filesystem also refuses root)"
        )
        return record(name, Verdict.FAIL, "a writable dir", "not writable", fix)
    return record(name, Verdict.PASS, "a writable dir", "writable", f"{where} is writable")


def check_tools(facts: Reading[Mapping[str, Any]]) -> CheckRecord:
    """Every tool gate needs, and every tool the contract names, is on the box's PATH."""
    name = "readiness: tools on PATH"
    if (early := unreadable(name, facts, "all present")) is not None:
        return early
    tools: Mapping[str, bool] = (facts.value or {}).get("tools", {})
    missing = [tool for tool, present in tools.items() if not present]
    if missing:
        fix = (
            f"missing {', '.join(missing)}: install them on the box, or put them on the PATH "
            "of the user gate logs in as"
        )
        return record(name, Verdict.FAIL, ", ".join(tools), "missing " + ", ".join(missing), fix)
    return record(name, Verdict.PASS, ", ".join(tools), "all present", f"{len(tools)} present")


# --- APIs bound to loopback only ---------------------------------------------------------------


def check_loopback(probe: str, port: object, reading: Reading[Any]) -> CheckRecord:
    """A Port probe's listeners are all loopback addresses (and there is one)."""
    name = f"readiness: {probe} bound to loopback only"
    if (early := from_reading(name, reading, "127.0.0.1 or ::1 only")) is not None:
        early.phase = PHASE
        return early
    listening = list((reading.value or {}).get("listening") or [])
    observed = ", ".join(listening) or "nothing listening"
    if not listening:
        fix = f"nothing listens on port {port} (probe {probe}): start the service, then re-run"
        return record(name, Verdict.FAIL, "127.0.0.1 or ::1 only", observed, fix)
    wide = [address for address in listening if not loopback(address)]
    if wide:
        fix = (
            f"port {port} (probe {probe}) listens on {', '.join(wide)}: bind it to "
            f"127.0.0.1 only, or drop {probe} from Readiness.loopback_ports if it must be reached"
        )
        return record(name, Verdict.FAIL, "127.0.0.1 or ::1 only", observed, fix)
    return record(name, Verdict.PASS, "127.0.0.1 or ::1 only", observed, f"port {port}: {observed}")


def loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address."""
    try:
        found = ip_address(address)
    except ValueError:
        return False
    mapped = getattr(found, "ipv4_mapped", None)
    return bool(found.is_loopback or (mapped is not None and mapped.is_loopback))


def no_loopback_ports(contract: StackContract) -> CheckRecord:
    """The contract names no Port probe to hold to loopback: said, never passed."""
    why = (
        "declare Readiness(loopback_ports=(...)) naming the Port probes of the stack's APIs"
        if any(True for _ in _ports(contract))
        else "the contract declares no Port probe: declare one per API port, then name it "
        "in Readiness(loopback_ports=...)"
    )
    return _skip("readiness: APIs bound to loopback only", why, SkipClass.MISSING)


def _ports(contract: StackContract) -> Iterable[str]:
    return (p.name for p in contract.probes if isinstance(p, Port))


def _skip(name: str, why: str, skip_class: SkipClass) -> CheckRecord:
    return CheckRecord(name, Verdict.SKIP, evidence=why, phase=PHASE, skip_class=skip_class)


def human(size: int) -> str:
    """Bytes as a short human size (1024-based)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
