"""Each check in the battery, shown green and shown red on readings built in the test."""

from __future__ import annotations

from typing import Any

import pytest

from gate.checks import (
    Reading,
    SkipClass,
    Verdict,
    check_auth_refused,
    check_field,
    check_in_use,
    check_no_unexpected,
    check_secrets_kept,
    check_secrets_present,
    check_services_running,
    check_status_exit,
    worst,
)
from gate.contract import (
    Absent,
    AtLeast,
    Check,
    Context,
    Equals,
    InUse,
    Matches,
    OneOf,
    Services,
    config,
    fact,
)
from gate.errors import Unreachable
from gate.expect import unfit

SHAPE = Services()
LISTED = Services(at="services", name="name", pid="pid")
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
        check_field(lost, Check("x", "api", "x", Equals(1)), CTX),
        check_auth_refused("api", lost),
        *check_in_use(lost, (InUse("A_TOKEN", "conf/a"),)),
        check_secrets_present(lost),
    ):
        assert record.verdict is Verdict.INCONCLUSIVE, record.name


def test_garbage_status_is_a_clear_failure() -> None:
    garbage: Reading[Any] = Reading(error="status --json printed no JSON: 'oops'")
    record = check_services_running(garbage, EXPECTED, SHAPE)
    assert record.verdict is Verdict.FAIL
    assert "no JSON" in record.evidence
    wrong_shape: Reading[Any] = Reading(value={"services": ["node"]})
    record = check_services_running(wrong_shape, EXPECTED, SHAPE)
    assert record.verdict is Verdict.FAIL
    assert record.evidence == (
        "probe status services[0] is str node, not an object with 'state' and 'name'"
    )
    no_services: Reading[Any] = Reading(value={"overall": "ok"})
    record = check_services_running(no_services, EXPECTED, SHAPE)
    assert record.evidence == "probe status has no services object or list at 'services'"


def test_a_repeated_service_name_cannot_hide_a_dead_copy() -> None:
    twice: Reading[Any] = Reading(
        value=[{"name": "api", "state": "FATAL"}, {"name": "api", "state": "running"}]
    )
    record = check_services_running(twice, frozenset({"api"}), Services(at="@"))
    assert record.verdict is Verdict.FAIL
    assert record.evidence == "probe status @[1] repeats service 'api'"


def test_a_list_shaped_status_is_read_by_name() -> None:
    entries = [{"name": "node", "state": "running", "pid": 4}, {"name": "pool", "state": "running"}]
    listed: Reading[Any] = Reading(
        value={"services": [*entries, {"name": "worker-1", "state": "exited"}]}
    )
    record = check_services_running(listed, EXPECTED, LISTED)
    assert (record.verdict, record.evidence) == (Verdict.FAIL, "worker-1 is exited")
    top_level: Reading[Any] = Reading(value=entries)
    assert (
        check_no_unexpected(top_level, frozenset({"node", "pool"}), Services(at="@")).verdict
        is Verdict.PASS
    )
    assert (
        check_no_unexpected(top_level, frozenset({"node"}), Services(at="@")).evidence
        == "unexpected: pool"
    )


@pytest.mark.parametrize(
    ("code", "verdict"), [(0, Verdict.PASS), (1, Verdict.FAIL), (2, Verdict.FAIL)]
)
def test_status_exit_code_must_be_exactly_zero(code: int, verdict: Verdict) -> None:
    assert check_status_exit(Reading(value=code)).verdict is verdict


CTX = Context(config={"pool": {"tier": "mini"}, "node": {"compact": False}}, facts={"workers": "2"})


def test_field_equals_config_value() -> None:
    check = Check("tier", "api", "pool.tier", Equals(config("pool.tier")))
    assert (
        check_field(Reading(value={"pool": {"tier": "mini"}}), check, CTX).verdict is Verdict.PASS
    )
    wrong = check_field(Reading(value={"pool": {"tier": "main"}}), check, CTX)
    assert wrong.verdict is Verdict.FAIL
    assert wrong.observed == '"main"'


