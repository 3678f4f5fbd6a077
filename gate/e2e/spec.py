"""What a stack declares for the branch end-to-end wrapper, and what each mode runs.

A contract file may define `E2E = BranchDeploy(...)` beside CONTRACT and MATRIX: how a fresh
checkout of the stack becomes runnable (files copied from the canonical stack dir besides
the config, env and secret files, and an install command run in the checkout). Without
it the wrapper copies the config and secrets and starts the checkout with the contract's
apply action.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from gate.errors import UsageError

MODES = ("check", "targeted", "matrix")
DEFAULT_MODE = "targeted"


@dataclass(frozen=True)
class BranchDeploy:
    """How a checkout of the stack at a branch is made runnable with the canonical's config."""

    seed: tuple[str, ...] = ()
    """Paths or globs (relative to the stack dir) copied from the canonical stack dir into
    the checkout besides the config file, the env file and the secret files, e.g. a
    generated control script."""
    install: str | None = None
    """A shell command run in the checkout's stack dir after seeding, before the apply
    (e.g. the stack's own installer); None: nothing to install."""
    ready_timeout: float = 180.0
    """How long the branch's stack may take to become ready after its apply."""

    def __post_init__(self) -> None:
        for path in self.seed:
            if not path or path.startswith("/") or ".." in Path(path).parts:
                raise ValueError(f"BranchDeploy.seed: {path!r} must be relative to the stack dir")
        if not self.ready_timeout > 0:
            raise ValueError("BranchDeploy.ready_timeout must be > 0")


def load_deploy(path: Path) -> BranchDeploy:
    """The contract file's E2E (a BranchDeploy), or the default when it declares none."""
    spec = importlib.util.spec_from_file_location(f"gate_e2e_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = getattr(module, "E2E", None)
    if declared is None:
        return BranchDeploy()
    if not isinstance(declared, BranchDeploy):
        raise UsageError(f"{path}: E2E must be a gate.e2e.BranchDeploy")
    return declared


def mode_flags(mode: str, scenarios: tuple[str, ...]) -> list[str]:
    """The gate flags a mode runs against the branch: check = --check; targeted = the
    given scenarios (the matrix's first declared one by default); matrix = every scenario."""
    if mode == "check":
        return ["--check"]
    if mode == "targeted":
        return [word for name in scenarios for word in ("--scenario", name)]
    return []
