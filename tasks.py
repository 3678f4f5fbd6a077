"""Invoke tasks: thin wrappers that parse flags and call gate/. See docs/quickstart.md."""

from __future__ import annotations

import sys

from invoke import Context, task

from gate.cli import run_cli


@task(
    iterable=["scenario", "fact"],
    help={
        "host": "inventory name, or user@host[:port] (ssh config aliases work)",
        "local": "gate the stack on this machine (needs --dir)",
        "dir": "the stack dir on the box (overrides the inventory)",
        "check": "non-destructive: judge the live state, change nothing",
        "list": "print what would run (scenarios, axes, coverage) and exit",
        "scenario": "run only this scenario (repeatable)",
        "out": "where results/<run-id>/ goes (default results)",
        "json": "print summary.json to stdout at the end",
        "workers": "workers expected online (default: inventory, else 2)",
        "accept_new_host_key": "trust and record an unknown host key",
        "keep": "leave the box on the last scenario (no final restore)",
        "strict": "fail on any skip of class missing, or a run that checked nothing",
        "recover": "restore the box from the baseline a killed run left on it, and prove it",
        "matrix": "the matrix file declaring the contract (default matrix.py)",
        "known_hosts": "extra known_hosts file (default inventory/known_hosts)",
        "fact": "key=value for scenario requirements, e.g. remote_node_url=http://...",
        "inventory": "the inventory dir (default inventory)",
    },
)
def gate(
    c: Context,
    host: str = "",
    local: bool = False,
    dir: str = "",
    check: bool = False,
    list: bool = False,
    scenario: list[str] | None = None,
    out: str = "results",
    json: bool = False,
    workers: int = -1,
    accept_new_host_key: bool = False,
    keep: bool = False,
    strict: bool = False,
    recover: bool = False,
    matrix: str = "matrix.py",
    known_hosts: str = "",
    fact: list[str] | None = None,
    inventory: str = "inventory",
) -> None:
    """Gate a box: --check, the config matrix (default), or --recover."""
    code = run_cli(
        host=host,
        local=local,
        dir=dir,
        check=check,
        list_only=list,
        scenarios=scenario or [],
        out=out,
        json=json,
        workers=workers,
        accept_new_host_key=accept_new_host_key,
        keep=keep,
        strict=strict,
        recover=recover,
        matrix=matrix,
        known_hosts=known_hosts,
        facts=fact or [],
        inventory=inventory,
    )
    sys.exit(code)


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
