"""`--recover`: put back a box a killed run left dirty, with what that run left on the box.

The killed run's on-box journal holds the repairs it opened and never closed, and the
safety backup it verified (`backup` event) and never removed. The recover mends those
repairs (newest first), then restores the baseline and proves it. Proven: the archive was
only insurance and is removed. Not proven, with an archive: the archive is verified again,
the box is rolled back from it (down, restore ARCHIVE, up; config bytes and secrets
proven) and restored and proven once more; if that fails too, the archive is kept and
named (BoxDirty, exit 4). The failed first proof stays in the records: the baseline alone
did not suffice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gate.errors import BoxDirty, Unreachable
from gate.phases.safety_backup import journaled_archive, remove_archive, rollback, still_verified
from gate.repairs import Repair, journal_events, open_in, run_steps
from gate.restore import restore_and_prove
from gate.snapshot import Baseline

if TYPE_CHECKING:
    from gate.engine.run import Run


def recover(run: Run, baseline: Baseline, killed: str) -> None:
    """Mend the killed run's open repairs, restore and prove; use its archive if needed.

    Call it shielded from signals: it is the restore of a run that never got to its own.
    """
    events = journal_events(run.box, killed)
    archive = journaled_archive(events)
    if archive is not None:
        run.note(f"recover: run {killed} left a verified safety backup: {archive}")
    mend_left_open(run, open_in(events))
    try:
        restore_and_prove(run, baseline)
    except BoxDirty as exc:
        if archive is None:
            raise
        roll_back(run, baseline, archive, exc)
    if archive is not None:
        run.backup_archive = archive
        remove_archive(run)


def mend_left_open(run: Run, repairs: list[Repair]) -> None:
    """Run each repair's steps, newest first as the engine mends (undo in reverse order),
    one line each; a lost link leaves the box dirty for the next --recover."""
    for repair in reversed(repairs):
        try:
            failures = run_steps(run.box, repair.steps)
        except Unreachable as exc:
            raise BoxDirty(
                f"the link was lost while mending ({repair.what}), the box stays dirty: "
                f"run `{run.hint('--recover')}` again: {exc}"
            ) from exc
        run.note(f"recover: {repair.what}: {'; '.join(failures) or 'mended'}")


def roll_back(run: Run, baseline: Baseline, archive: str, unproven: BoxDirty) -> None:
    """The restore alone did not prove the box: the killed run's archive, then prove again."""
    try:
        why = still_verified(run.box, archive)
    except Unreachable as exc:  # could not ask: the box stays dirty, the archive where it is
        raise BoxDirty(f"{unproven}; the safety backup is KEPT at {archive}: {exc}") from exc
    if why:
        raise BoxDirty(
            f"{unproven}; the safety backup of the killed run cannot be used ({why})"
        ) from unproven
    run.note(
        f"recover: the restore is not proven; rolling back from the safety backup {archive}",
        "bold yellow",
    )
    run.backup_archive = archive
    rollback(run, baseline)  # BoxDirty naming the kept archive if it does not prove
    try:
        restore_and_prove(run, baseline)
    except BoxDirty as exc:
        raise BoxDirty(f"{exc}; the safety backup is KEPT at {archive}") from exc
