"""`--auth-fail-closed`: the guarded service refuses to come up without its secret
(docs/auth-fail-closed.md).

Driven by the contract's `AuthGuard(secret, service, refusal)`. The positive control first:
stop and start the service with the real secret (both exit 0, the stack ready, and the
refusal pattern nowhere in what that start said or logged). Then, with a repair open (stop,
put the env file back, start), stop the service, set the env file aside on the box (boxtool
`aside`, a 0600 copy in .gate/), blank the secret in place (boxtool `blank`: no value is
read out or sent) and start it: the start must exit non-zero AND the refusal must appear in
its output or in the service's log lines written since. The repair then runs (boxtool
`putback` compares sha256s), the stack must be ready again, the env file's sha256 must equal
the one before and every secret fingerprint the baseline's. The secret is never on a
command line: every step names a file and a key, never a value.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gate.battery import wait_ready
from gate.box import APPLY_TIMEOUT, GATE_DIR, Box, Kind, answered
from gate.checks import CheckRecord, SkipClass, Verdict, check_secrets_kept
from gate.contract import AuthGuard, StackContract
from gate.errors import UsageError
from gate.matrix import validate_matrix
from gate.observe import read_fingerprints
from gate.options import Flag
from gate.phases.base import Phase
from gate.repairs import Repair, control, mend, open_repair, tool
from gate.result import Result
from gate.snapshot import write_state
from gate.target import quote
from gate.waits import wait_until

if TYPE_CHECKING:
    from gate.engine.run import Run

PHASE = "auth-fail-closed"
REPAIR = "auth-fail-closed"
REFUSAL_WAIT_S = 15.0
"""How long the refusal may take to reach the service's log once the start exited non-zero."""
SHOWN = 160


class AuthFailClosedPhase(Phase):
    """`--auth-fail-closed`: blank the guarded secret, the service must refuse; put it back."""

    name = "auth_fail_closed"
    mutates = True
    destructive = True
    flag = Flag(
        "auth_fail_closed",
        "blank the contract's guarded secret on the box (never read), assert its service "
        "refuses to start, then put the exact env file back and recover",
    )

    def plan(self, run: Run) -> bool:
        check_guard(run.box.contract)
        return True

    def run(self, run: Run) -> None:
        contract = run.box.contract
        guard = check_guard(contract)
        if guard.service not in contract.expected_services(run.config):
            run.add(skipped(guard))
            return
        run.console.phase(PHASE, f"{guard.service} must refuse to start without {guard.secret}")
        write_state(run.box, "dirty", run.ctx.run_id, phase=PHASE)
        env = contract.env_file
        before = env_sha256(run.box, env)
        if before:
            prove(run, guard, env, before)
        else:  # nothing to compare a put-back file with: touch nothing
            failed = CheckRecord(
                f"{env} hashed before anything changes", Verdict.FAIL, "sha256sum exits 0",
                f"{env} unreadable on the box",
            )  # fmt: skip
            add(run, failed)


def prove(run: Run, guard: AuthGuard, env: str, before: str) -> None:
    """The repair opened, the positive control, the refusal, the heal and its proof."""
    verbs = Verbs(run.box.contract, guard.service)
    aside = f"{GATE_DIR}/aside-{run.ctx.run_id}.env"
    steps = (control(verbs.stop), tool("putback", aside, env, before), control(verbs.start))
    open_repair(run, Repair(REPAIR, f"{env} put back, {guard.service} started", steps))
    timeout = validate_matrix(run.ctx.contract_file.matrix).ready_timeout
    began = time.monotonic()
    if add(run, positive_control(run, guard, verbs, timeout), began):
        began = time.monotonic()
        add(run, refused_without_secret(run.box, guard, verbs, env, aside, before), began)
    heal(run, guard, env, before, timeout)


def check_guard(contract: StackContract) -> AuthGuard:
    """The contract's auth guard, and the stop/start actions the phase needs (UsageError)."""
    guard = contract.auth_guard
    if guard is None:
        raise UsageError(
            f"--auth-fail-closed: contract {contract.name} declares no auth guard "
            "(StackContract.auth_guard = AuthGuard(secret, service, refusal))"
        )
    for verb in ("stop", "start"):
        template = getattr(contract.actions, verb)
        if template is None or "{service}" not in template:
            raise UsageError(
                f"--auth-fail-closed: contract {contract.name} needs Actions.{verb} taking "
                f'the service (e.g. "{verb} {{service}}")'
            )
    return guard


