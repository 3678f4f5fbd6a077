"""Invoke tasks: thin. `invoke gate` is generated from gate's flag table (gate/cli/flags.py)."""

from __future__ import annotations

import sys

from gate.signals import process_guard

process_guard()  # first: a Ctrl-C while the rest loads is answered with 130, not lost

from invoke import Context, task  # noqa: E402

from gate.cli.invoke_task import exit_2_on_parse_errors, gate_task  # noqa: E402
from gate.e2e.cli import e2e_flag_help  # noqa: E402

exit_2_on_parse_errors()
gate = gate_task()


@task(help={"results_dir": "a run's directory, results/<run-id>/"})
def report(c: Context, results_dir: str) -> None:
    """Render report.html and summary.md again from a run's artifacts (no box needed)."""
    from gate.cli.report_cmd import regenerate

    sys.exit(regenerate(results_dir))


@task(
    iterable=["scenario", "fact"],
    help={**e2e_flag_help(), "branch": "a branch (or origin/ branch, or tag) of the stack's repo"},
)
def e2e(
    c: Context,
    branch: str,
    mode: str = "targeted",
    keep: bool = False,
    host: str = "",
    local: bool = False,
    dir: str = "",
    control: str = "",
    inventory: str = "",
    matrix: str = "",
    out: str = "",
    known_hosts: str = "",
    transport: str = "",
    accept_new_host_key: bool = False,
    strict: bool = False,
    scenario: list[str] | None = None,
    fact: list[str] | None = None,
) -> None:
    """Gate BRANCH of the stack on the box, then restore the canonical stack (docs/e2e.md)."""
    from gate.e2e.cli import run_e2e

    raw = dict(locals())
    for name in ("c", "branch", "mode", "keep", "run_e2e"):
        raw.pop(name, None)
    sys.exit(run_e2e(branch, raw, mode=mode, keep=keep))


@task
def demo(c: Context) -> None:
    """Deploy the sample stack and gate it, locally and over a loopback sshd."""
    c.run(f"{sys.executable} scripts/demo.py", pty=False)


@task
def test(c: Context) -> None:
    """The whole suite, as CI runs it."""
    c.run("make test")


@task
def lint(c: Context) -> None:
    """ruff and mypy."""
    c.run("make lint typecheck")
