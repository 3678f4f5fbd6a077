"""Each check in the battery, shown green and shown red on readings built in the test."""

from __future__ import annotations

from typing import Any

import pytest

from gate.checks import (
    Reading,
    SkipClass,
    Verdict,
    check_api_field,
    check_no_unexpected,
    check_posture,
    check_scheme,
    check_secrets_kept,
    check_secrets_present,
    check_services_running,
    check_status_exit,
    worst,
)
from gate.contract import ApiCheck, AtLeast, Context, Equals, StatusShape, config, option
from gate.errors import Unreachable

SHAPE = StatusShape()
EXPECTED = frozenset({"node", "pool", "worker-1"})


def status(**states: str) -> Reading[Any]:
    return Reading(
        value={"services": {n.replace("_", "-"): {"state": s} for n, s in states.items()}}
    )


def test_services_running_passes_when_all_expected_run() -> None:
    record = check_services_running(
        status(node="running", pool="running", worker_1="running"), EXPECTED, SHAPE
    )
    assert record.verdict is Verdict.PASS


def test_services_running_fails_naming_the_stopped_worker() -> None:
    record = check_services_running(
        status(node="running", pool="running", worker_1="exited"), EXPECTED, SHAPE
    )
    assert record.verdict is Verdict.FAIL
    assert "worker-1 is exited" in record.evidence


def test_services_running_fails_when_a_service_is_absent() -> None:
    record = check_services_running(status(node="running", pool="running"), EXPECTED, SHAPE)
    assert record.verdict is Verdict.FAIL
    assert "worker-1 is absent" in record.evidence


def test_exact_names_node_exporter_is_not_node() -> None:
    reading = status(node_exporter="running", pool="running", worker_1="running")
    assert check_services_running(reading, EXPECTED, SHAPE).verdict is Verdict.FAIL
    extra = check_no_unexpected(reading, EXPECTED, SHAPE)
    assert extra.verdict is Verdict.FAIL
    assert "node-exporter" in extra.evidence


def test_no_unexpected_fails_on_an_extra_service() -> None:
    reading = status(node="running", pool="running", worker_1="running", cache="running")
    record = check_no_unexpected(reading, EXPECTED, SHAPE)
    assert record.verdict is Verdict.FAIL
    assert record.evidence == "unexpected: cache"


def test_no_unexpected_ignores_missing_but_refuses_an_empty_listing() -> None:
    reading = status(node="running", pool="running", worker_1="running", cache="missing")
    assert check_no_unexpected(reading, EXPECTED, SHAPE).verdict is Verdict.PASS
    empty: Reading[Any] = Reading(value={"services": {}})
    assert check_no_unexpected(empty, EXPECTED, SHAPE).verdict is Verdict.FAIL


def test_could_not_ask_is_inconclusive_never_pass() -> None:
    lost: Reading[Any] = Reading(lost=Unreachable("connection lost"))
    for record in (
        check_services_running(lost, EXPECTED, SHAPE),
        check_no_unexpected(lost, EXPECTED, SHAPE),
        check_status_exit(lost),
        check_posture(lost, {"A": "1"}),
        check_scheme(lost, True),
        check_secrets_present(lost),
    ):
        assert record.verdict is Verdict.INCONCLUSIVE, record.name


def test_garbage_status_is_a_clear_failure() -> None:
    garbage: Reading[Any] = Reading(error="status --json printed no JSON: 'oops'")
    record = check_services_running(garbage, EXPECTED, SHAPE)
    assert record.verdict is Verdict.FAIL
    assert "no JSON" in record.evidence
    wrong_shape: Reading[Any] = Reading(value={"services": ["node"]})
    assert check_services_running(wrong_shape, EXPECTED, SHAPE).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("code", "verdict"), [(0, Verdict.PASS), (1, Verdict.FAIL), (2, Verdict.FAIL)]
)
def test_status_exit_code_must_be_exactly_zero(code: int, verdict: Verdict) -> None:
    assert check_status_exit(Reading(value=code)).verdict is verdict


CTX = Context(config={"pool": {"tier": "mini"}, "node": {"compact": False}}, workers=2)


def test_api_field_equals_config_value() -> None:
    check = ApiCheck("tier", "pool.tier", Equals(config("pool.tier")))
    assert (
        check_api_field(Reading(value={"pool": {"tier": "mini"}}), check, CTX).verdict
        is Verdict.PASS
    )
    wrong = check_api_field(Reading(value={"pool": {"tier": "main"}}), check, CTX)
    assert wrong.verdict is Verdict.FAIL
    assert wrong.observed == '"main"'