class Verbs:
    """The control verbs for the guarded service, filled from the contract's templates."""

    def __init__(self, contract: StackContract, service: str) -> None:
        actions = contract.actions
        assert actions.stop is not None and actions.start is not None  # check_guard
        self.stop = actions.stop.format(service=service)
        self.start = actions.start.format(service=service)
        self.logs = (
            actions.logs.format(service=service, lines=contract.log_lines)
            if actions.logs is not None
            else None
        )


def add(run: Run, record: CheckRecord, began: float | None = None) -> bool:
    """Record a step (its duration since `began`); whether it passed."""
    record.name, record.phase = f"{PHASE}: {record.name}", PHASE
    if began is not None:
        record.duration = time.monotonic() - began
    run.add(record)
    return record.verdict is Verdict.PASS


def skipped(guard: AuthGuard) -> CheckRecord:
    return CheckRecord(
        f"{PHASE}: {guard.service} refuses to start without {guard.secret}",
        Verdict.SKIP,
        evidence=f"the box's config does not run {guard.service}: nothing to guard",
        phase=PHASE,
        skip_class=SkipClass.BY_DESIGN,
    )


# --- the steps ------------------------------------------------------------------------------


def positive_control(run: Run, guard: AuthGuard, verbs: Verbs, timeout: float) -> CheckRecord:
    """Stop and start the service with the real secret: both exit 0, the stack gets ready,
    and the refusal pattern is nowhere in what this start said (else it proves nothing)."""
    box = run.box
    name = f"{guard.service} starts with the real {guard.secret} (positive control)"
    expected = "stop and start exit 0, the stack ready, no refusal said"
    logs = read_logs(box, verbs)
    stop = mutate(box, verbs.stop)
    if not stop.ok:
        return CheckRecord(
            name, Verdict.FAIL, expected, f"stop exited {stop.exit_code}", tail(stop)
        )
    start = mutate(box, verbs.start)
    if not start.ok:
        return CheckRecord(
            name, Verdict.FAIL, expected, f"start exited {start.exit_code}", tail(start)
        )
    ready = wait_ready(box, run.config, timeout, run.console.waiting)
    if ready.verdict is not Verdict.PASS:
        return CheckRecord(name, ready.verdict, expected, "not ready", ready.evidence)
    said = refusal_in(
        guard.refusal, start.stdout + start.stderr, new_lines(logs, read_logs(box, verbs))
    )
    if said:
        return CheckRecord(
            name,
            Verdict.FAIL,
            expected,
            f"refusal said: {said}",
            "the refusal pattern matches a good start: it cannot tell a refusal",
        )
    return CheckRecord(name, Verdict.PASS, expected, "stop 0, start 0, ready", ready.evidence)


def refused_without_secret(
    box: Box, guard: AuthGuard, verbs: Verbs, env: str, aside: str, before: str
) -> CheckRecord:
    """Stop, set the env file aside, blank the secret, start: it must exit non-zero and say
    the refusal (its output, or the service's log lines written since)."""
    name = f"{guard.service} refuses to start without {guard.secret}"
    expected = f"start exits non-zero and says /{guard.refusal}/"
    logs = read_logs(box, verbs)
    for what, result in broken(box, verbs, env, aside, guard.secret):
        if not result.ok:
            return CheckRecord(
                name, Verdict.FAIL, expected, f"{what} exited {result.exit_code}", tail(result)
            )
        if what == "aside" and result.stdout.strip() != before:
            return CheckRecord(
                name,
                Verdict.FAIL,
                expected,
                "aside copy differs",
                f"sha256 {result.stdout.strip()[:16]}, env {before[:16]}",
            )
    start = mutate(box, verbs.start)
    if start.ok:
        return CheckRecord(
            name,
            Verdict.FAIL,
            expected,
            f"started with an empty {guard.secret} (exit 0)",
            tail(start),
        )
    said = refusal_in(guard.refusal, start.stdout + start.stderr, [])
    where = "its output"
    if not said and verbs.logs is not None:
        where = "its log"
        waited = wait_until(
            "refusal in the log",
            lambda: refusal_in(guard.refusal, "", new_lines(logs, read_logs(box, verbs))),
            bool,
            timeout=REFUSAL_WAIT_S,
            first_interval=0.2,
        )
        said = waited.last or ""
        if waited.inconclusive:
            return CheckRecord(
                name, Verdict.INCONCLUSIVE, expected, "log unread", waited.describe()
            )
    observed = f"start exited {start.exit_code}"
    if not said:
        return CheckRecord(
            name,
            Verdict.FAIL,
            expected,
            f"{observed}, no refusal said",
            f"not in its output ({tail(start)}) nor its new log lines",
        )
    return CheckRecord(name, Verdict.PASS, expected, observed, f"{where}: {said}")


