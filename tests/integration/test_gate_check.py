"""`invoke gate --check` against a real sample-stack box, locally and over a real sshd.

Every red test breaks a real box the way an operator would (an unapplied edit, a stopped
service, a dead link, a dashboard answering garbage) and asserts the exact check that must
turn red, its verdict and its evidence, next to checks that must stay green.
"""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ssh_args
from harness import (
    MUTATING_VERBS,
    REPO,
    Box,
    GateRun,
    run_gate,
    start_gate,
    wait_for,
)
from stackbox import listen_addresses, services_running_in

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

CAPTURES = ("status.txt", "doctor.txt", "config.json", "probes/env.json", "probes/api.json")


def test_healthy_box_passes_and_changes_nothing(
    stack_box: Box, via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    config_before = (stack_box.path / "config.json").stat().st_mtime_ns
    env_before = (stack_box.path / ".env").stat().st_mtime_ns
    pids_before = stack_box.pids()
    run = run_gate(*via(stack_box), "--check", out=tmp_path / "results")
    assert run.code == 0, run.output
    assert run.summary["counts"]["pass"] >= 15
    assert run.summary["counts"]["fail"] == 0
    kinds = {e["kind"] for e in run.events}
    assert "read" in kinds
    assert "mutate" not in kinds
    stack_commands = [e["command"] for e in run.events if "stackctl" in e["command"]]
    assert stack_commands, "the check never asked the stack anything"
    for command in stack_commands:
        assert not any(verb in f" {command} " for verb in MUTATING_VERBS), command
    assert (stack_box.path / "config.json").stat().st_mtime_ns == config_before
    assert (stack_box.path / ".env").stat().st_mtime_ns == env_before
    assert stack_box.pids() == pids_before
    assert not (run.run_dir / "captures").exists(), "a passing check wrote failure captures"


# --- each check turns red on a really broken box -------------------------------------------


def record(run: GateRun, name: str) -> dict[str, str]:
    """The summary record of one check (its verdict, expected, observed, evidence)."""
    found = [c for c in run.summary["checks"] if c["name"] == name]
    assert len(found) == 1, f"{name!r}: {len(found)} records; checks: {sorted(run.verdicts())}"
    return dict(found[0])


def assert_failure_captures(run: GateRun, services: list[str]) -> None:
    """A failing check left the box's own words in captures/check/, non-empty."""
    where = run.run_dir / "captures" / "check"
    for name in CAPTURES:
        assert (where / name).is_file(), f"missing capture {name}: {sorted(where.rglob('*'))}"
        assert (where / name).read_text().strip(), f"capture {name} is empty"
    for service in services:
        log = where / "logs" / f"{service}.log"
        assert log.is_file(), f"missing log capture for {service}"
    assert "worker-2" in (where / "status.txt").read_text()


def test_broken_box_turns_each_check_red(
    make_stack_box: Callable[..., Box], via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    """Unapplied tier and cache edits plus a stopped worker: each named check goes red."""
    box = make_stack_box(extras={"cache": True})
    assert "cache" in services_running_in(box.path), "precondition: the cache really runs"
    box.edit(pool={"tier": "nano"}, extras={"cache": False})  # not applied: config != running
    assert box.ctl("stop", "worker-2").returncode == 0
    box.wait_exit(1)
    assert box.api_state()["pool"]["tier"] == "mini", "precondition: the pool still runs mini"

    run = run_gate(*via(box), "--check", out=tmp_path / "results")

    assert run.code == 1, run.output
    assert "Traceback" not in run.output
    tier = record(run, "api: pool tier matches pool.tier")
    assert tier["verdict"] == "fail"
    assert tier["expected"] == "pool.tier == 'nano'"
    assert tier["observed"] == '"mini"'
    running = record(run, "services: every expected service running")
    assert running["verdict"] == "fail"
    assert running["evidence"] == "worker-2 is exited", running
    status = record(run, "status: exit code 0")
    assert (status["verdict"], status["observed"]) == ("fail", "1")
    env_tier = record(run, "env: POOL_TIER rendered from config")
    assert (env_tier["verdict"], env_tier["observed"]) == ("fail", '"mini"')
    env_cache = record(run, "env: EXTRAS_CACHE rendered from config")
    assert (env_cache["verdict"], env_cache["observed"]) == ("fail", '"true"')
    cache = record(run, "api: cache reported as configured")
    assert (cache["verdict"], cache["observed"]) == ("fail", "true")
    workers = record(run, "api: workers online >= fact workers")
    assert (workers["verdict"], workers["observed"]) == ("fail", "1")
    # what was not broken stays green: the checks are specific, not a blanket red
    for untouched in (
        "api: node synchronized",
        "api: node mode matches node.mode",
        "dashboard-port: dashboard speaks TLS as dashboard.secure says",
        "node-rpc: node RPC bound as node.lan_access says",
        "auth: api refuses a request without credentials",
        "api: shares accumulating",
        "secrets: fingerprinted on the box",
    ):
        assert run.verdict(untouched) == "pass", record(run, untouched)
    assert_failure_captures(run, ["node", "pool", "proxy", "dashboard", "worker-1", "worker-2"])

    extra = record(run, "services: no unexpected service")
    assert extra["verdict"] == "fail"
    assert extra["evidence"] == "unexpected: cache"


SHORT_COUNTER_MATRIX = """
import dataclasses, importlib.util
from gate.contract import Increasing

_spec = importlib.util.spec_from_file_location("sample_stack_matrix", {matrix!r})
_sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sample)
CONTRACT = dataclasses.replace(
    _sample.CONTRACT,
    counters=(Increasing("shares accumulating", "api", "shares.total", within=3.0),),
)
"""


def test_stopped_node_turns_status_exit_red(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    """A required service down: status exits 1, and the share counter stops growing.

    The repo's contract, with the counter's window cut from 30 s to 3 s (shares stop within
    the proxy's 0.5 s debounce here), so the test does not sit out 30 s of "no growth".
    """
    matrix = tmp_path / "matrix.py"
    matrix.write_text(SHORT_COUNTER_MATRIX.format(matrix=str(REPO / "matrix.py")))
    box = make_stack_box()
    assert box.ctl("stop", "node").returncode == 0
    box.wait_exit(1)
    run = run_gate(
        "--local", "--dir", str(box.path), "--check", "--matrix", str(matrix),
        out=tmp_path / "results",
    )  # fmt: skip
    assert run.code == 1, run.output
    status = record(run, "status: exit code 0")
    assert status["verdict"] == "fail"
    assert status["evidence"] == "status exited 1"
    running = record(run, "services: every expected service running")
    assert running["verdict"] == "fail"
    assert running["evidence"] == "node is exited", running
    shares = record(run, "api: shares accumulating")
    assert shares["verdict"] == "fail"
    assert shares["evidence"].startswith("did not increase: "), shares
    assert run.verdict("env: POOL_TIER rendered from config") == "pass"
    assert (run.run_dir / "captures" / "check" / "logs" / "node.log").is_file()


# --- could not ask: the link dies mid-run ---------------------------------------------------


def test_ssh_killed_mid_run_is_inconclusive(
    stack_box: Box, sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    """The link drops while the battery's reads are in flight (a control wrapper holds the
    status command open and says so in a file): those reads and every one after are
    could-not-ask; the baseline read before the drop keeps its pass."""
    server = sshd_factory()
    asked = tmp_path / "status-asked"
    ctl = stack_box.path / "held-ctl"
    ctl.write_text(
        f'#!/bin/sh\nif [ "$1" = status ]; then touch {asked}; sleep 5; fi\nexec ./stackctl "$@"\n'
    )
    ctl.chmod(0o755)
    out = tmp_path / "results"
    args = ssh_args(server, stack_box, tmp_path / "inventory")
    proc = start_gate(*args, "--control", "./held-ctl", "--check", out=out)
    try:
        wait_for(f"{asked} written", asked.exists, bool, 60)
        server.drop_links()
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    console = (tmp_path / "results-console.txt").read_text()
    assert code == 3, console
    assert "Traceback" not in console
    assert "gate: inconclusive (exit 3)" in console
    run = GateRun(code, console, out)
    assert run.summary["verdict"] == "inconclusive"
    assert run.summary["counts"]["fail"] == 0, "a lost link was reported as a failed check"
    assert run.verdict("secrets: fingerprinted on the box") == "pass"  # read before the drop
    lost = [e for e in run.events if e["status"] == "unreachable"]
    assert lost, "no command was recorded as unreachable after the link dropped"
    assert {c["verdict"] for c in run.summary["checks"]} <= {"pass", "inconclusive"}
    for name in (
        "services: every expected service running",  # in flight at the drop
        "dashboard-port: dashboard speaks TLS as dashboard.secure says",
        "api: shares accumulating",  # asked after it
    ):
        assert run.verdict(name) == "inconclusive", name
    assert f"{server.host}:{server.port}" in (run.summary["error"] or ""), console
    assert f"gate: cannot connect to {server.host}:{server.port}" in console


# --- a dashboard answering garbage ----------------------------------------------------------


class _Garbage(http.server.BaseHTTPRequestHandler):
    body = b"<html>not json"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def garbage_dashboard(stack_box: Box) -> Iterator[Box]:
    """The box with its dashboard stopped and a garbage server on the dashboard's port."""
    assert stack_box.ctl("stop", "dashboard").returncode == 0
    port = stack_box.port("dashboard")

    def bound() -> http.server.HTTPServer | str:
        try:
            return http.server.HTTPServer(("127.0.0.1", port), _Garbage)
        except OSError as exc:
            return str(exc)

    server = wait_for(f"port {port} free", bound, lambda s: not isinstance(s, str), timeout=15)
    assert isinstance(server, http.server.HTTPServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        def answer() -> bytes:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
                    return bytes(r.read())
            except OSError:
                return b""

        wait_for("garbage served", answer, lambda body: body == _Garbage.body, timeout=15)
        yield stack_box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_dashboard_answering_garbage_fails_the_api_checks(
    garbage_dashboard: Box, tmp_path: Path
) -> None:
    box = garbage_dashboard
    run = run_gate("--local", "--dir", str(box.path), "--check", out=tmp_path / "results")
    assert run.code == 1, run.output
    assert "Traceback" not in run.output
    api = [c for c in run.summary["checks"] if c["name"].startswith("api:")]
    assert len(api) >= 9, api
    for check in api:
        assert check["verdict"] == "fail", check
        assert "not JSON" in check["evidence"], check
        assert "<html>not json" in check["evidence"], check
    # the port does speak plain HTTP (it is our server): the TLS check is not dragged down
    assert run.verdict("dashboard-port: dashboard speaks TLS as dashboard.secure says") == "pass"
    # and it answers without the token: the auth control catches that
    auth = record(run, "auth: api refuses a request without credentials")
    assert (auth["verdict"], auth["observed"]) == ("fail", "HTTP 200")
    state = (run.run_dir / "captures" / "check" / "probes" / "api.json").read_text()
    assert "not JSON" in state


# --- derived, not raw: the daemon's real bind, not what its files say ------------------------


def test_a_node_bound_wider_than_its_config_fails_the_bind_check(
    make_stack_box: Callable[..., Box], tmp_path: Path
) -> None:
    """The review's wrapper: apply with lan_access on, then put config.json's bytes and .env's
    bind line back by hand. Files and env say loopback; the kernel says 0.0.0.0."""
    box = make_stack_box()
    config_bytes = (box.path / "config.json").read_bytes()
    env_bytes = (box.path / ".env").read_bytes()
    box.edit(node={"lan_access": True})
    assert box.ctl("apply", "-y").returncode == 0
    box.wait_healthy()
    (box.path / "config.json").write_bytes(config_bytes)
    (box.path / ".env").write_bytes(env_bytes)
    assert listen_addresses(box.port("node", "rpc_port")) == {"0.0.0.0"}, "precondition"

    run = run_gate("--local", "--dir", str(box.path), "--check", out=tmp_path / "results")

    assert run.code == 1, run.output
    bind = record(run, "node-rpc: node RPC bound as node.lan_access says")
    assert (bind["verdict"], bind["observed"]) == ("fail", '["0.0.0.0"]')
    assert run.verdict("env: NODE_MODE rendered from config") == "pass"  # the files agree
    failed = {c["name"] for c in run.summary["checks"] if c["verdict"] == "fail"}
    assert failed == {"node-rpc: node RPC bound as node.lan_access says"}
