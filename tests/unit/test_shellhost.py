"""Which commands the far end runs as boxtool calls in its own process: gate's exact form only."""

from __future__ import annotations

import pytest

from gate.shellhost import as_tool_call

TOOL = "python3 .gate/boxtool.py"


@pytest.mark.parametrize(
    ("command", "call"),
    [
        (f"cd /srv/stack && {TOOL} config", ("/srv/stack", {}, ["config"])),
        (
            f"cd '/srv/my stack' && GATE_SPEC=.gate/spec-x.json {TOOL} exec 30 './ctl status'",
            ("/srv/my stack", {"GATE_SPEC": ".gate/spec-x.json"}, ["exec", "30", "./ctl status"]),
        ),
    ],
)
def test_gates_own_form_is_a_tool_call(command: str, call: object) -> None:
    assert as_tool_call(command) == call


@pytest.mark.parametrize(
    "command",
    [
        f"cd /srv && {TOOL} config; rm -rf data",  # a shell command after it
        f"cd /srv && {TOOL} config > out.json",  # a redirection
        f"cd /srv && {TOOL} lock run-1 exclusive 30 info",  # holds the lock: its own process
        f"cd /srv && {TOOL} lifeline run-1",
        f"cd /srv && {TOOL} quiesce 5",
        f"cd /srv && {TOOL}",  # no verb
        f"{TOOL} config",  # no dir
        f"cd /srv && X=1 {TOOL} config",  # another variable
        "cd /srv && python3 other.py config",
        f"cd /srv && {TOOL} exec 30 'unterminated",
        "echo hi",
    ],
)
def test_anything_else_keeps_its_shell_meaning(command: str) -> None:
    assert as_tool_call(command) is None
