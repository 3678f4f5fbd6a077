"""What a failing check leaves behind for triage: the box's own words, scrubbed on the box."""

from __future__ import annotations

import json

from gate.artifacts import Artifacts
from gate.box import Box
from gate.contract import Config
from gate.observe import read_config, read_probe


def capture(box: Box, artifacts: Artifacts, cfg: Config | None, where: str) -> None:
    """The contract's diagnostics, the config (secret paths masked), every applicable
    probe's answer, and each expected service's logs when the contract has a logs verb."""
    contract = box.contract

    def save(name: str, text: str) -> None:
        artifacts.write_text(f"{where}/{name}", text)

    for name, verb in (("status.txt", contract.status.command), *contract.actions.diagnostics):
        result = box.control(verb, timeout=60)
        save(name, f"{result.stdout}{result.stderr}\n[exit {result.exit_code}]\n{result.reason}")
    config = read_config(box)
    save("config.json", json.dumps(config.value, indent=2) if config.usable else config.why)
    if cfg is None:
        return
    for probe in (p for p in contract.probes if p.applies(cfg)):
        reading = read_probe(box, probe, cfg)
        shown = (
            json.dumps(reading.value, indent=2) if reading.usable else f"unreadable: {reading.why}"
        )
        save(f"probes/{probe.name}.json", shown)
    if contract.actions.logs is None:
        return
    for service in sorted(contract.expected_services(cfg)):
        verb = contract.actions.logs.format(service=service, lines=contract.log_lines)
        result = box.control(verb, timeout=30)
        save(f"logs/{service}.log", result.stdout + result.stderr)