def broken(box: Box, verbs: Verbs, env: str, aside: str, secret: str) -> list[tuple[str, Result]]:
    """Stop, aside, blank, in order, up to the first that fails (each names files and a
    key, never a value)."""
    done: list[tuple[str, Result]] = []
    for what in ("stop", "aside", "blank"):
        if what == "stop":
            result = mutate(box, verbs.stop)
        elif what == "aside":
            result = answered(box.tool("aside", env, aside, kind=Kind.BOOKKEEPING))
        else:
            result = answered(box.tool("blank", env, secret, kind=Kind.MUTATE))
        done.append((what, result))
        if not result.ok:
            break
    return done


def heal(run: Run, guard: AuthGuard, env: str, before: str, timeout: float) -> None:
    """The repair (stop, put back, start), then the proof: ready, the env file's bytes as
    before, every secret fingerprint the baseline's."""
    box, began = run.box, time.monotonic()
    failures = mend(run, REPAIR)
    add(
        run,
        CheckRecord(
            f"{env} put back and {guard.service} started",
            Verdict.FAIL if failures else Verdict.PASS,
            "stop, putback (sha256 compared), start: each exits 0",
            "; ".join(failures) or "every step exited 0",
        ),
        began,
    )
    if not failures:  # else the engine's restore brings it up, and proves it
        add(run, wait_ready(box, run.config, timeout, run.console.waiting))
    now = env_sha256(box, env)
    add(
        run,
        CheckRecord(
            f"{env} bytes equal the ones before",
            Verdict.PASS if now == before else Verdict.FAIL,
            before[:16],
            now[:16],
            f"sha256 of {env} on the box",
        ),
    )
    assert run.baseline is not None
    add(run, check_secrets_kept(run.baseline.fingerprints, read_fingerprints(box)))


# --- reading the box ------------------------------------------------------------------------


def mutate(box: Box, verb: str) -> Result:
    return answered(box.control(verb, kind=Kind.MUTATE, timeout=APPLY_TIMEOUT))


def env_sha256(box: Box, env: str) -> str:
    """sha256 of the env file's bytes, computed on the box ("" when it cannot be read)."""
    result = answered(box.run(f"sha256sum {quote(env)}"))
    words = result.stdout.split()
    return words[0] if result.ok and words else ""


def read_logs(box: Box, verbs: Verbs) -> list[str]:
    """The service's last log lines (scrubbed on the box); [] without a logs verb."""
    if verbs.logs is None:
        return []
    return answered(box.control(verbs.logs, timeout=30)).stdout.splitlines()


# --- pure judgement -------------------------------------------------------------------------


def new_lines(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The lines of `after` not already in `before`: `after` minus its longest prefix that
    is a suffix of `before` (two tails of one log). Ambiguity keeps fewer lines as new."""
    for overlap in range(min(len(before), len(after)), 0, -1):
        if list(after[:overlap]) == list(before[len(before) - overlap :]):
            return list(after[overlap:])
    return list(after)


def refusal_in(pattern: str, output: str, lines: Sequence[str]) -> str:
    """The first line of `output`, then of `lines`, that the refusal pattern matches ("")."""
    found = re.compile(pattern)
    for line in [*output.splitlines(), *lines]:
        if found.search(line):
            return line.strip()[:SHOWN]
    return ""


def tail(result: Result) -> str:
    text = (result.stdout + result.stderr).strip()
    return text[-SHOWN:] if text else "(no output)"
