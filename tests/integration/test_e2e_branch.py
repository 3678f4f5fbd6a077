"""`invoke e2e BRANCH` / `gate e2e BRANCH` against a real sample stack whose source is a git
repository on the box (docs/e2e.md).

The canonical stack is installed from `main`; branch `good` carries a harmless change,
branch `defect` a real one (the dashboard reports a pool tier the config never said),
branch `broken` one that keeps the stack from starting at all, branch `sticky` a
`stackctl down` that says "Stopped" and stops nothing. After
every e2e the canonical is checked from raw sources: its config and secret files by hash,
its stack healthy again through its own stackctl, its git state (HEAD, branch, the index
file's bytes, staged entries, status, refs) read with git itself, and no process or
checkout of the branch left behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ssh_args
from harness import (
    REPO,
    Box,
    GateRun,
    config_and_secret_hashes,
    gate_env,
    kill_leftovers,
    run_gate,
    run_in_repo,
    wait_for,
)

from gate.testing.sshd import Sshd

STACK_SRC = REPO / "examples" / "stack"
IGNORED = ("config.json", ".env", "stackctl", "defects.json", "data/", "backups/", "logs/",
           "run/", "secrets/", ".gate/", "__pycache__/")  # fmt: skip
DASHBOARD = "stacklib/services/dashboard.py"
HONEST = '"tier": pool.get("tier")'
DEFECT = '"tier": "bogus-" + str(pool.get("tier"))'
TIER_CHECK = "api: pool tier matches pool.tier"
STOPS = "    if sup.running():\n        sup.shutdown()\n"


def git(repo: Path, *args: str) -> str:
    """git in `repo`, never writing its index on the side (GIT_OPTIONAL_LOCKS=0)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def git_state(repo: Path) -> dict[str, str]:
    """The canonical checkout's git state, read with git and from .git itself."""
    index = repo / ".git" / "index"
    return {
        "head": git(repo, "rev-parse", "HEAD").strip(),
        "branch": git(repo, "symbolic-ref", "-q", "HEAD").strip(),
        "index bytes": hashlib.sha256(index.read_bytes()).hexdigest(),
        "staged": git(repo, "ls-files", "--stage"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "refs": git(repo, "for-each-ref"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
    }


def make_stack_repo(path: Path) -> Path:
    """The sample stack's source as a git repository: main, good, defect."""
    path.mkdir()
    shutil.copy2(STACK_SRC / "install.sh", path / "install.sh")
    shutil.copytree(STACK_SRC / "stacklib", path / "stacklib",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (path / ".gitignore").write_text("\n".join(IGNORED) + "\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "the sample stack")
    git(path, "checkout", "-q", "-b", "good")
    with (path / "stacklib" / "__init__.py").open("a") as init:
        init.write("# branch good: a harmless change\n")
    git(path, "commit", "-qam", "good: a harmless change")
    git(path, "checkout", "-q", "-b", "defect", "main")
    dashboard = path / DASHBOARD
    source = dashboard.read_text()
    assert HONEST in source, "the sample's dashboard changed: update the seeded defect"
    dashboard.write_text(source.replace(HONEST, DEFECT))
    git(path, "commit", "-qam", "defect: the dashboard reports a tier nobody configured")
    git(path, "checkout", "-q", "-b", "broken", "main")
    (path / "stacklib" / "__init__.py").write_text('"""A branch whose stack cannot start."""\n')
    git(path, "commit", "-qam", "broken: stacklib lost its VERSION")
    git(path, "checkout", "-q", "-b", "sticky", "main")
    cli = path / "stacklib" / "cli.py"
    source = cli.read_text()
    assert STOPS in source, "the sample's stackctl down changed: update the seeded defect"
    cli.write_text(source.replace(STOPS, "    pass  # sticky: down stops nothing\n"))
    git(path, "commit", "-qam", "sticky: stackctl down says Stopped and stops nothing")
    git(path, "checkout", "-q", "main")
    return path


def install_canonical(path: Path) -> Box:
    """The canonical stack from main, installed by its own install.sh, applied, healthy."""
    proc = subprocess.run(
        [str(path / "install.sh"), str(path), "--time-scale", "0.05", "--python", sys.executable],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    box = Box(path)
    applied = box.ctl("apply", "-y")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    box.wait_healthy(timeout=60)
    assert git(path, "status", "--porcelain", "--untracked-files=all") == "", "not ignored"
    return box


def checkout_of(box: Box, branch: str) -> Path:
    return box.path.parent / f"{box.path.name}.e2e-{branch}"


@pytest.fixture
def canonical(tmp_path: Path) -> Iterator[Box]:
    """A healthy canonical stack deployed from a git checkout of the sample (main)."""
    box = install_canonical(make_stack_repo(tmp_path / "stack"))
    yield box
    box.ctl("down")
    for path in [box.path, *box.path.parent.glob(f"{box.path.name}.e2e-*")]:
        kill_leftovers(path)


def e2e(*args: str, out: Path, script: bool = False, timeout: float = 400) -> GateRun:
    """`invoke e2e ARGS --out OUT` (or the `gate e2e` script) from the repo root."""
    out.mkdir(parents=True, exist_ok=True)
    head = ["-c", "from gate.cli.script import main; main()"] if script else ["-m", "invoke"]
    proc = run_in_repo([sys.executable, *head, "e2e", *args, "--out", str(out)], timeout)
    return GateRun(proc.returncode, proc.stdout + proc.stderr, out)


def branch_run(run: GateRun) -> GateRun:
    """The gate run e2e made against the branch (results/<e2e>/branch/<run>/)."""
    return GateRun(-1, "", run.run_dir / "branch")


def processes_under(path: Path) -> list[str]:
    marker = str(path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        if marker + b"/" in cmdline or marker + b"\0" in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


class Before:
    """The canonical as it was: files by hash, git state, its services' pids."""

    def __init__(self, box: Box) -> None:
        self.box = box
        self.files = config_and_secret_hashes(box)
        self.git = git_state(box.path)
        self.pids = box.pids()
        assert self.files and self.pids, "nothing to compare the restore with"

    def assert_restored(self, branch: str, checkout_removed: bool = True) -> None:
        box = self.box
        code, status = box.status()
        assert code == 0, f"canonical not healthy after e2e: {status}"
        assert config_and_secret_hashes(box) == self.files
        assert git_state(box.path) == self.git
        # its services were really stopped for the branch and started again from its checkout
        assert set(box.pids()) == set(self.pids)
        assert all(box.pids()[name] != self.pids[name] for name in self.pids)
        checkout = checkout_of(box, branch)
        assert checkout.exists() is not checkout_removed, checkout
        assert processes_under(checkout) == []


@pytest.mark.slow
def test_a_good_branch_passes_and_the_canonical_is_proven_restored(
    canonical: Box, sshd: Sshd, tmp_path: Path
) -> None:
    before = Before(canonical)
    flags = ssh_args(sshd, canonical, tmp_path / "inventory")

    run = e2e("good", *flags, out=tmp_path / "out")  # --mode targeted by default

    assert run.code == 0, run.output
    before.assert_restored("good")
    inner = branch_run(run)
    assert inner.summary["exit_code"] == 0
    manifest = (inner.run_dir / "manifest.json").read_text()
    assert f'"stack_dir": "{checkout_of(canonical, "good")}"' in manifest
    assert inner.verdict(f"local-defaults/{TIER_CHECK}") == "pass"
    verdicts = run.verdicts()
    assert verdicts["e2e: branch stack applied"] == "pass"
    assert verdicts["e2e: canonical checkout's git state unchanged"] == "pass"
    assert verdicts["restore: config bytes identical"] == "pass"
    secrets = [v for k, v in canonical.env().items() if k.endswith(("_TOKEN", "_PASSWORD")) and v]
    secrets += [p.read_text().strip() for p in (canonical.path / "secrets").glob("*.key")]
    assert len(secrets) >= 3
    written = run.everything_written()
    assert [s for s in secrets if s in written] == []  # the branch's results included


@pytest.mark.slow
def test_a_defect_branch_is_red_and_the_canonical_is_proven_restored(
    canonical: Box, sshd: Sshd, tmp_path: Path
) -> None:
    before = Before(canonical)
    flags = ssh_args(sshd, canonical, tmp_path / "inventory")

    run = e2e("defect", *flags, "--mode", "check", "--keep", out=tmp_path / "out", script=True)

    assert run.code == 1, run.output
    inner = branch_run(run)
    assert inner.summary["exit_code"] == 1
    tier = next(c for c in inner.summary["checks"] if c["name"] == TIER_CHECK)
    assert (tier["verdict"], tier["observed"]) == ("fail", '"bogus-mini"')
    assert run.verdict("e2e: gate --mode check on defect") == "fail"
    assert run.verdict("restore: check: " + TIER_CHECK) == "pass"  # the canonical's own code
    before.assert_restored("defect", checkout_removed=False)  # --keep: kept, and stopped
    assert "the checkout is KEPT" in run.output


def start_e2e(box: Box, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`invoke e2e good --local` in the background, once its branch gate is in its scenario
    (the scenario's apply is in the branch run's events)."""
    out = tmp_path / "out"
    out.mkdir()
    console = (tmp_path / "console.txt").open("w")
    command = [sys.executable, "-m", "invoke", "e2e", "good", "--local", "--dir",
               str(box.path), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, stdout=console, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=gate_env())  # fmt: skip

    def scenario_applied() -> bool:
        return any(
            "apply -y" in line
            for path in out.glob("*/branch/*/events.jsonl")
            for line in path.read_text().splitlines()
        )

    try:
        wait_for("the branch gate's scenario apply", scenario_applied, bool, timeout=180)
    except BaseException:
        proc.kill()
        raise
    return proc, out


@pytest.mark.slow
def test_a_signal_mid_e2e_stops_the_branch_and_restores_the_canonical(
    canonical: Box, tmp_path: Path
) -> None:
    """SIGTERM (what CI sends); SIGINT takes the same handler, and test_gate_signals.py
    proves both signals' codes on a plain run."""
    code = 143
    before = Before(canonical)
    proc, out = start_e2e(canonical, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        ended = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "console.txt").read_text()
    assert ended == code, output
    run = GateRun(ended, output, out)
    assert run.verdict("e2e: branch stack stopped") == "pass"
    assert branch_run(run).summary["exit_code"] == code  # the branch's gate was told, and ended
    before.assert_restored("good")


@pytest.mark.slow
def test_a_branch_that_cannot_start_is_red_and_its_checkout_kept(
    canonical: Box, tmp_path: Path
) -> None:
    before = Before(canonical)

    run = e2e("broken", "--local", "--dir", str(canonical.path), out=tmp_path / "out")

    assert run.code == 1, run.output
    assert run.verdict("e2e: branch stack applied") == "fail"
    assert "e2e: gate --mode targeted on broken" not in run.verdicts()  # never gated
    # its control command cannot run, so nothing proves its stack down: the checkout stays
    assert run.verdict("e2e: branch stack stopped") == "fail"
    assert "the checkout is KEPT" in run.output
    before.assert_restored("broken", checkout_removed=False)


@pytest.mark.slow
@pytest.mark.usefixtures("short_lock_grace")
def test_a_killed_e2e_is_put_back_by_gate_recover(canonical: Box, tmp_path: Path) -> None:
    before = Before(canonical)
    checkout = checkout_of(canonical, "good")
    proc, out = start_e2e(canonical, tmp_path)
    proc.kill()  # SIGKILL: no restore from the wrapper; its child gate gets SIGTERM
    proc.wait(timeout=30)
    branch_summary = wait_for(
        "the branch gate's summary", lambda: list(out.glob("*/branch/*/summary.json")), bool, 120
    )
    assert '"exit_code": 143' in branch_summary[0].read_text()
    assert canonical.status()[0] != 0, "the canonical should be down: the wrapper was killed"

    recovered = run_gate("--recover", "--local", "--dir", str(canonical.path),
                         out=tmp_path / "recover")  # fmt: skip

    assert recovered.code == 0, recovered.output
    stack_dir = str(checkout)
    said = f"recover: the branch's stack at {stack_dir} stopped: mended"
    assert said in recovered.summary["notes"], recovered.output
    before.assert_restored("good", checkout_removed=False)
    again = e2e("good", "--local", "--dir", str(canonical.path), out=tmp_path / "again")
    assert again.code == 2 and "already exists" in again.output, again.output


@pytest.mark.slow
def test_a_branch_that_will_not_stop_is_dirty_and_the_canonical_never_started_on_it(
    canonical: Box, tmp_path: Path
) -> None:
    before = Before(canonical)
    checkout = checkout_of(canonical, "sticky")

    run = e2e("sticky", "--local", "--dir", str(canonical.path), "--mode", "check",
              out=tmp_path / "out")  # fmt: skip

    assert run.code == 4, run.output
    assert run.verdict("e2e: gate --mode check on sticky") == "pass"
    assert run.verdict("e2e: branch stack stopped") == "fail"
    assert "the canonical was NOT started" in run.output
    assert processes_under(checkout) != []  # the raw source: the branch does still run
    assert canonical.status()[0] != 0  # and the canonical was left down, not started on it
    assert checkout.is_dir()

    kill_leftovers(checkout)  # the user stops the branch's stack, then runs the hint
    recovered = run_gate("--recover", "--local", "--dir", str(canonical.path),
                         out=tmp_path / "recover")  # fmt: skip
    assert recovered.code == 0, recovered.output
    before.assert_restored("sticky", checkout_removed=False)


# --- bad input: one line, exit 2, nothing touched --------------------------------------------


def untouched(path: Path) -> dict[str, str]:
    """Every file under the canonical checkout (.git included) by hash."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def gate_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("gate:")]


@pytest.fixture
def stack_repo(tmp_path: Path) -> Path:
    """The sample's repository as the stack dir, not deployed (e2e must stop before it)."""
    return make_stack_repo(tmp_path / "stack")


BAD: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "unknown branch": (lambda repo: None, "no-such-branch", "no such branch"),
    "shell words as branch": (lambda repo: None, "good;touch${IFS}x", "give a branch name"),
    "dotted branch": (lambda repo: None, "good/../main", "give a branch name"),
    "dirty canonical": (
        lambda repo: (repo / "install.sh").write_text("# edited\n"),
        "good",
        "uncommitted changes (install.sh)",
    ),
    "not a git checkout": (
        lambda repo: shutil.rmtree(repo / ".git"),
        "good",
        "is not in a git checkout",
    ),
    "checkout in the way": (
        lambda repo: (repo.parent / "stack.e2e-good").mkdir(),
        "good",
        "already exists",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_2_with_nothing_touched(
    stack_repo: Path, tmp_path: Path, case: str
) -> None:
    spoil, branch, said = BAD[case]
    spoil(stack_repo)
    before = untouched(stack_repo)
    around = sorted(p.name for p in tmp_path.iterdir())

    run = e2e(branch, "--local", "--dir", str(stack_repo), out=tmp_path / "out")

    assert run.code == 2, run.output
    assert gate_lines(run.output) == run.output.strip().splitlines(), run.output
    assert len(gate_lines(run.output)) == 1 and said in run.output, run.output
    assert list((tmp_path / "out").iterdir()) == []  # no results: the run never began
    assert untouched(stack_repo) == before
    assert not (stack_repo / ".gate").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == [
        n for n in around if n != "out"
    ]


def test_an_absent_stack_dir_is_exit_2(tmp_path: Path) -> None:
    run = e2e("good", "--local", "--dir", str(tmp_path / "nowhere"), out=tmp_path / "out")
    assert run.code == 2, run.output
    assert "not found" in gate_lines(run.output)[0]
    assert not (tmp_path / "nowhere").exists()
