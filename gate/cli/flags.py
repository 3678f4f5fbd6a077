"""The one flag table: it feeds `invoke --help gate`, the `gate` script, Options and validation.

Common flags are declared here; each phase declares its own flag where it is registered
(gate/phases/), so adding a phase adds its flag everywhere at once. Values arrive as the
parsers give them (bools, strings, lists of strings) and are typed here, so a bad value is
one usage line and exit 2, never a parser's traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.inventory import check_transport
from gate.options import Flag, Options
from gate.phases import registered
from gate.shards import parse_shard

COMMON: tuple[Flag, ...] = (
    Flag(
        "host",
        "inventory name, or user@host[:port] (ssh config aliases work); several at once: "
        "a,b,c or an inventory group (docs/fleets.md)",
        "text",
        "BOX",
    ),
    Flag("local", "gate the stack on this machine (needs --dir, or an inventory via --host)"),
    Flag("dir", "the stack dir on the box (overrides the inventory)", "text", "PATH"),
    Flag("control", "the stack's control command (overrides the inventory)", "text", "CMD"),
    Flag("list", "print what would run (checks, scenarios, axes, coverage) and exit"),
    Flag("scenario", "run only this scenario (repeatable)", "repeat", "NAME"),
    Flag(
        "plan",
        "declared (the matrix's scenarios, default) or pairwise (every value pair, few restarts)",
        "text",
        "PLAN",
    ),
    Flag(
        "transport",
        "persistent (one command channel per box, default) or exec (an SSH channel each)",
        "text",
        "KIND",
    ),
    Flag("out", "where results/<run-id>/ goes (default results)", "path", "DIR"),
    Flag("json", "print summary.json to stdout at the end"),
    Flag("summary_md", "also write the markdown summary (CI) to this file", "path", "FILE"),
    Flag(
        "shard",
        "walk only this share of the scenarios: I/N (N jobs together walk each once)",
        "text",
        "I/N",
    ),
    Flag("compare", "compare two runs, no box: --compare RUN_A --compare RUN_B", "repeat", "DIR"),
    Flag("accept_new_host_key", "trust and record an unknown host key"),
    Flag("keep", "leave the box on the last scenario (no final restore)"),
    Flag("strict", "fail on any skip of class missing, or a run that checked nothing"),
    Flag("recover", "restore the box from the baseline a killed run left on it, and prove it"),
    Flag("no_backup", "run destructive phases without --safety-backup (said on purpose)"),
    Flag("matrix", "the contract file declaring the stack (default matrix.py)", "path", "FILE"),
    Flag("known_hosts", "extra known_hosts file (default inventory/known_hosts)", "path", "FILE"),
    Flag("fact", "key=value for scenario requirements (repeatable)", "repeat", "KEY=VALUE"),
    Flag("inventory", "the inventory dir (default inventory)", "path", "DIR"),
    Flag("detach", "run on the box itself, detached from this link (docs/detached-runs.md)"),
    Flag("attach", "follow the box's detached run again; fetch its results, exit with its code"),
    Flag("stop", "end the box's detached run: SIGTERM (it restores), SIGKILL after the drain"),
)


def table() -> tuple[Flag, ...]:
    """Every flag `invoke gate` takes: the common ones, then one per registered phase."""
    return COMMON + tuple(p.flag for p in registered() if p.flag is not None)


def options_from(raw: Mapping[str, Any]) -> Options:
    """Parsed flag values (names as in the table; absent = not given) -> typed Options."""
    unknown = set(raw) - {f.name for f in table()}
    if unknown:
        raise UsageError(f"unknown flag(s): {', '.join(sorted(unknown))}")
    given = {name: value for name, value in raw.items() if value not in (None, "", False, [], ())}
    phase_flags = {p.name for p in registered() if p.flag is not None}
    return Options(
        host=given.get("host"),
        local=bool(given.get("local")),
        dir=given.get("dir"),
        control=given.get("control"),
        list_only=bool(given.get("list")),
        scenarios=tuple(given.get("scenario", ())),
        plan=parse_plan(given.get("plan", "declared"), given.get("scenario", ())),
        transport=check_transport(given["transport"], "--transport")
        if "transport" in given
        else None,
        out=Path(given.get("out", "results")),
        json=bool(given.get("json")),
        summary_md=Path(given["summary_md"]) if "summary_md" in given else None,
        compare=tuple(str(run) for run in given.get("compare", ())),
        shard=parse_shard(str(given["shard"])) if "shard" in given else None,
        accept_new_host_key=bool(given.get("accept_new_host_key")),
        keep=bool(given.get("keep")),
        strict=bool(given.get("strict")),
        recover=bool(given.get("recover")),
        no_backup=bool(given.get("no_backup")),
        matrix_file=Path(given.get("matrix", "matrix.py")),
        known_hosts=Path(given["known_hosts"]) if "known_hosts" in given else None,
        facts=parse_facts(given.get("fact", ())),
        inventory_dir=Path(given.get("inventory", "inventory")),
        phases=frozenset(name for name in phase_flags if given.get(name)),
        detach=bool(given.get("detach")),
        attach=bool(given.get("attach")),
        stop=bool(given.get("stop")),
    )


def parse_facts(pairs: Any) -> dict[str, str]:
    facts: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--fact takes key=value, not {pair!r}")
        facts[key.strip()] = value.strip()
    return facts


PLANS = ("declared", "pairwise")


def parse_plan(plan: Any, scenarios: Any) -> str:
    """`--plan`: a known word; pairwise names its own scenarios, so --scenario cannot pick."""
    if plan not in PLANS:
        raise UsageError(f"--plan takes {' or '.join(PLANS)}, not {plan!r}")
    if plan == "pairwise" and scenarios:
        raise UsageError("--plan pairwise plans its own scenarios: drop --scenario")
    return str(plan)