def test_false_is_not_missing_and_not_zero() -> None:
    check = Check("compact", "api", "node.compact", Equals(config("node.compact")))
    assert (
        check_field(Reading(value={"node": {"compact": False}}), check, CTX).verdict is Verdict.PASS
    )
    missing = check_field(Reading(value={"node": {}}), check, CTX)
    assert (missing.verdict, missing.observed) == (Verdict.FAIL, "missing")
    zero = check_field(Reading(value={"node": {"compact": 0}}), check, CTX)
    assert zero.verdict is Verdict.FAIL


def test_at_least_a_fact_and_type_strictness() -> None:
    check = Check("workers", "api", "workers.online", AtLeast(fact("workers", int)))
    assert (
        check_field(Reading(value={"workers": {"online": 2}}), check, CTX).verdict is Verdict.PASS
    )
    assert (
        check_field(Reading(value={"workers": {"online": 1}}), check, CTX).verdict is Verdict.FAIL
    )
    as_text = check_field(Reading(value={"workers": {"online": "3"}}), check, CTX)
    assert as_text.verdict is Verdict.FAIL


def test_a_threshold_that_cannot_fail_is_named() -> None:
    zero = Context(config={}, facts={"workers": "0"})
    assert "holds for any count" in unfit(AtLeast(fact("workers", int)), zero)
    assert unfit(AtLeast(fact("workers", int)), CTX) == ""
    assert unfit(OneOf(()), CTX) == "OneOf() of nothing can never hold"


@pytest.mark.parametrize(
    ("expect", "seen", "verdict"),
    [
        (OneOf(("mini", "main")), "main", Verdict.PASS),
        (OneOf(("mini", "main")), "nano", Verdict.FAIL),
        (OneOf((1, 2)), True, Verdict.FAIL),
        (Matches(r"^allkeys-"), "allkeys-lru", Verdict.PASS),
        (Matches(r"^allkeys-"), "noeviction", Verdict.FAIL),
        (Matches(r"1"), 1, Verdict.FAIL),
        (Absent(), None, Verdict.PASS),
        (Absent(), False, Verdict.FAIL),
        (Equals(["127.0.0.1"]), ["0.0.0.0"], Verdict.FAIL),
        (Equals([True]), [1], Verdict.FAIL),
    ],
)
def test_expectations(expect: Any, seen: Any, verdict: Verdict) -> None:
    check = Check("x", "p", "x", expect)
    value = {} if seen is None else {"x": seen}
    assert check_field(Reading(value=value), check, CTX).verdict is verdict


def test_garbage_is_failed_with_evidence_and_a_caveat_is_carried() -> None:
    check = Check("tier", "api", "pool.tier", Equals("mini"))
    record = check_field(Reading(error="api printed no JSON: '<html>'"), check, CTX)
    assert record.verdict is Verdict.FAIL
    assert "no JSON" in record.evidence
    noted = check_field(
        Reading(value={"pool": {"tier": "mini"}}, note="TLS not verified"), check, CTX
    )
    assert noted.evidence == 'pool.tier = "mini"; TLS not verified'


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ({"code": 401, "body": "", "error": ""}, Verdict.PASS),
        ({"code": 403, "body": "", "error": ""}, Verdict.PASS),
        ({"code": 200, "body": "{}", "error": ""}, Verdict.FAIL),
        ({"code": 302, "body": "", "error": ""}, Verdict.FAIL),
        ({"code": None, "body": "", "error": "refused"}, Verdict.FAIL),
    ],
)
def test_auth_control_fails_an_api_that_answers_without_credentials(
    answer: dict[str, Any], verdict: Verdict
) -> None:
    record = check_auth_refused("admin", Reading(value=answer))
    assert record.verdict is verdict
    assert record.name == "auth: admin refuses a request without credentials"


def test_secrets_in_use_fails_a_secret_missing_from_its_file() -> None:
    uses = (InUse("A_TOKEN", "conf/a.conf"), InUse("B_TOKEN", "conf/b.conf"))
    answers: Reading[Any] = Reading(
        value=[
            {"secret": "A_TOKEN", "file": "conf/a.conf", "present": True, "secret_set": True},
            {"secret": "B_TOKEN", "file": "conf/b.conf", "present": False, "secret_set": True},
        ]
    )
    first, second = check_in_use(answers, uses)
    assert (first.verdict, second.verdict) == (Verdict.PASS, Verdict.FAIL)
    assert (second.name, second.observed) == ("secrets: B_TOKEN in use in conf/b.conf", "absent")


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
