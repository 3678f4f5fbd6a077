"""`--safety-backup`: a verified archive before any destructive phase, and what becomes of
it when the run ends (docs/safety-backup.md).

After the baseline and before every other mutating phase, run the contract's backup action,
take the archive's path from the last non-empty line of its own output
(`Actions.backup_path`), and verify it on the box (`boxtool archive`, read-only): a regular
file, not a link, inside the stack dir or the contract's backup dir, whose listing holds
every member the contract names (`StackContract.backup_holds`). Unverified: BackupRefused
(exit 2); no later phase runs, and the engine's restore puts the box back as ever.

When the run ends (after the engine's restore): nothing failed -> the archive is removed;
something failed -> roll back from it (down, restore ARCHIVE, up) and prove config bytes
and secret fingerprints per category equal the baseline; a rollback that fails keeps the
archive, brings the stack up anyway and is BoxDirty naming the archive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gate.box import APPLY_TIMEOUT, Box, Kind, answered
from gate.checks import CheckRecord, Reading, Verdict
from gate.contract import StackContract
from gate.errors import BackupRefused, BoxDirty, PreflightError, Unreachable, UsageError
from gate.observe import read_fingerprints, read_json_tool
from gate.options import Flag
from gate.phases.base import BACKUP_FLAG, Phase
from gate.restore import config_identical
from gate.result import Result
from gate.snapshot import Baseline
from gate.target import quote

if TYPE_CHECKING:
    from gate.engine.run import Run

PHASE = "safety-backup"
VERIFIED = "safety-backup: archive verified"
BACKUP_LOG = "safety-backup/backup.log"
ROLLBACK_LOG = "safety-backup/rollback.log"
MADE, REMOVED = "backup", "backup-removed"
"""On-box journal events: a verified archive (its real path), and its removal."""


class SafetyBackupPhase(Phase):
    """`--safety-backup`: take and verify an archive before the destructive phases."""

    name = BACKUP_FLAG  # a phase's name is its flag's (Options.phases holds names)
    mutates = True
    flag = Flag(
        BACKUP_FLAG,
        "back up with the contract's backup action and verify the archive before any "
        "destructive phase; roll back from it if anything fails",
    )

    def plan(self, run: Run) -> bool:
        actions = run.box.contract.actions
        if actions.backup is None:
            raise UsageError(
                f"--safety-backup: contract {run.box.contract.name} declares no backup "
                "action (Actions.backup)"
            )
        if actions.restore is None or "{archive}" not in actions.restore:
            raise UsageError(
                "--safety-backup: the contract's restore action must take the archive "
                '(Actions.restore, e.g. "restore {archive}")'
            )
        return True

    def run(self, run: Run) -> None:
        run.console.phase(PHASE, "back up, then verify the archive on the box")
        record, archive = verified_backup(run, VERIFIED, BACKUP_LOG, PHASE)
        if archive is None:
            raise BackupRefused(
                "--safety-backup: the backup is not verified, destructive phases refused: "
                + record.evidence
            )
        run.note(f"safety backup verified: {run.backup_archive}")


def verified_backup(run: Run, name: str, log: str, phase: str) -> tuple[CheckRecord, str | None]:
    """Back up and verify, its record added under `phase`; a verified archive is kept for
    the rollback and journaled. Shielded: a signal while the backup runs must not leave an
    archive gate never verified nor named; it is raised at the next command, once the
    journal knows it."""
    with run.guard.shielded():
        record, archive = backup_and_verify(run, name, log)
        if archive is not None:
            run.backup_archive = archive
            run.journal_note(MADE, archive=archive)
    record.phase = phase
    run.add(record)
    return record, archive


def backup_and_verify(run: Run, name: str, log: str) -> tuple[CheckRecord, str | None]:
    """Run the contract's backup action (its output in the artifact `log`), take the
    archive's path from that output and verify it on the box: the record `name`, and the
    archive's real path when it is verified (None when not: the record says why)."""
    box = run.box
    action = box.contract.actions.backup
    assert action is not None  # the phases that back up refuse a contract without one
    # MUTATE: the stack's own verb writes outside .gate/ (and may do more: quiesce, lock)
    made = answered(box.control(action, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
    run.artifacts.write_text(log, made.stdout + made.stderr)
    path = archive_path(made.stdout, box.contract.actions.backup_path)
    facts: Reading[Mapping[str, Any]] = Reading()
    if made.ok and path is not None:
        facts = read_archive(box, path)
        if facts.lost is not None:
            raise facts.lost
    reason = refusal(made.ok, made.exit_code, made.stdout, path, facts, box.contract)
    record = CheckRecord(
        name,
        Verdict.FAIL if reason else Verdict.PASS,
        "a regular file in the stack or backup dir holding " + ", ".join(box.contract.backup_holds),
        reason or f"{path}: {facts.value.get('members') if facts.value else '?'} members",
        reason or "",
    )
    if reason:
        return record, None
    assert facts.value is not None
    return record, str(facts.value["real"])


def archive_path(output: str, pattern: str) -> str | None:
    """The archive's path: `pattern` searched in the last non-empty line of the output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    found = re.search(pattern, lines[-1])
    if found is None:
        return None
    path = found.groupdict().get("path") or found.group(0)
    return path or None


def roots(contract: StackContract) -> list[str]:
    """Where a verified archive may lie: the stack dir, and the contract's backup dir."""
    backup_dir = contract.readiness.backup_dir
    return ["."] + ([backup_dir] if backup_dir else [])


def read_archive(box: Box, path: str) -> Reading[Mapping[str, Any]]:
    """boxtool archive's facts about `path` (read-only: kinds, names, counts)."""
    wanted = {"roots": roots(box.contract), "holds": list(box.contract.backup_holds)}
    return read_json_tool(box, "archive", path, json.dumps(wanted, sort_keys=True))


def still_verified(box: Box, archive: str) -> str:
    """Why an archive verified earlier (by a killed run) cannot be used now; "" when it can."""
    facts = read_archive(box, archive)
    if facts.lost is not None:
        raise facts.lost
    return refusal(True, 0, archive, archive, facts, box.contract)


def journaled_archive(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The archive one run verified and did not remove, from its on-box journal events."""
    archive: str | None = None
    for event in events:
        if event.get("event") == MADE:
            archive = str(event.get("archive") or "") or None
        elif event.get("event") == REMOVED and event.get("archive") == archive:
            archive = None
    return archive


def refusal(
    ok: bool,
    code: int | None,
    output: str,
    path: str | None,
    facts: Reading[Mapping[str, Any]],
    contract: StackContract,
) -> str:
    """Why the archive is not verified, in one line; "" when it is."""
    if not ok:
        return f"the backup action exited {code}"
    if path is None:
        last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
        said = f"its last line was {last[:80]!r}" if last else "it printed nothing"
        return f"the backup printed no archive path ({said}; see Actions.backup_path)"
    if not facts.usable or facts.value is None:
        return f"{path}: the box answered badly ({facts.why})"
    value = facts.value
    kind = value.get("kind")
    if kind == "link":
        return f"{path} is a symlink, not the archive itself"
    if kind != "file":
        return f"{path} is not a regular file ({kind})"
    if not value.get("inside"):
        return f"{path} lies outside the stack dir and the backup dir ({' '.join(roots(contract))})"
    if value.get("error"):
        return f"{path}: {value['error']}"
    lacks = value.get("lacks") or []
    if lacks:
        return f"{path} lacks {', '.join(lacks)} (the contract's backup_holds)"
    return ""


# --- when the run ends ----------------------------------------------------------------------


def remove_archive(run: Run) -> None:
    """The run passed: the archive was only insurance; take it off the box."""
    archive = run.backup_archive
    assert archive is not None
    try:
        removed = delete_archive(run.box, archive)
    except Unreachable as exc:
        run.note(f"safety backup NOT removed (could not ask: {exc}): {archive}", "yellow")
        raise
    if removed.ok:
        run.backup_archive = None
        run.journal_note(REMOVED, archive=archive)
        run.note(f"safety backup removed: {archive}")
    else:
        run.note(f"safety backup NOT removed (rm exited {removed.exit_code}): {archive}", "yellow")


def delete_archive(box: Box, archive: str) -> Result:
    """`rm -f` one archive the box named (mutate: it lies outside .gate/)."""
    return answered(box.run(f"rm -f -- {quote(archive)}", kind=Kind.MUTATE))


def rollback(run: Run, baseline: Baseline) -> None:
    """Something failed: down, restore the archive, up; then prove config bytes and secret
    fingerprints per category equal the baseline. A rollback that fails keeps the archive,
    brings the stack up anyway and is BoxDirty naming it."""
    box, archive = run.box, run.backup_archive
    assert archive is not None
    actions = box.contract.actions
    run.console.phase("rollback", f"from the safety backup {archive}")
    log: list[str] = []
    try:
        steps = [
            actions.down,
            (actions.restore or "").replace("{archive}", quote(archive)),
            actions.up,
        ]
        failed = ""
        for step in steps:
            if not step:
                continue
            done = answered(box.control(step, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))
            log.append(f"$ {step}\n{done.stdout}{done.stderr}")
            if not done.ok:
                failed = f"`{step}` exited {done.exit_code}"
                break
        records = [] if failed else rollback_proof(box, baseline)
    except (Unreachable, BoxDirty, PreflightError) as exc:  # could not ask, or not prove
        raise BoxDirty(f"rollback could not finish: archive KEPT at {archive}: {exc}") from exc
    finally:
        run.artifacts.write_text(ROLLBACK_LOG, "\n".join(log))
    for record in records:
        run.add(record)
    drifted = [r.observed for r in records if r.verdict is not Verdict.PASS]
    if failed or drifted:
        if failed and actions.up:
            up = box.control(actions.up, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT)
            log.append(f"$ {actions.up} (anyway)\n{up.stdout}{up.stderr}")
            run.artifacts.write_text(ROLLBACK_LOG, "\n".join(log))
        why = failed or "drifted: " + "; ".join(drifted)
        raise BoxDirty(f"rollback NOT proven ({why}): archive KEPT at {archive}")
    run.note(f"rolled back from {archive}: config bytes and every secret category match")


def rollback_proof(box: Box, baseline: Baseline) -> list[CheckRecord]:
    """Config bytes, and secret fingerprints per category, equal the baseline's."""
    config = config_identical(box, baseline)
    config.name, config.phase = "rollback: config bytes equal the baseline", "rollback"
    records = [config]
    now = read_fingerprints(box).asked()
    if not now.usable or now.value is None:
        raise BoxDirty(f"rollback: secret fingerprints unreadable: {now.why}")
    categories = sorted(set(baseline.fingerprints) | set(now.value))
    for category in categories:
        was = dict(baseline.fingerprints.get(category, {}))
        is_ = dict(now.value.get(category, {}))
        drift = sorted(k for k in set(was) | set(is_) if was.get(k) != is_.get(k))
        records.append(
            CheckRecord(
                f"rollback: secrets ({category}) equal the baseline",
                Verdict.FAIL if drift else Verdict.PASS,
                f"{len(was)} unchanged",
                f"{category}: {', '.join(drift)}" if drift else f"{len(is_)} unchanged",
                phase="rollback",
            )
        )
    return records
