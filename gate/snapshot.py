"""The box's own memory of a run: the on-box journal and the baseline (the lock: lock.py).

All of it lives under `<stack>/.gate/` (mode 0700) so that a runner killed with SIGKILL
leaves a box that the next run recognises: `state.json` says `dirty` from the first
mutating command until the restore is proven, and the baseline it must go back to is
beside it, never only in the runner's memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gate.box import GATE_DIR, Box, Kind, answered
from gate.errors import PreflightError
from gate.target import quote

JOURNAL_FILE = f"{GATE_DIR}/journal.jsonl"
STATE_FILE = f"{GATE_DIR}/state.json"
BASELINE_DIR = f"{GATE_DIR}/baseline"
BASELINE_CONFIG = f"{BASELINE_DIR}/config.json"


class Journal:
    """Append-only record on the box of what each run did, phase by phase."""

    def __init__(self, box: Box, run_id: str, mode: str) -> None:
        self.box = box
        self.run_id = run_id
        self.mode = mode

    def note(self, event: str, **details: Any) -> None:
        record = {"run_id": self.run_id, "mode": self.mode, "event": event, "at": time.time()}
        record.update(details)
        self.box.run(
            f"umask 077 && cat >> {JOURNAL_FILE}",
            kind=Kind.BOOKKEEPING,
            stdin=json.dumps(record, sort_keys=True) + "\n",
            scrub=False,
        )


@dataclass
class Baseline:
    """What the box was before the run: config bytes (by hash), secrets, running services."""

    run_id: str
    config_sha256: str
    fingerprints: Mapping[str, Mapping[str, str]]
    services: list[str]
    config: Mapping[str, Any] = field(default_factory=dict)
    taken_at: float = field(default_factory=time.time)
    contract: Mapping[str, str] = field(default_factory=dict)
    """The contract's name, file and sha256: a recover under another contract is refused."""
    passing: list[str] = field(default_factory=list)
    """The checks that passed before the run: the restore must make each pass again."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        return cls(**json.loads(text))


def config_sha256(box: Box) -> str:
    """sha256 of the config file's bytes, computed on the box."""
    result = answered(box.run(f"sha256sum {quote(box.contract.config.path)}"))
    if not result.ok or not result.stdout.strip():
        raise PreflightError(f"cannot read {box.contract.config.path} on the box")
    return result.stdout.split()[0]


def read_state(box: Box) -> dict[str, Any]:
    """The on-box run state: {"state": "clean"} unless a run is (or was left) mid-flight."""
    result = answered(box.run(f"cat {STATE_FILE} 2>/dev/null || echo '{{}}'"))
    try:
        state: dict[str, Any] = json.loads(result.stdout or "{}")
    except ValueError:
        return {"state": "unreadable"}
    return state or {"state": "clean"}


def write_state(box: Box, state: str, run_id: str, **details: Any) -> None:
    record = {"state": state, "run_id": run_id, "since": time.time(), **details}
    answered(box.write_file(STATE_FILE, json.dumps(record, sort_keys=True), kind=Kind.BOOKKEEPING))


def store_baseline(box: Box, baseline: Baseline) -> None:
    """Keep the baseline on the box: the exact config bytes, and the record beside them.

    The copy keeps the file's mode, owner and times (`cp -p`), so the restore's `cp -p`
    puts those back too; the 0700 dir is what keeps it private."""
    cfg = quote(box.contract.config.path)
    answered(
        box.run(
            f"mkdir -p {BASELINE_DIR} && chmod 700 {BASELINE_DIR} && cp -p {cfg} {BASELINE_CONFIG}",
            kind=Kind.BOOKKEEPING,
        )
    )
    answered(
        box.write_file(f"{BASELINE_DIR}/baseline.json", baseline.to_json(), kind=Kind.BOOKKEEPING)
    )


def load_baseline(box: Box) -> Baseline | None:
    """The baseline a previous run left on the box, if any."""
    result = answered(box.run(f"cat {BASELINE_DIR}/baseline.json 2>/dev/null"))
    if not result.ok or not result.stdout.strip():
        return None
    return Baseline.from_json(result.stdout)
