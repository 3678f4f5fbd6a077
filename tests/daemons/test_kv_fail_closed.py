"""kvctl fails closed: it will not start redis (or its replica) while REDIS_PASSWORD is
empty in .env, whatever an older rendered redis.conf still holds (the refusal gate's
--auth-fail-closed asserts on kvfront)."""

from __future__ import annotations

import pytest
from kvbox import Box

pytestmark = pytest.mark.slow

REFUSAL = "refusing to start redis without a password (REDIS_PASSWORD is empty in .env)"


def test_start_up_and_restart_refuse_redis_without_its_password(box: Box) -> None:
    env = box.path / ".env"
    original = env.read_bytes()
    lines = [
        "REDIS_PASSWORD=" if line.startswith("REDIS_PASSWORD=") else line
        for line in original.decode().splitlines()
    ]
    assert box.ctl("stop", "redis").returncode == 0
    env.write_text("\n".join(lines) + "\n")
    for verb in (("start", "redis"), ("up",), ("restart",)):
        refused = box.ctl(*verb)
        assert refused.returncode == 1, (verb, refused.stdout, refused.stderr)
        assert REFUSAL in refused.stderr, (verb, refused.stderr)
    assert box.states()["redis"] != "running"
    started = box.ctl("start", "api")  # a daemon without a guard still starts
    assert started.returncode == 0, started.stderr
    env.write_bytes(original)
    started = box.ctl("start", "redis")
    assert started.returncode == 0, started.stdout + started.stderr
    box.wait_healthy()
