"""The on-box watchdog, runner side: arm it with the baseline, and say what it last did.

A mutating run's lock is held on the box by a detached boxtool process (gate/lock.py); that
holder is also the run's watchdog. If the runner goes silent (no lifeline, no gate command
in flight) for the watchdog's limit while the box is dirty from this run, the holder mends
the repairs the run left open, copies the baseline config back, applies it, waits for the
status command to exit 0, proves the config bytes and secret fingerprints equal the
baseline's, journals all of it and lets the lock go. A restore it cannot prove leaves the
box dirty (with the reason in state.json) for `--recover`, as before. The next run on the
box says what the watchdog did.

The plan is written before the box is marked dirty and holds no secret: commands, paths,
the config's sha256 and the secrets' fingerprints (as baseline.json does). A plan acts only
for the run that wrote it, while that run's dirty mark stands, so a stale one never acts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gate.box import APPLY_TIMEOUT, GATE_DIR, Kind, answered
from gate.errors import UsageError
from gate.inventory import HostSpec
from gate.restore import READY_TIMEOUT
from gate.snapshot import BASELINE_CONFIG, Baseline

if TYPE_CHECKING:
    from gate.engine.run import Run

WATCHDOG_FILE = f"{GATE_DIR}/watchdog.json"
WATCHDOG_ENV = "GATE_WATCHDOG_S"
MAX_WATCHDOG_S = 86400.0
RESTORED = "watchdog-restored"


def watchdog_limit(host: HostSpec, environ: Mapping[str, str] = os.environ) -> float:
    """$GATE_WATCHDOG_S if set (a one-off, or tests), else the inventory's `watchdog_s`;
    longer than the reconnect budget, or off."""
    return check_limits(host, _limit(host, environ))


def _limit(host: HostSpec, environ: Mapping[str, str]) -> float:
    raw = environ.get(WATCHDOG_ENV, "").strip()
    if not raw:
        return float(host.watchdog_s)
    try:
        limit = float(raw)
    except ValueError:
        limit = -1.0
    if not 0 <= limit <= MAX_WATCHDOG_S:
        raise UsageError(f"{WATCHDOG_ENV}={raw!r}: give seconds, 0 (off) to 86400")
    return limit


def check_limits(host: HostSpec, limit: float) -> float:
    """The watchdog must not act while the runner may still reconnect: a runner that comes
    back would find its lock gone and the box restored under it."""
    if limit and limit <= host.reconnect_s:
        raise UsageError(
            f"{host.name}: the watchdog ({limit:g}s) would act while the run may still "
            f"reconnect (reconnect_s = {host.reconnect_s}): make watchdog_s longer, or 0 (off)"
        )
    return limit


def arm(run: Run, baseline: Baseline) -> None:
    """Leave the holder what it needs to put the box back without this runner."""
    if not run.ctx.watchdog:
        return
    box = run.box
    plan = {
        "run_id": run.ctx.run_id,
        "control": box.control_command,
        "apply": box.contract.actions.apply,
        "status": box.contract.status.command,
        "config": box.contract.config.path,
        "baseline_config": BASELINE_CONFIG,
        "config_sha256": baseline.config_sha256,
        "fingerprints": baseline.fingerprints,
        "spec": box.spec(),
        "apply_s": APPLY_TIMEOUT,
        "ready_s": READY_TIMEOUT,
    }
    answered(box.write_file(WATCHDOG_FILE, json.dumps(plan, sort_keys=True), kind=Kind.BOOKKEEPING))


def said(state: Mapping[str, object]) -> str:
    """What the watchdog did, from the on-box state ('' if the last word was not its own)."""
    kept = (
        f"; that run's verified safety backup is kept at {state['archive']}: remove it once "
        "the box is trusted"
        if state.get("archive")
        else ""
    )
    if state.get("phase") == RESTORED:
        return (
            f"the on-box watchdog restored this box after run {state.get('run_id')}'s runner "
            "went silent (proven on the box: config bytes, secret fingerprints, status exit 0)"
            + kept
        )
    if state.get("watchdog"):
        return (
            f"the on-box watchdog could not prove its restore of run {state.get('run_id')}'s "
            f"box: {state['watchdog']}"
        )
    return ""
