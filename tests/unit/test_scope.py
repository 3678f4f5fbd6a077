"""The change's scope and the restart half of idempotency, on clocks built in the test."""

from __future__ import annotations

import pytest

from gate.checks import SkipClass, Verdict
from gate.matrix import Axis, Fact, Matrix, Scenario
from gate.restarts import changed_paths, restarted, scope

MATRIX = Matrix(
    axes=(
        Axis("front.tls", (False, True), touches=("front",)),
        Axis("redis.policy", ("noeviction", "allkeys-lru"), touches=("redis",)),
        Axis("replica.enabled", (False, True)),
    ),
    scenarios=(Scenario("defaults", {}),),
)
BASE = {"front": {"tls": False}, "redis": {"policy": "noeviction"}, "replica": {"enabled": False}}
TLS_ON = {**BASE, "front": {"tls": True}}
BEFORE = {"redis": (11,), "api": (12,), "front": (13,)}


def test_changed_paths_tell_types_apart() -> None:
    assert changed_paths({"a": {"b": 1}}, {"a": {"b": True}}) == ["a.b"]
    assert changed_paths(BASE, BASE) == []
    assert changed_paths(BASE, TLS_ON) == ["front.tls"]


def test_a_service_outside_the_change_recreated_fails_naming_it() -> None:
    after = {"redis": (21,), "api": (12,), "front": (23,)}
    (record,) = scope(MATRIX, BASE, TLS_ON, BEFORE, after)
    assert record.verdict is Verdict.FAIL
    assert record.observed == "recreated or stopped: redis"
    assert record.evidence == "changed front.tls; recreated or stopped: redis"


def test_an_untouched_service_that_stopped_fails_the_scope() -> None:
    after = {"api": (12,), "front": (23,)}
    (record,) = scope(MATRIX, BASE, TLS_ON, BEFORE, after)
    assert (record.verdict, record.observed) == (Verdict.FAIL, "recreated or stopped: redis")


def test_the_touched_service_may_restart() -> None:
    after = {"redis": (11,), "api": (12,), "front": (23,)}
    (record,) = scope(MATRIX, BASE, TLS_ON, BEFORE, after)
    assert (record.verdict, record.expected) == (Verdict.PASS, "2 unchanged outside front")


def test_an_axis_without_touches_makes_the_scope_unknown_not_green() -> None:
    replica = {**BASE, "replica": {"enabled": True}}
    (record,) = scope(MATRIX, BASE, replica, BEFORE, dict(BEFORE))
    assert (record.verdict, record.skip_class) == (Verdict.SKIP, SkipClass.BY_DESIGN)
    assert "replica.enabled changed and declares no touches" in record.evidence


def test_a_fact_filled_path_takes_its_facts_touches() -> None:
    matrix = Matrix(
        axes=MATRIX.axes,
        scenarios=(Scenario("remote", {"redis.url": Fact("url", touches=("api",))}),),
    )
    base = {**BASE, "redis": {"policy": "noeviction", "url": "a"}}
    moved = {**BASE, "redis": {"policy": "noeviction", "url": "b"}}
    after = {**BEFORE, "api": (22,)}
    (record,) = scope(matrix, base, moved, BEFORE, after)
    assert (record.verdict, record.expected) == (Verdict.PASS, "2 unchanged outside api")
    (red,) = scope(matrix, base, moved, BEFORE, {**after, "front": (23,)})
    assert red.observed == "recreated or stopped: front"


@pytest.mark.parametrize("nothing", [None, 0, "", "0", False])
def test_without_pids_neither_check_can_pass(nothing: object) -> None:
    blind = {"redis": (nothing,), "api": (nothing,), "front": (nothing,)}
    (record,) = scope(MATRIX, BASE, TLS_ON, blind, blind)
    assert (record.verdict, record.skip_class) == (Verdict.SKIP, SkipClass.MISSING)
    again = restarted(blind, blind, ["pid"])
    assert (again.verdict, again.skip_class) == (Verdict.SKIP, SkipClass.MISSING)
    assert restarted(BEFORE, BEFORE, []).verdict is Verdict.SKIP


def test_restarted_names_what_it_compared() -> None:
    record = restarted(BEFORE, BEFORE, ["pid"])
    assert record.verdict is Verdict.PASS
    assert record.evidence == "pid of 3 services compared before and after the second apply"
    moved = restarted(BEFORE, {**BEFORE, "api": (99,)}, ["pid"])
    assert (moved.verdict, moved.observed) == (Verdict.FAIL, "restarted: api")
    started = restarted(BEFORE, {**BEFORE, "replica": (40,)}, ["pid"])
    assert (started.verdict, started.observed) == (Verdict.FAIL, "restarted: replica")


def test_a_service_without_a_pid_is_named_not_compared_as_unchanged() -> None:
    partly = {**BEFORE, "api": (None,)}
    record = restarted(partly, {**partly, "redis": (11,)}, ["pid"])
    assert record.verdict is Verdict.PASS
    assert record.evidence.endswith("; no pid or start time reported for: api")
    assert record.expected == "2 unchanged"
