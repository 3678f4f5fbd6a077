"""--detach, --attach and --stop: what each does, start to finish, and its exit code.

--detach  check flags and contract (exit 2) -> the box: stack dir, python, no detached
          run already running (75) -> gate's venv there (reused when its key matches,
          else the runner's cached wheelhouse shipped and installed offline) -> the
          contract and an inventory with the run's facts -> the same run started with
          --local under a keeper in its own session -> follow it
--attach  the box's latest detached run -> follow it (or, if it ended, its verdict)
--stop    SIGTERM (the run restores the box) -> its exit file within the drain, else
          SIGKILL (exit 4: the watchdog or --recover puts the box back)
follow    heartbeat every GATE_HEARTBEAT_S (20 s) -> summary and verdict -> results/
          fetched into --out -> the run's exit code. The link lost: exit 3, the run
          goes on (--attach). Ctrl-C: only the following stops (130).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from gate.artifacts import new_run_id
from gate.detach import checks
from gate.detach.boxside import DETACHED, ENDED, NONE, RUNNING
from gate.detach.follow import Follower, print_json, render_views
from gate.detach.link import BoxLink, HelperFailed
from gate.detach.onbox import CONTRACT_NAME, INVENTORY_NAME, inventory_toml, onbox_argv
from gate.detach.wheels import ShipFailed, python_tag, source_key, source_root, wheelhouse
from gate.errors import BoxLocked, ExitCode, GateError, PreflightError, UsageError
from gate.fit import check_declarations
from gate.hints import gate_command
from gate.inventory import HostSpec, resolve_host
from gate.matrix import validate_matrix
from gate.options import Options, load_contract_file
from gate.phases import select
from gate.redact import Redactor
from gate.report import Console
from gate.signals import Interrupted, SignalGuard, process_guard
from gate.target import Target, quote, target_for
from gate.watchdog import watchdog_limit


def default_target(host: HostSpec, accept_new: bool) -> Target:
    return target_for(host, accept_new=accept_new)


def run_verb(name: str, opts: Options, stream: TextIO | None = None) -> int:
    """One of detach / attach / stop, start to finish: the process exit code."""
    guard = process_guard()
    console = Console(Redactor(), stream)
    job = Job(opts, console, guard)
    try:
        return job.run(name)
    except UsageError as exc:
        console.line(f"gate: {exc}", "bold red")
        return ExitCode.USAGE
    except Interrupted as exc:
        console.line(f"gate: {exc}: {job.after_interrupt()}", "bold yellow")
        return exc.exit_code
    except GateError as exc:
        console.line(f"gate: {exc}{job.after_lost()}", "bold red")
        return exc.exit_code
    except HelperFailed as exc:
        console.line(f"gate: the box-side helper failed: {exc}{job.after_lost()}", "bold red")
        return ExitCode.INCONCLUSIVE


def box_spec(opts: Options) -> HostSpec:
    """The box as --host names it, with --dir, --control, --known-hosts and --transport."""
    assert opts.host is not None
    spec = resolve_host(opts.host, opts.inventory_dir)
    changes: dict[str, Any] = {
        "dir": opts.dir,
        "control": opts.control,
        "known_hosts": opts.known_hosts,
        "transport": opts.transport,
    }
    spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
    spec.require_dir()
    return spec


@dataclass
class Job:
    opts: Options
    console: Console
    guard: SignalGuard
    started: bool = False
    """The run is on the box: from here on, a runner that goes away leaves it running."""
    stack: str = "its stack dir"
    run_dir: str | None = None
    """The detached run this job started or found: the one it follows and stops."""

    def hint(self, flag: str) -> str:
        return gate_command(self.opts, flag)

    def after_interrupt(self) -> str:
        if self.started:
            return (
                "stopped following; the detached run goes on on the box. "
                f"Follow it: `{self.hint('--attach')}`; end it: `{self.hint('--stop')}`"
            )
        return "nothing was started on the box"

    def after_lost(self) -> str:
        if not self.started:
            return ""
        return f"; the detached run goes on on the box: `{self.hint('--attach')}` follows it"

    def run(self, name: str) -> int:
        heartbeat = checks.heartbeat_s()
        drain = checks.drain_s()
        host = box_spec(self.opts)
        self.stack = host.dir
        if name == "detach":
            watchdog_limit(host)  # a bad GATE_WATCHDOG_S is exit 2 before anything is sent
            contract_text = self.check_contract()
            root = source_root()
            key = source_key(root)
        with default_target(host, self.opts.accept_new_host_key) as target:
            link = BoxLink(target, host.dir)
            if name != "detach" and not link.has_runs():  # one line, nothing written
                self.nothing_there({"status": NONE}, "attach to" if name == "attach" else "stop")
            self.console.phase(name, f"{target.name}, stack {host.dir}")
            link.install_helper()
            follower = Follower(link, self.console, self.guard, heartbeat)
            if name == "detach":
                self.detach(link, host, contract_text, root, key)
                follower.run_dir = self.run_dir
                return self.follow(follower)
            if name == "attach":
                return self.attach(link, follower)
            return self.stop(link, follower, drain)

    # --- detach ----------------------------------------------------------------------------

    def check_contract(self) -> str:
        """The contract loads and names real scenarios here, before anything is shipped."""
        opts = self.opts
        contract_file = load_contract_file(opts.matrix_file)
        check_declarations(contract_file.contract, opts.matrix_file)
        phases = tuple(select(opts))
        if any(p.flag is None for p in phases) and not opts.recover:
            validate_matrix(contract_file.matrix).select(opts.scenarios)
        return opts.matrix_file.read_text(encoding="utf-8")

    def detach(self, link: BoxLink, host: HostSpec, contract: str, root: Path, key: str) -> None:
        prepared = link.call("prepare", host.dir, key)
        link.stack = prepared["stack"]
        self.refuse(prepared)
        venv = self.venv(link, prepared, root, key)
        run_dir = f"{link.stack}/{DETACHED}/{new_run_id()}"
        self.guard.checkpoint()
        link.mkdir(f"{run_dir}/inventory")
        link.put_text(f"{run_dir}/{CONTRACT_NAME}", contract)
        watchdog = math.ceil(watchdog_limit(host))
        inventory = inventory_toml(host, link.stack, self.opts.facts, watchdog)
        link.put_text(f"{run_dir}/inventory/{INVENTORY_NAME}.toml", inventory)
        self.console.line(f"  box: contract {self.opts.matrix_file} and the run's facts shipped")
        self.guard.checkpoint()
        argv = onbox_argv(self.opts, venv, run_dir)
        state = link.call("start", run_dir, "--", *argv)["state"]
        self.run_dir = str(state["dir"])  # followed by its dir: latest.json may name another
        self.started = True
        self.console.phase(
            "started",
            f"detached run {state['run_id']} (pid {state['pid']} on the box), "
            f"its console: {state['console']}",
        )
        self.console.line(
            f"  Ctrl-C stops only the following; `{self.hint('--attach')}` follows it "
            f"again, `{self.hint('--stop')}` ends it"
        )

    def refuse(self, prepared: dict[str, Any]) -> None:
        if not prepared["stack_ok"]:
            raise PreflightError(f"the box has no stack dir {prepared['stack']}")
        mine = python_tag().removeprefix("py")
        if prepared["python"] != mine:
            raise PreflightError(
                f"the box's python3 is {prepared['python']}, this runner's is {mine}: gate's "
                f"wheels are built for the runner's Python; run the runner on {prepared['python']}"
            )
        latest = prepared["latest"]
        if latest["status"] == RUNNING:
            raise BoxLocked(
                f"a detached run ({latest['state']['run_id']}) is still running on the box: "
                f"`{self.hint('--attach')}` follows it, `{self.hint('--stop')}` ends it"
            )

    def venv(self, link: BoxLink, prepared: dict[str, Any], root: Path, key: str) -> str:
        """gate's venv on the box: reused when one for this key is complete, else made from
        the runner's (cached) wheelhouse with no index."""
        venv = str(prepared["venv"])
        if prepared["venv_ready"]:
            self.console.line(f"  box: venv {venv} reused (same gate {key})")
            return venv
        house = wheelhouse(root, key)
        said = "reused from the cache" if house.reused else "built"
        self.console.line(f"  runner: wheelhouse {house.path} {said} ({len(house.wheels)} wheels)")
        self.guard.checkpoint()
        shipped = f"{prepared['cache']}/wheelhouse-{key}.{new_run_id()}"
        link.send_tar(house.tar(), shipped)
        try:
            installed = link.call("install", key, shipped, timeout=600)
        except HelperFailed as exc:
            raise ShipFailed(f"installing gate on the box failed: {exc}") from exc
        finally:
            link.target.run(quote("rm", "-rf", "--", shipped), timeout=60)
        how = "reused (made meanwhile)" if installed["reused"] else "created"
        seconds = installed["seconds"]
        self.console.line(f"  box: venv {venv} {how} from {len(house.wheels)} wheels ({seconds}s)")
        return venv

    # --- attach / stop -----------------------------------------------------------------------

    def attach(self, link: BoxLink, follower: Follower) -> int:
        found = link.call("poll", link.stack, "1")
        self.nothing_there(found, "attach to")
        follower.run_dir = str(found["state"]["dir"])
        self.started = found["status"] == RUNNING
        state = found["state"]
        ended = "already ended" if found["status"] == ENDED else "not running"
        self.console.phase(
            "attached" if self.started else ended,
            f"detached run {state['run_id']} (pid {state['pid']} on the box)",
        )
        return self.follow(follower)

    def stop(self, link: BoxLink, follower: Follower, drain: float) -> int:
        found = link.call("poll", link.stack, "1")
        self.nothing_there(found, "stop")
        run_id = found["state"]["run_id"]
        follower.run_dir = str(found["state"]["dir"])
        if found["status"] == RUNNING:
            self.console.phase(
                "stopping",
                f"detached run {run_id}: SIGTERM (it restores the box), then up to "
                f"{drain:g}s for it to end before SIGKILL",
            )
            stopped = link.call(
                "stop", link.stack, str(drain), follower.run_dir, timeout=drain + 60
            )
            if "SIGKILL" in stopped["signals"]:
                self.console.line(
                    f"gate: the run did not end within {drain:g}s of SIGTERM and was killed "
                    "(SIGKILL): the box is left as the run had it. The box's watchdog puts it "
                    f"back, or do it now: `{self.hint('--recover')}`",
                    "bold red",
                )
                self.fetch(follower, stopped)
                return ExitCode.DIRTY
            self.console.line(f"  {', '.join(stopped['signals']) or 'no signal'} sent; it ended")
        else:
            self.console.phase("already ended", f"detached run {run_id}")
        return self.follow(follower)

    def nothing_there(self, found: dict[str, Any], doing: str) -> None:
        if found["status"] == NONE:
            raise UsageError(f"no detached run on the box under {self.stack}: nothing to {doing}")

    # --- follow ------------------------------------------------------------------------------

    def follow(self, follower: Follower) -> int:
        found = follower.until_end()
        self.started = False  # it ended: nothing goes on on the box any more
        code = follower.verdict(found)
        self.fetch(follower, found)
        return code

    def fetch(self, follower: Follower, found: dict[str, Any]) -> None:
        if "state" not in found:
            return
        run_dir = follower.fetch(found, self.opts.out)
        if run_dir is None:
            return
        self.console.line(f"results: fetched to {run_dir}")
        try:
            render_views(run_dir, self.opts.summary_md, dict(os.environ))
        except (OSError, ValueError, KeyError) as exc:
            self.console.line(f"  (report views not rendered again: {exc})", "yellow")
        if self.opts.json:
            print_json(run_dir)
