"""The run's options, validated before anything touches a box, and the user's matrix.py loaded.

A usage error here is one clear line and exit 2; no target has been opened yet.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gate.contract import StackContract
from gate.errors import UsageError


@dataclass(frozen=True)
class Options:
    """Everything `invoke gate` was asked to do."""

    host: str | None = None
    local: bool = False
    dir: str | None = None
    check: bool = False
    list_only: bool = False
    out: Path = Path("results")
    json: bool = False
    workers: int | None = None
    accept_new_host_key: bool = False
    scenarios: tuple[str, ...] = ()
    keep: bool = False
    strict: bool = False
    recover: bool = False
    matrix_file: Path = Path("matrix.py")
    inventory_dir: Path = Path("inventory")
    known_hosts: Path | None = None
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        if self.list_only:
            return "list"
        if self.recover:
            return "recover"
        return "check" if self.check else "matrix"


def validate(opts: Options) -> None:
    """Refuse contradictory or missing flags with one line each."""
    if opts.list_only:
        return
    if opts.local and opts.host:
        raise UsageError("--local and --host are exclusive: gate one box at a time")
    if not opts.local and not opts.host:
        raise UsageError("say which box: --host NAME_OR_USER@HOST[:PORT] or --local --dir PATH")
    if opts.local and not opts.dir:
        raise UsageError("--local needs --dir PATH (the stack dir on this machine)")
    if opts.workers is not None and opts.workers < 0:
        raise UsageError(f"--workers must be 0 or more, not {opts.workers}")
    if opts.check and (opts.scenarios or opts.keep or opts.recover):
        raise UsageError("--check runs no scenario: drop --scenario/--keep/--recover")
    if opts.recover and (opts.scenarios or opts.keep):
        raise UsageError("--recover only restores: drop --scenario/--keep")


@dataclass(frozen=True)
class StackFile:
    """What the user's matrix.py declares."""

    contract: StackContract
    matrix: Any | None  # gate.matrix.Matrix, typed loosely to keep this module import-light


def load_stack_file(path: Path) -> StackFile:
    """Import the user's matrix.py; it must define CONTRACT and may define MATRIX."""
    if not path.is_file():
        raise UsageError(f"{path}: no such matrix file (it declares the stack's contract)")
    module = _import(path)
    contract = getattr(module, "CONTRACT", None)
    if not isinstance(contract, StackContract):
        raise UsageError(f"{path}: CONTRACT must be a gate.contract.StackContract")
    return StackFile(contract=contract, matrix=getattr(module, "MATRIX", None))


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"gate_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is a usage error, reported in a line
        raise UsageError(f"{path}: {type(exc).__name__}: {exc}") from exc
    return module
