"""The box lock: one mutating run per box, and a dropped link never silently frees it.

The flock on `<stack>/.gate/lock` is held on the box by a detached boxtool process (the
holder), not by an SSH session, so it survives a lost link. The holder keeps it while the
run may still act on the box: while a lifeline (a boxtool process reading this runner's
link) lives, while any gate command is in flight there, and for `grace` seconds after that
(the window to reconnect). After a reconnect, or once the lifeline ended, the run proves it
still holds the lock before its next command; if it cannot, LockLost and nothing more is
sent. When the grace lapses the holder lets go and journals `lock-lapsed` on the box.

    acquire()    boxtool lock RUN_ID exclusive|shared GRACE   held, or exit 75: BoxLocked
    reattach()   boxtool lifeline RUN_ID                      held, or `lost: why`: LockLost
    release()    a `release` line on the lifeline             free once it returns
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from gate.box import APPLY_TIMEOUT, BOXTOOL, GATE_DIR, Box, answered
from gate.errors import BoxLocked, LockLost, PreflightError, UsageError
from gate.hold import Hold
from gate.result import Result
from gate.target import quote

LOCK_FILE = f"{GATE_DIR}/lock"
HOLDER_FILE = f"{GATE_DIR}/holder.json"
LOCK_BUSY = 75
DEFAULT_GRACE = 30.0
"""Covers a reconnect (10 s connect timeout) with room to spare; a SIGKILLed runner's lock
blocks the box this long after its last command ends, then lapses."""
MAX_GRACE = 3600.0
GRACE_ENV = "GATE_LOCK_GRACE"
READY = "held"
HOLD_TIMEOUT = 15.0
QUIESCE_TIMEOUT = APPLY_TIMEOUT + 20
"""The longest gate command's deadline (an apply) with a margin."""


def lock_grace(environ: Mapping[str, str] = os.environ) -> float:
    """The grace every run's lock gets: $GATE_LOCK_GRACE (seconds) if set, else 30 s."""
    raw = environ.get(GRACE_ENV, "").strip()
    if not raw:
        return DEFAULT_GRACE
    try:
        grace = float(raw)
    except ValueError:
        grace = -1.0
    if not 0 < grace <= MAX_GRACE:
        raise UsageError(f"{GRACE_ENV}={raw!r}: give seconds, more than 0 and at most 3600")
    return grace


