"""Which checks observe which matrix axis: a green run proves nothing about an axis that no
check's expectation depends on.

A check observes an axis when its expected value differs between two of the axis's values,
everything else in the config held fixed. That is computed, not declared: each check's
expectation is evaluated under every value of every axis. A check whose expectation cannot
be evaluated on the given config (a path the offline skeleton lacks) observes nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gate.checks import SERVICES_RUNNING
from gate.contract import Config, StackContract
from gate.expect import Context, OneOf
from gate.matrix import Axis, Matrix, with_value
from gate.probes import File, at

Expected = Callable[[Config, Mapping[str, str]], Any]
"""A check's expected value for one config, or a NotApplicable/any exception when none."""


class NotApplicable(Exception):
    """The check does not apply to this config."""


def expectations(contract: StackContract) -> dict[str, Expected]:
    """Every check whose expected value may follow the config: the declared ones, and the
    built-in expected-services check."""

    def services(cfg: Config, _facts: Mapping[str, str]) -> Any:
        return sorted(contract.expected_services(cfg))

    found: dict[str, Expected] = {SERVICES_RUNNING: services}
    for check in contract.checks:
        probe = contract.probe(check.probe)

        def expected(
            cfg: Config, facts: Mapping[str, str], check: Any = check, probe: Any = probe
        ) -> Any:
            tautology = _reads(probe, cfg, contract.config.path)
            if not (check.applies(cfg) and probe.applies(cfg)) or tautology:
                raise NotApplicable
            value = check.expect.expected(Context(config=cfg, facts=facts))
            return sorted(map(_canonical, value)) if isinstance(check.expect, OneOf) else value

        found[f"{check.probe}: {check.name}"] = expected
    return found


def _reads(probe: Any, cfg: Config, config_file: str) -> bool:
    """A check on the config file gate renders itself asserts only what gate wrote: it
    observes nothing (a tautology, whatever the daemon does)."""
    return isinstance(probe, File) and at(probe.path, cfg) == config_file


def observers(
    matrix: Matrix, contract: StackContract, base: Config | None, facts: Mapping[str, str]
) -> dict[str, list[str]]:
    """Axis path -> the checks whose expectation depends on its value (maybe none)."""
    config = base if base is not None else skeleton(matrix)
    checks = expectations(contract)
    return {
        axis.path: [
            name for name, expected in checks.items() if _depends(expected, axis, config, facts)
        ]
        for axis in matrix.axes
    }


def _depends(expected: Expected, axis: Axis, base: Config, facts: Mapping[str, str]) -> bool:
    seen = set()
    for value in axis.values:
        try:
            seen.add(_canonical(expected(with_value(base, axis.path, value), facts)))
        except Exception:
            continue
    return len(seen) > 1


def _canonical(value: Any) -> str:
    """A key that tells `true` from `1` and "8000" from 8000."""
    return json.dumps(value, sort_keys=True, default=repr)


def skeleton(matrix: Matrix) -> dict[str, Any]:
    """A config holding only each axis's default value: enough for `--list`, offline."""
    result: dict[str, Any] = {}
    for axis in matrix.axes:
        result = with_value(result, axis.path, axis.values[0])
    return result


def unobserved(found: Mapping[str, list[str]]) -> list[str]:
    return [path for path, names in found.items() if not names]
