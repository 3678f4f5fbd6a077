"""The e2e wrapper's pure parts: branch names, paths, modes, the E2E declaration, the
flags handed to the branch's gate, and the lines echoed from it (docs/e2e.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.e2e import BranchDeploy
from gate.e2e import checkout as git
from gate.e2e.inner import _lines, child_env
from gate.e2e.spec import load_deploy, mode_flags
from gate.e2e.wrapper import E2EOptions, _scenarios, branch_flags
from gate.errors import UsageError
from gate.matrix import Axis, Matrix, Scenario

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["good", "claude/my-feature", "v1.2", "fix_3+x"])
def test_plain_branch_names_pass(name: str) -> None:
    git.check_branch_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "-x", "--upload-pack=touch", "a..b", "a b", "a;b", "$(x)", "a/", "a.lock", "/abs", "a."],
)
def test_other_branch_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError, match="give a branch name"):
        git.check_branch_name(name)


def test_the_checkout_sits_beside_the_canonical_one() -> None:
    canonical = git.Canonical("/srv/code/stack", "deploy")
    path = git.checkout_path(canonical, "claude/my-feature")
    assert path == "/srv/code/stack.e2e-claude-my-feature"
    assert git.stack_dir_in(path, canonical) == "/srv/code/stack.e2e-claude-my-feature/deploy"
    assert git.stack_dir_in(path, git.Canonical("/srv/code/stack", "")) == path


@pytest.mark.parametrize(
    "path", ["/srv/code/stack", "/srv/code/stack/sub", "/srv/code/other.e2e-x", "/", "/srv"]
)
def test_only_an_e2e_checkout_is_ever_removed(path: str) -> None:
    with pytest.raises(ValueError, match="not an e2e checkout"):
        git.remove(None, git.Canonical("/srv/code/stack", ""), path)  # type: ignore[arg-type]


def test_modes_map_to_gate_flags() -> None:
    assert mode_flags("check", ()) == ["--check"]
    assert mode_flags("targeted", ("a", "b")) == ["--scenario", "a", "--scenario", "b"]
    assert mode_flags("matrix", ()) == []


MATRIX = Matrix(
    axes=(Axis("x", (1, 2)),),
    scenarios=(Scenario("first", {"x": 1}), Scenario("second", {"x": 2})),
)


def test_targeted_walks_the_first_declared_scenario_or_the_named_ones() -> None:
    assert _scenarios(E2EOptions(e2e_mode="targeted"), MATRIX) == ("first",)
    named = E2EOptions(e2e_mode="targeted", scenarios=("second",))
    assert _scenarios(named, MATRIX) == ("second",)
    assert _scenarios(E2EOptions(e2e_mode="matrix"), MATRIX) == ()
    assert _scenarios(E2EOptions(e2e_mode="check"), MATRIX) == ()


@pytest.mark.parametrize(
    ("mode", "names", "said"),
    [
        ("targeted", ("nope",), "nope"),
        ("check", ("first",), "--mode check runs no scenario"),
        ("matrix", ("first",), "--mode matrix walks every scenario"),
    ],
)
def test_scenario_names_that_do_not_fit_the_mode_are_usage_errors(
    mode: str, names: tuple[str, ...], said: str
) -> None:
    with pytest.raises(UsageError, match=said):
        _scenarios(E2EOptions(e2e_mode=mode, scenarios=names), MATRIX)


def test_the_sample_declares_how_a_checkout_is_installed() -> None:
    deploy = load_deploy(REPO / "matrix.py")
    assert deploy.seed == ("stackctl",)
    assert deploy.install is not None and "install.sh" in deploy.install


def test_a_contract_file_without_e2e_gets_the_default_and_a_wrong_one_is_refused(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("CONTRACT = None\n")
    assert load_deploy(plain) == BranchDeploy()
    wrong = tmp_path / "wrong.py"
    wrong.write_text("E2E = {'install': 'make'}\n")
    with pytest.raises(UsageError, match=r"E2E must be a gate\.e2e\.BranchDeploy"):
        load_deploy(wrong)


@pytest.mark.parametrize("seed", ["/etc/passwd", "../other/config.json", ""])
def test_seeds_stay_inside_the_stack_dir(seed: str) -> None:
    with pytest.raises(ValueError, match="relative to the stack dir"):
        BranchDeploy(seed=(seed,))


def test_the_branch_gate_reaches_the_checkout_on_the_same_box(tmp_path: Path) -> None:
    class FakeRun:
        class artifacts:
            dir = tmp_path / "results" / "run"

    opts = E2EOptions(
        host="box",
        inventory_dir=Path("inv"),
        known_hosts=Path("kh"),
        transport="exec",
        accept_new_host_key=True,
        strict=True,
        facts={"workers": "2"},
        dir="/srv/code/stack",
    )
    flags = branch_flags(opts, "/srv/code/stack.e2e-good", FakeRun())  # type: ignore[arg-type]
    pairs = dict(zip(flags, [*flags[1:], ""], strict=True))
    assert pairs["--dir"] == "/srv/code/stack.e2e-good"  # never the canonical's dir
    assert flags.count("--dir") == 1
    assert pairs["--host"] == "box" and pairs["--inventory"] == "inv"
    assert pairs["--known-hosts"] == "kh" and pairs["--transport"] == "exec"
    assert pairs["--out"] == str(tmp_path / "results" / "run" / "branch")
    assert pairs["--fact"] == "workers=2"
    assert "--accept-new-host-key" in flags and "--strict" in flags
    assert Path(pairs["--matrix"]).is_absolute()


def test_lines_are_echoed_whole_and_the_rest_kept() -> None:
    seen: list[str] = []
    rest = _lines("one\ntwo\nthr", seen.append, final=False)
    assert (seen, rest) == (["one", "two"], "thr")
    rest = _lines(rest + "ee", seen.append, final=True)
    assert (seen, rest) == (["one", "two", "three"], "")


# --- a control command that names the canonical would gate the canonical, not the branch -----

CANON = git.Canonical(top="/srv/code/stack", prefix="")


@pytest.mark.parametrize(
    "control",
    ["/srv/code/stack/stackctl", "sudo /srv/code/stack/stackctl", "'/srv/code/stack/ctl' -v",
     "/usr/bin/ctl --box /srv/code/stack", "/srv/link/stackctl"],
)  # fmt: skip
def test_a_control_command_naming_the_canonical_is_refused(control: str) -> None:
    """e2e runs the control command in the checkout; one that names the canonical's path
    drives the canonical stack from there: the branch never runs, and its gate passes."""
    with pytest.raises(UsageError, match="names the canonical"):
        git.refuse_canonical_control(control, CANON, "/srv/link")


@pytest.mark.parametrize(
    "control", ["./stackctl", "sudo ./stackctl", "/usr/bin/ctl", "/srv/code/stack-tools/ctl",
                "/srv/code/stack.e2e-x/ctl", "docker compose"],
)  # fmt: skip
def test_a_control_command_relative_to_the_stack_dir_is_fine(control: str) -> None:
    git.refuse_canonical_control(control, CANON, "/srv/code/stack")
    git.refuse_canonical_control(control, CANON, "stack")


def test_e2e_with_a_control_naming_the_canonical_touches_nothing(tmp_path: Path) -> None:
    import io
    import subprocess

    from gate.e2e.cli import run_e2e
    from gate.errors import ExitCode

    top = tmp_path / "stack"
    top.mkdir()
    (top / "stackctl").write_text("#!/bin/sh\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "x"],
                 ["branch", "feature"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=top, check=True, env=env, capture_output=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    stream = io.StringIO()
    matrix = str(Path(__file__).parents[2] / "matrix.py")
    raw = {"local": True, "dir": str(top), "control": f"{top}/stackctl",
           "out": str(tmp_path / "out"), "matrix": matrix}  # fmt: skip
    code = run_e2e("feature", raw, mode="check", stream=stream)
    lines = stream.getvalue().strip().splitlines()
    assert code == ExitCode.USAGE and len(lines) == 1 and "names the canonical" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out/, no checkout
    assert not (top / ".gate").exists()


def test_the_branch_gate_writes_no_ci_step_summary_of_its_own() -> None:
    env = child_env({"GITHUB_STEP_SUMMARY": "/tmp/summary.md", "PATH": "/usr/bin"})
    assert "GITHUB_STEP_SUMMARY" not in env  # one summary on the job page: the wrapper's
    assert env["PATH"] == "/usr/bin" and env["NO_COLOR"] == "1"
