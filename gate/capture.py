"""What a failing check leaves behind for triage: the box's own words, scrubbed on the box."""

from __future__ import annotations

import json

from gate.artifacts import Artifacts
from gate.box import Box
from gate.contract import Config
from gate.observe import read_api


def capture(box: Box, artifacts: Artifacts, cfg: Config | None, where: str) -> None:
    """status, doctor, config (secret paths masked), env (values masked), api-state, logs."""
    commands = box.contract.commands

    def save(name: str, text: str) -> None:
        artifacts.write_text(f"{where}/{name}", text)

    def output(result_text: tuple[str, str, int | None]) -> str:
        out, err, code = result_text
        return f"{out}{err}\n[exit {code}]\n"

    for name, verb in (("status.txt", commands.status), ("doctor.txt", commands.doctor)):
        result = box.control(verb, timeout=60)
        save(name, output((result.stdout, result.stderr, result.exit_code)) + result.reason)
    save("config.json", box.tool("config").stdout)
    save("env.masked.json", box.tool("env", "--all").stdout)
    if cfg is not None:
        api = read_api(box, cfg)
        shown = json.dumps(api.value, indent=2) if api.usable else f"unreadable: {api.why}"
        save("api-state.json", shown)
        services = sorted(box.contract.expected_services(cfg))
    else:
        services = []
    for service in services:
        verb = commands.logs.format(service=service, lines=box.contract.log_lines)
        result = box.control(verb, timeout=30)
        save(f"logs/{service}.log", result.stdout + result.stderr)
