"""The box session and its on-box helper, on a real directory through a real LocalTarget.

No stack runs here: a stack dir with an env file, a config and secret files is enough to
prove what leaves the box and what does not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from gate.box import Box, Event, Kind
from gate.contract import Secrets, StackContract
from gate.inventory import local_spec
from gate.result import Outcome
from gate.target import LocalTarget

TOKEN = "canary-token-5f1e2d"
PASSWORD = "canary-password-77aa"
REMOTE = "canary-remote-0b9c"
KEY_LINE = "canary-key-material-1234567890"
URL_PASSWORD = "canary-url-pw-3c4d"

CONTRACT = StackContract(
    name="fixture",
    expected_services=lambda _cfg: frozenset({"svc"}),
    control="./stackctl",
    secrets=Secrets(
        env_keys=("*_TOKEN", "*_PASSWORD"),
        files=("secrets/*.key",),
        config_paths=("upstream.token",),
    ),
)


@pytest.fixture
def box(tmp_path: Path) -> tuple[Box, list[Event], Path]:
    stack = tmp_path / "stack"
    (stack / "secrets").mkdir(parents=True)
    (stack / ".env").write_text(f"MODE=fast\nAPI_TOKEN={TOKEN}\nDB_PASSWORD={PASSWORD}\n")
    config = {
        "upstream": {"token": REMOTE, "port": 8000, "url": f"http://gate:{URL_PASSWORD}@10.0.0.9/"},
        "mode": "fast",
    }
    (stack / "config.json").write_text(json.dumps(config))
    (stack / "secrets" / "node.key").write_text(KEY_LINE + "\n")
    events: list[Event] = []
    session = Box(LocalTarget(), local_spec(str(stack)), CONTRACT, events.append)
    session.install_tool()
    return session, events, stack


def test_output_is_scrubbed_on_the_box(box: tuple[Box, list[Event], Path]) -> None:
    session, _, _ = box
    result = session.run("cat .env config.json secrets/node.key; echo " + TOKEN + " >&2")
    assert result.ok
    assert "MODE=fast" in result.stdout  # the non-secret content did come back
    for secret in (TOKEN, PASSWORD, REMOTE, KEY_LINE):
        assert secret not in result.stdout + result.stderr


def test_fingerprints_cover_every_category_without_plaintext(
    box: tuple[Box, list[Event], Path],
) -> None:
    session, _, _ = box
    prints = session.tool_json("fingerprint")
    assert sorted(prints["env"]) == ["API_TOKEN", "DB_PASSWORD"]
    assert sorted(prints["files"]) == ["secrets/node.key"]
    assert sorted(prints["config"]) == ["upstream.token"]
    text = json.dumps(prints)
    assert all(secret not in text for secret in (TOKEN, PASSWORD, REMOTE, KEY_LINE))


def test_fingerprint_changes_when_a_secret_changes(box: tuple[Box, list[Event], Path]) -> None:
    session, _, stack = box
    before = session.tool_json("fingerprint")
    (stack / ".env").write_text(f"MODE=fast\nAPI_TOKEN=rotated-value\nDB_PASSWORD={PASSWORD}\n")
    after = session.tool_json("fingerprint")
    assert after["env"]["API_TOKEN"] != before["env"]["API_TOKEN"]
    assert after["env"]["DB_PASSWORD"] == before["env"]["DB_PASSWORD"]


def test_env_and_config_are_masked(box: tuple[Box, list[Event], Path]) -> None:
    session, _, _ = box
    env = session.tool_json("file", ".env", "env")
    assert env == {"API_TOKEN": "***", "DB_PASSWORD": "***", "MODE": "fast"}
    config = session.tool_json("config")
    assert config["upstream"] == {"token": "***", "port": 8000, "url": "http://gate:***@10.0.0.9/"}


def test_render_keeps_user_fields_types_and_refuses_unknown_paths(
    box: tuple[Box, list[Event], Path],
) -> None:
    session, _, stack = box
    base = str(stack / "config.json")
    ok = session.tool("render", base, "rendered.json", stdin=json.dumps({"upstream.port": "8000"}))
    assert ok.ok, ok.stderr
    rendered = json.loads((stack / "rendered.json").read_text())
    assert rendered["upstream"]["token"] == REMOTE  # user fields kept, on the box
    assert rendered["upstream"]["port"] == "8000"  # a string stays a string
    refused = session.tool("render", base, "other.json", stdin=json.dumps({"upstream.nope": 1}))
    assert refused.exit_code == 2
    assert "no path upstream.nope" in refused.stderr
    assert not (stack / "other.json").exists()


def test_a_command_past_its_timeout_is_killed_and_could_not_ask(
    box: tuple[Box, list[Event], Path],
) -> None:
    session, events, stack = box
    started = time.monotonic()
    result = session.run("echo $$ > sleeper.pid; exec sleep 30", timeout=1)
    assert time.monotonic() - started < 10
    assert result.outcome is Outcome.UNREACHABLE
    assert result.reason == "timeout after 1s"
    pid = int((stack / "sleeper.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert events[-1].result is result


def test_every_command_is_journaled_with_its_kind(box: tuple[Box, list[Event], Path]) -> None:
    session, events, _ = box
    assert {e.kind for e in events} == {Kind.BOOKKEEPING}  # installing the helper
    session.run("true")
    assert events[-1].kind is Kind.READ
    assert events[-1].command == "true"
    mode = (Path(session.host.dir) / ".gate").stat().st_mode & 0o777
    assert mode == 0o700


def test_each_run_scrubs_with_its_own_spec_whatever_another_run_installs(
    box: tuple[Box, list[Event], Path],
) -> None:
    """A run refused at the lock still installs boxtool; it must not change this run's spec."""
    _fixture_box, _events, stack = box
    blind = dataclasses.replace(CONTRACT, secrets=Secrets(env_keys=("NO_SUCH_*",)))
    mine_with_id = Box(LocalTarget(), local_spec(str(stack)), CONTRACT, [].append, run_id="a")
    other = Box(LocalTarget(), local_spec(str(stack)), blind, [].append, run_id="b")
    mine_with_id.install_tool()
    other.install_tool()  # after mine: the later writer must not win
    assert mine_with_id.spec_path != other.spec_path
    said = mine_with_id.run(f"echo {TOKEN} {PASSWORD}")
    assert TOKEN not in said.stdout and PASSWORD not in said.stdout, said.stdout
    assert other.run(f"echo {TOKEN}").stdout.strip() == TOKEN  # its own (blind) spec
    prints = mine_with_id.tool_json("fingerprint")
    assert set(prints["env"]) == {"API_TOKEN", "DB_PASSWORD"}
    mine_with_id.remove_spec()
    assert not (stack / mine_with_id.spec_path).exists()
    assert (stack / other.spec_path).exists()
