"""`invoke gate` flags: every usage error is one line, exit 2, and touches nothing.

Most cases call `gate.cli.run_cli` in-process with the same keyword flags tasks.py passes;
a few run `python -m invoke gate ...` from the repo root exactly as a user types it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gate.cli import run_cli
from gate.cli.flags import table
from gate.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
DEFAULTS: dict[str, object] = {"bool": False, "text": "", "int": "", "path": "", "repeat": None}


def flags(tmp_path: Path, **changes: object) -> dict[str, object]:
    """Flag values as a bare `invoke gate` passes them (from the one table), `changes` applied."""
    base: dict[str, object] = {f.name: DEFAULTS[f.kind] for f in table()}
    base.update(out=str(tmp_path / "results"), matrix=str(REPO / "matrix.py"))
    base["inventory"] = str(tmp_path / "inventory")
    unknown = set(changes) - set(base)
    assert not unknown, f"not a flag: {unknown}"
    base.update(changes)
    return base


@pytest.fixture
def box_dir(tmp_path: Path) -> Path:
    """A stack dir that a usage error must leave exactly as it was: empty."""
    path = tmp_path / "box"
    path.mkdir()
    return path


def usage_error(tmp_path: Path, box_dir: Path, **changes: object) -> str:
    """Run the CLI; assert exit 2, one `gate: ...` line, no results, box untouched."""
    stream = io.StringIO()
    code = run_cli(flags(tmp_path, **changes), stream)
    text = stream.getvalue()
    assert code == ExitCode.USAGE, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"a usage error must be one line, got {lines}"
    assert lines[0].startswith("gate: "), lines
    assert "Traceback" not in text
    assert not (tmp_path / "results").exists(), "a usage error created a results dir"
    assert list(box_dir.iterdir()) == [], "a usage error touched the box"
    return lines[0]


def test_no_box_named(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(tmp_path, box_dir, check=True)
    assert "--host" in line and "--local --dir" in line


def test_local_without_dir(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(tmp_path, box_dir, local=True, check=True)
    assert "--local needs --dir" in line


def test_local_with_a_missing_inventory_file(tmp_path: Path, box_dir: Path) -> None:
    (tmp_path / "inventory").mkdir()
    line = usage_error(tmp_path, box_dir, local=True, host="nope", check=True)
    assert "nope.toml: no such inventory file" in line


def test_missing_inventory_file(tmp_path: Path, box_dir: Path) -> None:
    (tmp_path / "inventory").mkdir()
    line = usage_error(tmp_path, box_dir, host="nope.toml", check=True)
    assert "nope.toml: no such inventory file" in line


def test_malformed_inventory_toml(tmp_path: Path, box_dir: Path) -> None:
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "bad.toml").write_text(f'host = "127.0.0.1"\ndir = "{box_dir}"\nport = [\n')
    line = usage_error(tmp_path, box_dir, host="bad", check=True)
    assert "bad.toml: not valid TOML" in line


def test_fact_without_equals(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), fact=["remote_url"])
    assert "--fact takes key=value, not 'remote_url'" in line


def test_out_under_a_regular_file(tmp_path: Path, box_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    out = str(blocker / "results")
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), check=True, out=out)
    assert f"--out {out}: {blocker} is not a directory" in line


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"shard": "3/2"}, "--shard takes I/N"),
        ({"shard": "1/2", "scenario": ["local-defaults"]}, "--shard deals out the whole plan"),
        ({"shard": "1/2", "check": True}, "--check runs no scenario"),
    ],
)
def test_a_bad_shard(tmp_path: Path, box_dir: Path, changes: dict[str, object], says: str) -> None:
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), **changes)
    assert says in line


def test_an_unknown_transport(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), transport="mitogen")
    assert line == "gate: --transport: 'mitogen' is not one of persistent, exec"


def test_check_with_scenario(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(
        tmp_path, box_dir, local=True, dir=str(box_dir), check=True, scenario=["local-defaults"]
    )
    assert "--check runs no scenario" in line


def test_unknown_scenario(tmp_path: Path, box_dir: Path) -> None:
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), scenario=["no-such"])
    assert "unknown scenario 'no-such'; known: local-defaults" in line


def test_matrix_file_without_contract(tmp_path: Path, box_dir: Path) -> None:
    matrix = tmp_path / "matrix.py"
    matrix.write_text("MATRIX = None\n")
    line = usage_error(
        tmp_path, box_dir, local=True, dir=str(box_dir), check=True, matrix=str(matrix)
    )
    assert "CONTRACT must be a gate.contract.StackContract" in line


def test_missing_matrix_file(tmp_path: Path, box_dir: Path) -> None:
    missing = str(tmp_path / "nope.py")
    line = usage_error(tmp_path, box_dir, local=True, dir=str(box_dir), check=True, matrix=missing)
    assert "no such matrix file" in line


def test_list_without_contract_is_a_usage_error(tmp_path: Path, box_dir: Path) -> None:
    matrix = tmp_path / "matrix.py"
    matrix.write_text("X = 1\n")
    line = usage_error(tmp_path, box_dir, list=True, matrix=str(matrix))
    assert "CONTRACT" in line


# --- as a user types it ------------------------------------------------------------------


def invoke_gate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "gate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def test_usage_error_from_the_command_line(tmp_path: Path, box_dir: Path) -> None:
    out = tmp_path / "results"
    done = invoke_gate("--local", "--dir", str(box_dir), "--scenario", "no-such", "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no-such" in done.stderr
    assert not out.exists()
    assert list(box_dir.iterdir()) == []


def test_unknown_flag_from_the_command_line(tmp_path: Path, box_dir: Path) -> None:
    done = invoke_gate("--local", "--dir", str(box_dir), "--bogus", "--out", str(tmp_path / "r"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == ["gate: No idea what '--bogus' is!"]
    assert list(box_dir.iterdir()) == []


def test_a_bad_lock_grace_is_refused_before_anything_is_touched(
    tmp_path: Path, box_dir: Path
) -> None:
    out = tmp_path / "results"
    done = invoke_gate(
        "--local",
        "--dir",
        str(box_dir),
        "--check",
        "--out",
        str(out),
        env={"GATE_LOCK_GRACE": "soon"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        "gate: GATE_LOCK_GRACE='soon': give seconds, more than 0 and at most 3600"
    ]
    assert not out.exists()
    assert list(box_dir.iterdir()) == []


def test_a_removed_flag_from_the_command_line_is_one_line(tmp_path: Path, box_dir: Path) -> None:
    """--workers became a contract fact (--fact workers=N): the old flag is a usage line."""
    done = invoke_gate("--local", "--dir", str(box_dir), "--check", "--workers", "3")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert list(box_dir.iterdir()) == []


def test_invoke_help_lists_every_flag_of_the_table() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "invoke", "--help", "gate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    missing = [f.option for f in table() if f.option not in helped.stdout]
    assert not missing, f"invoke --help gate lacks {missing}"


GATE_SCRIPT = Path(sys.executable).parent / "gate"


def test_the_gate_script_takes_the_same_flags_and_exits_2_on_a_bad_one(
    tmp_path: Path, box_dir: Path
) -> None:
    assert GATE_SCRIPT.is_file(), "pip install -e . did not install the gate script"
    common = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 60}
    bad = subprocess.run([str(GATE_SCRIPT), "--local", "--dir", str(box_dir), "--bogus"], **common)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == ["gate: unrecognized arguments: --bogus"]
    listed = subprocess.run(
        [str(GATE_SCRIPT), "--list", "--matrix", str(REPO / "matrix.py")], **common
    )
    assert listed.returncode == 0, listed.stderr
    (phases,) = [ln for ln in listed.stdout.splitlines() if ln.startswith("phases (in run order)")]
    assert phases.startswith(  # the destructive phases lie between (each says so)
        "phases (in run order): check (--check), readiness (--readiness), "
        "safety_backup (--safety-backup, mutates), "
    ), phases
    assert phases.endswith(", matrix (default, mutates)"), phases
    assert list(box_dir.iterdir()) == []


def test_list_prints_checks_scenarios_axes_and_coverage(tmp_path: Path) -> None:
    done = invoke_gate("--list", "--out", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for needle in (
        "check battery:",
        "services: every expected service running",
        "services: no unexpected service",
        "status: exit code 0",
        "api: pool tier matches pool.tier",
        "api: shares accumulating",
        "env: POOL_TIER rendered from config",
        "auth: api refuses a request without credentials",
        "scenarios:",
        "local-defaults",
        "remote-node",
        "SKIP (missing:",
        "axes (value: runnable scenarios that set it):",
        "pool.tier",
        "pairs covered: ",
        "axes observed by (checks whose expectation follows the axis):",
        "  node.lan_access          node-rpc: node RPC bound as node.lan_access says\n",
    ):
        assert needle in text, f"--list lacks {needle!r}:\n{text}"
    assert not (tmp_path / "results").exists(), "--list created a results dir"
