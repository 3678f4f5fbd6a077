"""Flag combinations of --detach / --attach / --stop, and their knobs, checked before
anything reaches a box: one usage line, exit 2."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gate.errors import UsageError
from gate.options import Options

HEARTBEAT_S = 20.0
"""How often the runner prints a heartbeat while it follows a detached run."""
DRAIN_S = 120.0
"""How long `--stop` waits for the run to restore the box after SIGTERM, before SIGKILL."""


def verb(opts: Options) -> str | None:
    """Which of detach, attach, stop was asked for (None: an ordinary run)."""
    given = [name for name in ("detach", "attach", "stop") if getattr(opts, name)]
    if len(given) > 1:
        raise UsageError(f"--{given[0]} and --{given[1]} do not go together: pick one")
    return given[0] if given else None


def check_flags(opts: Options) -> str | None:
    """The verb, or None; refuses what cannot be meant."""
    name = verb(opts)
    if name is None:
        return None
    if opts.local:
        raise UsageError(
            f"--{name} reaches a box over SSH: drop --local and name the box with --host"
        )
    if not opts.host:
        raise UsageError(f"--{name} needs the box: --host NAME_OR_USER@HOST[:PORT]")
    if name in ("attach", "stop"):
        given = [
            flag
            for flag, on in (
                ("--scenario", bool(opts.scenarios)),
                ("--shard", opts.shard is not None),
                ("--keep", opts.keep),
                ("--recover", opts.recover),
                ("--plan", opts.plan != "declared"),
                *((f"--{p.replace('_', '-')}", True) for p in sorted(opts.phases)),
            )
            if on
        ]
        if given:
            raise UsageError(
                f"--{name} acts on the detached run already on the box: drop {', '.join(given)}"
            )
    return name


def seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds from the environment (a knob), else the default."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{name}={text!r}: give a positive number of seconds")
    return value


def heartbeat_s(env: Mapping[str, str] | None = None) -> float:
    return seconds(os.environ if env is None else env, "GATE_HEARTBEAT_S", HEARTBEAT_S)


def drain_s(env: Mapping[str, str] | None = None) -> float:
    return seconds(os.environ if env is None else env, "GATE_STOP_DRAIN_S", DRAIN_S)
