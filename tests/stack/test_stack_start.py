"""`stackctl start SERVICE` reports a service that exits right after it started (exit 1,
pointing at its log), which is how the proxy's fail-closed refusal reaches the control
command; the `start_proxy_without_token` defect switch turns that refusal off."""

from __future__ import annotations

import json

import pytest
from stackbox import Box

pytestmark = pytest.mark.slow


def blank_token(box: Box) -> None:
    env = box.path / ".env"
    lines = [
        "PROXY_AUTH_TOKEN=" if line.startswith("PROXY_AUTH_TOKEN=") else line
        for line in env.read_text().splitlines()
    ]
    env.write_text("\n".join(lines) + "\n")


def test_start_fails_when_the_proxy_refuses_and_succeeds_with_its_token(box: Box) -> None:
    env = (box.path / ".env").read_text()
    assert box.ctl("stop", "proxy").returncode == 0
    blank_token(box)
    refused = box.ctl("start", "proxy")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "proxy exited (exit status 1) right after it started" in refused.stderr
    assert "stackctl logs proxy" in refused.stderr
    log = box.ctl("logs", "proxy", "-n", "5").stdout
    assert "refusing to start an unauthenticated proxy control API" in log
    (box.path / ".env").write_text(env)
    started = box.ctl("start", "proxy")
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.strip() == "Started: proxy"
    box.wait_healthy()


def test_the_defect_switch_starts_the_proxy_with_an_empty_token(box: Box) -> None:
    (box.path / "defects.json").write_text(json.dumps({"start_proxy_without_token": True}))
    assert box.ctl("stop", "proxy").returncode == 0
    blank_token(box)
    started = box.ctl("start", "proxy")
    assert started.returncode == 0, started.stdout + started.stderr
    _, status = box.status()
    assert status["services"]["proxy"]["state"] == "running", status