def test_false_is_not_missing_and_not_zero() -> None:
    check = ApiCheck("compact", "node.compact", Equals(config("node.compact")))
    assert (
        check_api_field(Reading(value={"node": {"compact": False}}), check, CTX).verdict
        is Verdict.PASS
    )
    missing = check_api_field(Reading(value={"node": {}}), check, CTX)
    assert (missing.verdict, missing.observed) == (Verdict.FAIL, "missing")
    zero = check_api_field(Reading(value={"node": {"compact": 0}}), check, CTX)
    assert zero.verdict is Verdict.FAIL


def test_at_least_option_and_type_strictness() -> None:
    check = ApiCheck("workers", "workers.online", AtLeast(option("workers")))
    assert (
        check_api_field(Reading(value={"workers": {"online": 2}}), check, CTX).verdict
        is Verdict.PASS
    )
    assert (
        check_api_field(Reading(value={"workers": {"online": 1}}), check, CTX).verdict
        is Verdict.FAIL
    )
    as_text = check_api_field(Reading(value={"workers": {"online": "3"}}), check, CTX)
    assert as_text.verdict is Verdict.FAIL


def test_api_garbage_is_failed_with_evidence() -> None:
    check = ApiCheck("tier", "pool.tier", Equals("mini"))
    record = check_api_field(
        Reading(error="dashboard answered something that is not JSON: '<html>'"), check, CTX
    )
    assert record.verdict is Verdict.FAIL
    assert "not JSON" in record.evidence


def test_posture_names_the_wrong_key() -> None:
    want = {"POOL_TIER": "mini", "NODE_RPC_BIND": "127.0.0.1"}
    ok = check_posture(Reading(value={"POOL_TIER": "mini", "NODE_RPC_BIND": "127.0.0.1"}), want)
    assert ok.verdict is Verdict.PASS
    bad = check_posture(Reading(value={"POOL_TIER": "mini", "NODE_RPC_BIND": "0.0.0.0"}), want)
    assert bad.verdict is Verdict.FAIL
    assert "NODE_RPC_BIND: want 127.0.0.1, got 0.0.0.0" in bad.evidence
    assert check_posture(Reading(value={}), {}).verdict is Verdict.FAIL


def test_scheme() -> None:
    assert check_scheme(Reading(value="https"), True).verdict is Verdict.PASS
    assert check_scheme(Reading(value="http"), True).verdict is Verdict.FAIL
    assert check_scheme(Reading(value="none"), False).verdict is Verdict.FAIL


def test_empty_secret_set_is_an_error_not_unchanged() -> None:
    empty: Reading[Any] = Reading(value={"env": {}, "files": {}})
    assert check_secrets_present(empty).verdict is Verdict.FAIL
    assert check_secrets_kept({"env": {}}, empty).verdict is Verdict.FAIL


def test_secrets_kept_names_changed_and_removed() -> None:
    base = {"env": {"A_TOKEN": "1", "B_TOKEN": "2"}, "files": {"secrets/x.key": "3"}}
    same: Reading[Any] = Reading(value=base)
    assert check_secrets_kept(base, same).verdict is Verdict.PASS
    rotated: Reading[Any] = Reading(
        value={"env": {"A_TOKEN": "9"}, "files": {"secrets/x.key": "3"}}
    )
    record = check_secrets_kept(base, rotated)
    assert record.verdict is Verdict.FAIL
    assert record.observed == "env:A_TOKEN changed; env:B_TOKEN removed"


def test_secrets_kept_names_new_secrets_without_failing() -> None:
    base = {"env": {"A_TOKEN": "1"}, "files": {}}
    grown: Reading[Any] = Reading(
        value={"env": {"A_TOKEN": "1"}, "files": {"secrets/tls.key": "5"}}
    )
    record = check_secrets_kept(base, grown)
    assert record.verdict is Verdict.PASS
    assert record.evidence == "new since the baseline (left in place): files:secrets/tls.key"


def test_worst_and_skip_classes() -> None:
    assert worst([Verdict.PASS, Verdict.SKIP]) is Verdict.PASS
    assert worst([Verdict.PASS, Verdict.INCONCLUSIVE]) is Verdict.INCONCLUSIVE
    assert worst([Verdict.INCONCLUSIVE, Verdict.FAIL]) is Verdict.FAIL
    assert SkipClass.parse("by-design") is SkipClass.BY_DESIGN
    assert SkipClass.parse("who-knows") is SkipClass.MISSING
