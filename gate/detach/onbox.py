"""The same run, said for the box: the `gate --local` command a detached run starts there,
and the inventory file it reads its [requirements] from.

Facts travel in that file (mode 0600, inside the run's dir under .gate/), never on the
box's command line, where any user's `ps` would show them: a fact may hold a credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from gate.inventory import HostSpec
from gate.options import Options

INVENTORY_NAME = "detached"
CONTRACT_NAME = "matrix.py"


def onbox_argv(opts: Options, venv: str, run_dir: str) -> list[str]:
    """`VENV/bin/gate --local --host detached --inventory RUN_DIR/inventory ...`: every flag
    that shapes the run, none that only says how the runner reaches the box."""
    argv = [
        f"{venv}/bin/gate",
        "--local",
        "--host",
        INVENTORY_NAME,
        "--inventory",
        f"{run_dir}/inventory",
        "--matrix",
        f"{run_dir}/{CONTRACT_NAME}",
        "--out",
        f"{run_dir}/results",
    ]
    for name in opts.scenarios:
        argv += ["--scenario", name]
    if opts.plan != "declared":
        argv += ["--plan", opts.plan]
    if opts.shard is not None:
        argv += ["--shard", str(opts.shard)]
    for flag in ("keep", "strict", "recover", "no_backup"):
        if getattr(opts, flag):
            argv.append("--" + flag.replace("_", "-"))
    argv += ["--" + phase.replace("_", "-") for phase in sorted(opts.phases)]
    return argv


def inventory_toml(
    host: HostSpec, stack_dir: str, facts: Mapping[str, str], watchdog_s: int
) -> str:
    """inventory/detached.toml for the box: its stack dir, control command, the on-box
    watchdog's limit (the runner's: the inventory's, or GATE_WATCHDOG_S, in whole
    seconds), and the inventory's [requirements] with the run's --fact values over them
    (as the engine merges them: RunContext.facts)."""
    lines = [f"dir = {_string(stack_dir)}", f"watchdog_s = {watchdog_s}"]
    if host.control:
        lines.append(f"control = {_string(host.control)}")
    merged = {**host.requirements, **facts}
    if merged:
        lines.append("[requirements]")
        lines += [f"{_string(k)} = {_string(v)}" for k, v in sorted(merged.items())]
    return "\n".join(lines) + "\n"


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, for the characters json.dumps emits)."""
    return json.dumps(value, ensure_ascii=True)
