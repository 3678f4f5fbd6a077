"""What a run was asked to do (Options), the flag type every flag is declared with, and the
user's contract file loaded with its identity.

Options are the engine's frozen input: the CLI (gate/cli/) builds them from the flag table
and validates them before anything touches a box.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from gate.contract import StackContract
from gate.errors import UsageError
from gate.shards import Shard

FlagKind = Literal["bool", "text", "int", "path", "repeat"]


@dataclass(frozen=True)
class Flag:
    """One command-line flag: `invoke --help gate`, the `gate` script and Options read it."""

    name: str  # the Options field (or phase name), e.g. "accept_new_host_key"
    help: str
    kind: FlagKind = "bool"
    metavar: str = ""

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Options:
    """Everything `invoke gate` was asked to do, typed; `phases` holds the phase flags given."""

    host: str | None = None
    local: bool = False
    dir: str | None = None
    control: str | None = None
    list_only: bool = False
    out: Path = Path("results")
    json: bool = False
    accept_new_host_key: bool = False
    scenarios: tuple[str, ...] = ()
    plan: str = "declared"
    """Which scenarios the matrix walks: the declared ones, or a pairwise plan (gate/planner)."""
    transport: str | None = None
    """How commands reach an SSH box (inventory.TRANSPORTS); None: the inventory's choice."""
    keep: bool = False
    strict: bool = False
    recover: bool = False
    no_backup: bool = False
    """Run destructive phases without --safety-backup's verified archive (said on purpose)."""
    matrix_file: Path = Path("matrix.py")
    inventory_dir: Path = Path("inventory")
    known_hosts: Path | None = None
    facts: dict[str, str] = field(default_factory=dict)
    phases: frozenset[str] = frozenset()
    summary_md: Path | None = None
    shard: Shard | None = None
    """--shard I/N: this job walks one share of the scenarios (gate/shards.py)."""
    compare: tuple[str, ...] = ()
    """Two results dirs to compare (read-only, no box): gate/report/compare.py."""
    """Where the markdown summary for CI goes (also appended to $GITHUB_STEP_SUMMARY)."""
    detach: bool = False
    """Run on the box with --local, detached from the link; follow it (gate/detach/)."""
    attach: bool = False
    """Follow the box's detached run again (gate/detach/)."""
    stop: bool = False
    """End the box's detached run: SIGTERM, then SIGKILL after the drain (gate/detach/)."""
    program: str = "invoke gate"
    """How the user ran gate (`invoke gate` or the `gate` script): hints say the same."""

    @property
    def mode(self) -> str:
        """A word for the run in artifacts: list, recover, check, or the phases it runs."""
        if self.list_only:
            return "list"
        if self.recover:
            return "recover"
        if "check" in self.phases:
            return "check"
        if "readiness" in self.phases:  # read-only, runs alone like --check
            return "readiness"
        return "+".join(["matrix", *sorted(self.phases)])


@dataclass(frozen=True)
class ContractFile:
    """The user's contract file: what it declares, and who it is (name + sha256 of its bytes)."""

    path: Path
    sha256: str
    contract: StackContract
    matrix: Any | None  # gate.matrix.Matrix, typed loosely to keep this module import-light

    @property
    def identity(self) -> dict[str, str]:
        """What the baseline on the box records, so a later run can tell it is the same."""
        return {"name": self.contract.name, "file": str(self.path.resolve()), "sha256": self.sha256}


def load_contract_file(path: Path) -> ContractFile:
    """Import the user's contract file; it must define CONTRACT and may define MATRIX."""
    if not path.is_file():
        raise UsageError(f"{path}: no such matrix file (it declares the stack's contract)")
    module = _import(path)
    contract = getattr(module, "CONTRACT", None)
    if not isinstance(contract, StackContract):
        raise UsageError(f"{path}: CONTRACT must be a gate.contract.StackContract")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return ContractFile(path, digest, contract, getattr(module, "MATRIX", None))


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"gate_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: any error is a usage error, reported in a line
        said = " ".join(str(exc).split())  # one line, however the error prints itself
        raise UsageError(f"{path}: {type(exc).__name__}: {said}") from exc
    return module
