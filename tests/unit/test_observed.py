"""Which checks observe an axis: computed from the expectations, and hard to fool."""

from __future__ import annotations

from typing import Any

from gate.contract import (
    Check,
    ConfigFile,
    Equals,
    File,
    OneOf,
    StackContract,
    Status,
    config,
    lookup,
)
from gate.matrix import Axis, Matrix, Scenario
from gate.observed import observers

MATRIX = Matrix(axes=(Axis("mode", ("fast", "safe")),), scenarios=(Scenario("s", {}),))
BASE = {"mode": "fast", "level": 3}


def contract(*checks: Check, **kw: Any) -> StackContract:
    probes = (File("settings", "settings.json", format="json"), File("cfg", "app.json", "json"))
    return StackContract(
        name="o",
        control="./ctl",
        expected_services=lambda _cfg: frozenset({"app"}),
        probes=probes,
        checks=checks,
        config=ConfigFile("app.json"),
        **kw,
    )


def found(*checks: Check, base: dict[str, Any] | None = BASE) -> list[str]:
    return observers(MATRIX, contract(*checks), base, {})["mode"]


def test_an_expectation_that_follows_the_axis_observes_it() -> None:
    assert found(Check("mode", "settings", "mode", Equals(config("mode")))) == ["settings: mode"]


def test_a_constant_or_a_reordered_set_observes_nothing() -> None:
    assert found(Check("c", "settings", "mode", Equals(lambda ctx: "fast"))) == []
    flip = OneOf(lambda ctx: ["a", "b"] if lookup(ctx.config, "mode") == "fast" else ["b", "a"])
    assert found(Check("o", "settings", "mode", flip)) == []
    typed = Equals(lambda ctx: 1 if lookup(ctx.config, "mode") == "fast" else True)
    assert found(Check("t", "settings", "mode", typed)) == ["settings: t"]  # 1 is not true


def test_reading_back_the_config_gate_rendered_is_a_tautology() -> None:
    assert found(Check("echo", "cfg", "mode", Equals(config("mode")))) == []


def test_a_check_that_needs_a_path_the_config_lacks_observes_nothing() -> None:
    needs = Equals(lambda ctx: [lookup(ctx.config, "mode"), lookup(ctx.config, "absent")])
    assert found(Check("n", "settings", "x", needs)) == []
    offline = Equals(lambda ctx: [lookup(ctx.config, "mode"), lookup(ctx.config, "level")])
    assert found(Check("n", "settings", "x", offline), base=None) == []  # --list: no level
    assert found(Check("n", "settings", "x", offline)) == ["settings: n"]


def test_a_renamed_status_probe_is_found_by_its_name() -> None:
    renamed = contract(status=Status(command="state --json", name="stack-status"))
    assert renamed.probe("stack-status") is renamed.status
