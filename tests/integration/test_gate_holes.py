"""The holes independent tests found in the first engine that only a real box can show.

Each test plants one misbehaviour with a control-command wrapper in the box dir (the real
stack does everything else) or a contract file beside matrix.py, and runs `invoke gate`
as a user does. Each assertion here was red on the engine before this change. The holes
a scripted box shows as well (status shapes, an unhealthy baseline, a contract that does
not fit, a settled wrong value) are proven in tests/unit/test_engine.py.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import REPO, Box, GateRun, gate_command, gate_env, run_gate, run_in_repo

from gate.testing.sshd import Sshd

pytestmark = pytest.mark.slow

MUTATING = ("render", "apply", " up", " down", "restart", "stop", "start", "kill")


def wrapper(box: Box, name: str, body: str) -> str:
    """A control command that handles some verbs itself and passes the rest to stackctl."""
    path = box.path / name
    path.write_text(f'#!/bin/sh\n{body}\nexec ./stackctl "$@"\n')
    path.chmod(0o755)
    return f"./{name}"


def local(box: Box, *extra: str) -> list[str]:
    return ["--local", "--dir", str(box.path), *extra]


def mutating_events(run: GateRun) -> list[str]:
    return [e["command"] for e in run.events if e["kind"] == "mutate"]


def other_contract(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    """A copy of the sample contract under another name, with text replaced."""
    text = (REPO / "matrix.py").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "other_contract.py"
    path.write_text(text)
    return path


def hint_in(output: str, marker: str) -> str:
    """The `invoke gate ...` command the gate printed after `marker`."""
    for line in output.splitlines():
        if marker in line:
            tail = line.split(marker, 1)[1].strip().strip("`")
            return tail[: tail.index("`")] if "`" in tail else tail
    raise AssertionError(f"no {marker!r} line in:\n{output}")


def run_as_printed(hint: str, timeout: float = 300) -> GateRun:
    """Run a printed `invoke gate ...` hint exactly as printed, from the repo root."""
    words = shlex.split(hint)
    assert words[:2] == ["invoke", "gate"], hint
    out = Path(words[words.index("--out") + 1])
    before = set(out.iterdir()) if out.is_dir() else set()
    proc = run_in_repo([sys.executable, "-m", *words], timeout)
    fresh = sorted(set(out.iterdir()) - before)
    assert len(fresh) == 1, f"expected one new run dir from {hint}: {fresh}"
    return _Single(proc.returncode, proc.stdout + proc.stderr, out, fresh[0])


class _Single(GateRun):
    """A GateRun for an out dir that holds several runs: this one's dir named."""

    def __init__(self, code: int, output: str, out_dir: Path, run_dir: Path) -> None:
        super().__init__(code, output, out_dir)
        self._run_dir = run_dir

    @property
    def run_dir(self) -> Path:
        return self._run_dir


# --- 1. everything that leaves the box is scrubbed on the box, preflight included ----------


def test_a_secret_in_the_version_output_never_leaves_the_box(
    stack_box: Box, via: Callable[[Box], list[str]], tmp_path: Path
) -> None:
    token = stack_box.env()["DASHBOARD_TOKEN"]
    leaky = wrapper(
        stack_box,
        "leaky-ctl",
        'if [ "$1" = version ]; then\n'
        '  printf \'{"version": "1.0", "build": "%s"}\\n\' '
        '"$(sed -n s/^DASHBOARD_TOKEN=//p .env)"; exit 0\nfi',
    )
    run = run_gate(*via(stack_box), "--control", leaky, "--check", out=tmp_path / "r")
    assert run.code == 0, run.output
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["stack"]["version"] == "1.0", manifest["stack"]
    assert manifest["stack"]["build"] == "***", "the version output was not read back scrubbed"
    assert token not in run.everything_written()


# --- 5. exit codes: no usable key, and a Ctrl-C in the first moments ----------------------


