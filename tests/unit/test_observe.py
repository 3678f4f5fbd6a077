"""Probes as the box is asked them: what is sent (never a secret), and what comes back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from gate.box import Box
from gate.contract import (
    CaFile,
    Command,
    Header,
    Http,
    InsecureLoopback,
    Port,
    Secrets,
    StackContract,
)
from gate.inventory import HostSpec
from gate.observe import read_probe
from gate.testing.double import Reply, ScriptedTarget

CONTRACT = StackContract(
    name="observe",
    control="./kvctl",
    expected_services=lambda _cfg: frozenset({"redis"}),
    secrets=Secrets(env_keys=("*_PASSWORD",)),
)
CFG = {"redis": {"port": 6400}, "front": {"tls": True}}


@pytest.fixture
def box() -> Iterator[tuple[Box, ScriptedTarget]]:
    target = ScriptedTarget()
    target.open()
    target.on("mkdir -p .gate && chmod 700 .gate", Reply())
    target.on(re.compile(r"^umask 077 && cat > "), Reply())
    made = Box(
        target, HostSpec(name="t", host="t.invalid", dir="/srv/kv"), CONTRACT, lambda _event: None
    )
    made.install_tool()
    yield made, target
    target.verify()


REDIS = Command(
    "redis-policy",
    lambda cfg: f"redis-cli -p {cfg['redis']['port']} CONFIG GET maxmemory-policy",
    output="lines",
    env={"REDISCLI_AUTH": "REDIS_PASSWORD"},
)


def test_a_command_probe_gets_its_secret_by_name_and_answers_lines(
    box: tuple[Box, ScriptedTarget],
) -> None:
    session, target = box
    target.on(
        "redis-cli -p 6400 CONFIG GET maxmemory-policy",
        Reply(stdout="maxmemory-policy\nallkeys-lru\n\n"),
    )
    reading = read_probe(session, REDIS, CFG)
    assert reading.value == ["maxmemory-policy", "allkeys-lru"]
    assert target.calls[-1].raw.endswith(" REDISCLI_AUTH=REDIS_PASSWORD")  # a key name only


def test_a_failing_command_is_a_bad_answer_with_its_words(
    box: tuple[Box, ScriptedTarget],
) -> None:
    session, target = box
    target.on(re.compile("^redis-cli"), Reply(1, stderr="NOAUTH Authentication required.\n"))
    reading = read_probe(session, REDIS, CFG)
    assert reading.error == "redis-policy: exit 1: NOAUTH Authentication required."


def test_control_in_a_command_is_the_control_command(box: tuple[Box, ScriptedTarget]) -> None:
    session, target = box
    target.on("./kvctl version", Reply(stdout="kvfront 1.0.0\n"))
    probe = Command("version", "{control} version", output="text")
    assert read_probe(session, probe, CFG).value == "kvfront 1.0.0"


def http_answer(code: int, body: Any) -> Reply:
    return Reply(stdout=json.dumps({"code": code, "body": json.dumps(body), "error": ""}))


def test_an_http_probe_names_the_header_key_and_the_ca_not_their_values(
    box: tuple[Box, ScriptedTarget],
) -> None:
    session, target = box
    target.on(re.compile(r"boxtool\.py http "), http_answer(200, {"ok": True}))
    probe = Http(
        "admin",
        lambda cfg: "https://127.0.0.1:8443/admin",
        auth=Header("ADMIN_TOKEN"),
        tls=CaFile("secrets/front.crt"),
    )
    assert read_probe(session, probe, CFG).value == {"ok": True}
    sent = target.calls[-1].raw
    assert "--env-key ADMIN_TOKEN" in sent and "--ca secrets/front.crt" in sent


def test_an_unverified_tls_probe_carries_its_caveat(box: tuple[Box, ScriptedTarget]) -> None:
    session, target = box
    target.on(re.compile(r"boxtool\.py http "), http_answer(200, {"ok": True}))
    probe = Http("api", "https://127.0.0.1:1/api", tls=InsecureLoopback())
    reading = read_probe(session, probe, CFG)
    assert reading.note == "TLS not verified (declared InsecureLoopback)"
    assert "--insecure" in target.calls[-1].raw


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (http_answer(401, {"error": "unauthorized"}), "api answered HTTP 401"),
        (Reply(stdout=json.dumps({"code": 200, "body": "<html>", "error": ""})), "not JSON"),
        (Reply(stdout=json.dumps({"code": None, "body": "", "error": "refused"})), "refused"),
    ],
)
def test_an_http_probe_that_answers_badly_says_how(
    box: tuple[Box, ScriptedTarget], answer: Reply, error: str
) -> None:
    session, target = box
    target.on(re.compile(r"boxtool\.py http "), answer)
    assert error in read_probe(session, Http("api", "http://127.0.0.1:1/"), CFG).error


def test_https_without_a_tls_declaration_and_insecure_off_loopback_are_refused() -> None:
    assert "needs tls=CaFile" in Http("a", "https://127.0.0.1/").check_tls({})
    remote = Http("a", "https://10.0.0.5/", tls=InsecureLoopback())
    assert "is for loopback URLs, not 10.0.0.5" in remote.check_tls({})
    assert Http("a", "https://localhost/", tls=InsecureLoopback()).check_tls({}) == ""


def test_a_port_probe_without_handshake_says_so(box: tuple[Box, ScriptedTarget]) -> None:
    session, target = box
    target.on(
        re.compile(r"boxtool\.py port 127\.0\.0\.1 6400 --no-tls$"),
        Reply(stdout='{"open": true, "tls": null, "listening": ["127.0.0.1"]}'),
    )
    probe = Port("redis-port", lambda cfg: cfg["redis"]["port"], handshake=False)
    assert read_probe(session, probe, CFG).value["listening"] == ["127.0.0.1"]


def test_a_command_probe_with_an_unknown_output_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="output must be json, text or lines"):
        Command("x", "true", output="yaml")