def holder_info(run_id: str, watchdog: float = 0.0) -> dict[str, Any]:
    """Who holds the lock, for the message a refused run prints (no secret in it), and the
    on-box watchdog's limit for the holder (0: off)."""
    return {
        "run_id": run_id,
        "watchdog_s": watchdog,
        "user": getpass.getuser(),
        "runner": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class BoxLock:
    """This run's hold on the box lock; `--check` takes it shared, mutating runs exclusive.

    Once acquired it guards the box: before every command (Box.checkpoint) a lifeline that
    ended is re-proven, after a reconnect (Box.reconnected) the lock is re-proven, and once
    it is lost every command raises LockLost before anything is sent.
    """

    def __init__(
        self,
        box: Box,
        run_id: str,
        *,
        exclusive: bool,
        grace: float | None = None,
        watchdog: float = 0.0,
    ) -> None:
        self.box = box
        self.run_id = run_id
        self.exclusive = exclusive
        self.watchdog = watchdog if exclusive else 0.0
        self.grace = lock_grace() if grace is None else grace
        if not 0 < self.grace <= MAX_GRACE:
            raise UsageError(f"lock grace must be in (0, {MAX_GRACE:g}] s, got {grace!r}")
        self._hold: Hold | None = None
        self._held = False
        self._proven_on = -1  # the target generation the lock was last proven on
        self._lost = ""
        self._guarding = False

    def acquire(self) -> None:
        """Take the lock: BoxLocked (75) names the holder; PreflightError, Unreachable."""
        mode = "exclusive" if self.exclusive else "shared"
        info = json.dumps(holder_info(self.run_id, self.watchdog))
        held = self._hold_tool("lock", self.run_id, mode, f"{self.grace:g}", info)
        if isinstance(held, Hold):
            self._attach(held)
            self._guard_box()
            return
        answered(held)
        if held.exit_code == LOCK_BUSY:
            raise BoxLocked(f"box {self.box.host.name} is locked by {self._holder()}")
        why = (held.stderr or held.stdout).strip()[:200]
        raise PreflightError(f"could not take the box lock: {why}")

    def reattach(self) -> None:
        """Prove this run still holds the lock with a new lifeline, or raise LockLost.

        Could-not-ask (the link is down again) raises Unreachable and keeps the claim: the
        next command tries again, and the holder's grace bounds how long that may work.
        """
        if self._lost:
            raise LockLost(self._lost)
        if not self._held or self._proven():
            return
        if self._hold is not None:
            self._hold.release()  # ended, or on a link that is gone: no wait
            self._hold = None
        held = self._hold_tool("lifeline", self.run_id)
        if isinstance(held, Hold):
            self._attach(held)
            self._quiesce()
            return
        answered(held)
        why = (held.stdout or held.stderr).strip().splitlines()[:1] or [f"exit {held.exit_code}"]
        self._lost = (
            f"box {self.box.host.name}: the lock of run {self.run_id} could not be re-proven "
            f"after a reconnect ({why[0].removeprefix('lost: ')[:200]}); nothing more is sent"
        )
        raise LockLost(self._lost)

    def _quiesce(self) -> None:
        """Let a command the dropped link left running on the box end before the next one
        (bounded by the longest command deadline; boxtool exec kills at its deadline)."""
        self.box.tool("quiesce", f"{QUIESCE_TIMEOUT:g}", timeout=QUIESCE_TIMEOUT + 5)

    def verify(self) -> None:
        """Before each command: a lost lock stops it, a lifeline that ended is re-proven."""
        if self._lost:
            raise LockLost(self._lost)
        if self._held and not self._proven():
            self.reattach()

    def release(self) -> None:
        """Let go: the lock is free on the box when this returns (if the lifeline is up;
        without one, the box lets it lapse after the grace)."""
        hold, self._hold = self._hold, None
        self._held = False
        if hold is not None:
            hold.send("release")  # the box lets go, then the lifeline ends: release() waits
            hold.release()

    def _proven(self) -> bool:
        """The lifeline still runs on the link the lock was last proven on."""
        hold = self._hold
        return hold is not None and hold.alive() and self._proven_on == self.box.target.generation

    def _attach(self, hold: Hold) -> None:
        self._hold = hold
        self._held = True
        self._proven_on = self.box.target.generation

    def _guard_box(self) -> None:
        """Every later command of this box passes `verify` first; a reconnect re-proves."""
        if self._guarding:
            return
        self._guarding = True
        checkpoint = self.box.checkpoint

        def guarded() -> None:
            checkpoint()
            self.verify()

        self.box.checkpoint = guarded
        self.box.reconnected = self.reattach

    def _hold_tool(self, *args: str) -> Hold | Result:
        command = f"cd {quote(self.box.host.dir)} && exec python3 {BOXTOOL} {quote(*args)}"
        return self.box.target.hold(command, ready=READY, timeout=HOLD_TIMEOUT)

    def _holder(self) -> str:
        result = self.box.run(f"cat {HOLDER_FILE} 2>/dev/null", timeout=10)
        try:
            info = json.loads(result.stdout)
            if info.get("watchdog") is True:
                return f"the on-box watchdog, restoring the box run {info['run_id']} left dirty"
            text = (
                f"run {info['run_id']} ({info['user']}@{info['runner']} pid {info['pid']}, "
                f"since {info['started']})"
            )
        except (ValueError, KeyError, TypeError):
            return "another run (a --check run, or one that left no holder record)"
        if isinstance(info.get("grace"), int | float):
            text += (
                f"; if that run died, its lock lapses {info['grace']:g}s after its last "
                "command on the box ends"
            )
        if info.get("watchdog_s"):
            text += (
                f"; if it left the box dirty, the on-box watchdog restores the box "
                f"{info['watchdog_s']:g}s after that command and then lets go"
            )
        return text