def test_user_at_host_without_a_usable_key_is_exit_2(
    stack_box: Box, sshd_factory: Callable[[], Sshd], tmp_path: Path
) -> None:
    server = sshd_factory()
    fields = server.inventory_fields()
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "known_hosts").write_text(server.known_hosts_line + "\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in gate_env().items() if k != "SSH_AUTH_SOCK"}
    env["HOME"] = str(home)
    spec = f"root@{fields['host']}:{fields['port']}"
    command = gate_command(
        "--host",
        spec,
        "--dir",
        str(stack_box.path),
        "--check",
        "--inventory",
        str(inventory),
        out=tmp_path / "r",
    )
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "SSH authentication failed for root@" in text, text
    assert "Traceback" not in text


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def test_a_ctrl_c_while_gate_starts_exits_130_having_touched_nothing(
    stack_box: Box, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        gate_command(*local(stack_box), out=out),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=gate_env(),
        text=True,
    )
    started = time.monotonic()
    while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None:
        assert time.monotonic() - started < 30, "gate never installed its signal handlers"
        time.sleep(0.005)  # sleep-ok: polling /proc for the handler, a real signal
    installed_after = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, f"{output} (handlers were in after {installed_after:.2f}s)"
    assert "interrupted by SIGINT" in output
    assert not (stack_box.path / ".gate" / "baseline").exists()


# --- 6. every hint works exactly as printed, under another contract file ------------------


def test_keep_and_reproduce_hints_run_as_printed_under_another_contract(
    stack_box: Box, tmp_path: Path
) -> None:
    contract = other_contract(tmp_path, ('name="sample-stack"', 'name="sample-stack-copy"'))
    out = tmp_path / "results"
    flags = [*local(stack_box), "--matrix", str(contract), "--out", str(out)]
    kept = run_as_printed(
        shlex.join(["invoke", "gate", *flags, "--scenario", "local-defaults", "--keep"])
    )
    assert kept.code == 0, kept.output
    assert f"--matrix {contract}" in hint_in(kept.output, "Put it back with `")
    refused = run_as_printed(shlex.join(["invoke", "gate", *flags]))
    assert refused.code == 4, refused.output
    recover = hint_in(refused.output, "its baseline is kept on the box: run `")
    assert recover == shlex.join(["invoke", "gate", *flags, "--recover"]), recover
    recovered = run_as_printed(recover)
    assert recovered.code == 0, recovered.output
    assert "restore proven" in recovered.output

    reproduce = hint_in(kept.output, "reproduce: ")
    assert f"--matrix {contract}" in reproduce, reproduce
    again = run_as_printed(reproduce)
    assert again.code == 0, again.output
    assert [s["scenario"] for s in again.summary["scenarios"]] == ["local-defaults"]


def test_a_recover_under_another_contract_is_refused_naming_the_right_one(
    stack_box: Box, tmp_path: Path
) -> None:
    contract = other_contract(tmp_path, ('name="sample-stack"', 'name="sample-stack-copy"'))
    out = tmp_path / "results"
    flags = [*local(stack_box), "--out", str(out)]
    kept = run_as_printed(
        shlex.join(
            [
                "invoke",
                "gate",
                *flags,
                "--matrix",
                str(contract),
                "--scenario",
                "local-defaults",
                "--keep",
            ]
        )
    )
    assert kept.code == 0, kept.output
    refused = run_as_printed(shlex.join(["invoke", "gate", *flags, "--recover"]))
    assert refused.code == 2, refused.output
    assert "sample-stack-copy" in refused.output
    hint = hint_in(refused.output, "run `")
    assert f"--matrix {contract.resolve()}" in hint, hint
    recovered = run_as_printed(hint)
    assert recovered.code == 0, recovered.output


# --- 9. a restore whose apply fails, or does nothing, is never "proven" --------------------

RESTORE_APPLY = (
    'if [ "$1" = apply ] && grep -q \'"dirty"\' .gate/state.json 2>/dev/null && '
    "cmp -s config.json .gate/baseline/config.json; then\n  {action}\nfi"
)


@pytest.mark.parametrize(
    ("action", "failed_check"),
    [
        ('echo "apply: crashed retiring a service" >&2; exit 1', "restore: apply succeeded"),
        (
            'echo "No configuration changes detected"; exit 0',
            "restore: check: api: pool tier matches",
        ),
    ],
    ids=["apply-fails", "apply-does-nothing"],
)
def test_a_restore_that_did_not_really_apply_leaves_the_box_dirty(
    stack_box: Box, tmp_path: Path, action: str, failed_check: str
) -> None:
    ctl = wrapper(stack_box, "restore-ctl", RESTORE_APPLY.format(action=action))
    contract = other_contract(tmp_path)
    with contract.open("a") as handle:  # one setting the stack's status does not look at
        handle.write('\nMATRIX = Matrix(MATRIX.axes, (Scenario("tier", {"pool.tier": "main"}),))\n')
    flags = ["--control", ctl, "--matrix", str(contract), "--scenario", "tier"]
    run = run_gate(*local(stack_box, *flags), out=tmp_path / "r")
    assert run.code == 4, run.output
    assert "restore proven" not in run.output
    failed = [
        c["name"]
        for c in run.summary["checks"]
        if c["phase"] == "restore" and c["verdict"] == "fail"
    ]
    assert any(name.startswith(failed_check) for name in failed), failed
    assert "BOX DIRTY" in run.output
    if "check:" in failed_check:
        assert run.verdicts()["restore: ready"] == "pass", "status alone would have caught it"
