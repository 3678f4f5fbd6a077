"""Flag combinations and paths checked before anything touches a box: one line, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

from gate.errors import UsageError
from gate.options import Options
from gate.phases import select


def validate(opts: Options) -> None:
    """Refuse contradictory or missing flags, and an --out that cannot be written."""
    if opts.list_only:
        return
    if not opts.local and not opts.host:
        raise UsageError("say which box: --host NAME_OR_USER@HOST[:PORT] or --local --dir PATH")
    if opts.local and not (opts.dir or opts.host):
        raise UsageError("--local needs --dir PATH, or --host NAME for an inventory file")
    picks = opts.scenarios or opts.shard
    for reader in ("check", "readiness"):  # the read-only phases
        if reader in opts.phases and (picks or opts.keep or opts.recover):
            raise UsageError(
                f"--{reader} runs no scenario: drop --scenario/--shard/--keep/--recover"
            )
    if opts.recover and (picks or opts.keep or opts.phases):
        raise UsageError("--recover only restores: drop --scenario/--shard/--keep and phase flags")
    if opts.shard and opts.scenarios:
        raise UsageError("--shard deals out the whole plan: drop --scenario")
    select(opts)
    check_writable_dir(opts.out, "--out")
    if opts.summary_md is not None:
        if opts.summary_md.is_dir():
            raise UsageError(f"--summary-md {opts.summary_md}: is a directory, give a file")
        check_writable_dir(opts.summary_md.parent, "--summary-md")


def check_writable_dir(path: Path, flag: str) -> None:
    """The dir exists and is writable, or can be created (its nearest existing parent is)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {probe} is not writable")
