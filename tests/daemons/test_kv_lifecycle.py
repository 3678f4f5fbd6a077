"""Lifecycle, faults, backup/restore and side-by-side boxes, all through kvctl."""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from kvbox import Box, box_processes, digest, listening, tree_hashes, wait_for

pytestmark = pytest.mark.slow


def ok(box: Box, *args: str) -> str:
    proc = box.ctl(*args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def entry(box: Box, name: str) -> dict[str, object]:
    return next(s for s in box.status()[1]["services"] if s["name"] == name)


def test_stop_and_start_one_service(box: Box) -> None:
    before = box.pids()
    assert ok(box, "stop", "api") == "Stopped: api\n"
    code, doc = box.status()
    assert code == 1 and doc["overall"] == "degraded"
    assert entry(box, "api") == {"name": "api", "state": "exited", "pid": None,
                                 "detail": "stopped", "exitstatus": 0}  # fmt: skip
    assert "api: exited" in doc["reasons"]
    assert box.front("/api/PING")[0] == 502  # the front really lost its backend
    assert (box.states()["redis"], box.states()["front"]) == ("running", "running")
    ok(box, "start", "api")
    box.wait_healthy()
    after = box.pids()
    assert after["api"] != before["api"] and after["redis"] == before["redis"]


def test_kill_takes_the_whole_front_down(box: Box) -> None:
    port = box.port("front")
    nginx = {p for p, exe in box_processes(box.path).items() if exe == "nginx"}
    assert len(nginx) == 2  # master and worker: the control for "none left" below
    assert ok(box, "kill", "front").startswith("Sent SIGKILL to front")
    box.wait_state("front", "exited")
    wait_for("no nginx of the box", lambda: {p for p, e in box_processes(box.path).items()
                                             if e == "nginx"}, lambda s: not s)  # fmt: skip
    assert ("127.0.0.1", port) not in listening()
    assert box.front("/healthz")[0] is None
    # apply brings back what is down without calling it a configuration change
    assert ok(box, "apply", "-y") == "No configuration changes detected\nStarted: front\n"
    box.wait_healthy()


def test_a_frozen_redis_is_unhealthy_not_exited(box: Box) -> None:
    pid = box.pids()["redis"]
    ok(box, "kill", "-s", "STOP", "redis")
    doc = box.wait_state("redis", "unhealthy")
    by_name = {s["name"]: s for s in doc["services"]}
    assert by_name["redis"]["pid"] == pid and doc["overall"] == "degraded"
    assert by_name["redis"]["detail"] == "PING failed: timed out"
    assert by_name["api"]["state"] == "running"  # webdis is alive; redis is the one blamed
    ok(box, "kill", "-s", "SIGCONT", "redis")
    box.wait_healthy()
    assert box.pids()["redis"] == pid


def test_rm_removes_until_up(box: Box) -> None:
    assert ok(box, "rm", "front") == "Removed: front\n"
    assert box.status()[0] == 1
    assert entry(box, "front") == {"name": "front", "state": "missing", "pid": None}
    proc = box.ctl("start", "front")
    assert proc.returncode == 1 and "removed" in proc.stderr
    assert ok(box, "up") == "Started: front\n"
    box.wait_healthy()


@pytest.mark.parametrize(
    "args",
    [("stop", "nope"), ("start", "replica"), ("kill", "-s", "BOGUS", "redis"), ("rm", "web")],
)
def test_bad_service_or_signal_is_a_usage_error(shared_box: Box, args: tuple[str, ...]) -> None:
    before = shared_box.pids()
    proc = shared_box.ctl(*args)
    assert (proc.returncode, proc.stdout) == (2, "") and len(proc.stderr.splitlines()) == 1
    assert shared_box.pids() == before


def test_restart_down_up(box: Box) -> None:
    before = box.pids()
    assert ok(box, "restart") == "Restarted: redis, api, front\n"
    box.wait_healthy()
    after = box.pids()
    assert all(after[n] != before[n] for n in before)
    assert ok(box, "down") == "Stopped\n"
    code, doc = box.status()
    assert code == 1 and doc["overall"] == "down"
    assert {s["state"] for s in doc["services"]} == {"exited"}
    assert box_processes(box.path) == {}
    assert ok(box, "up") == "Started: redis, api, front\n"
    box.wait_healthy()


def test_backup_and_restore_round_trip(box: Box) -> None:
    ok(box, "apply", "-y")
    box.edit(front={"tls": True})
    ok(box, "apply", "-y")  # a certificate to carry
    box.wait_healthy()
    saved = tree_hashes(box.path, skip=("logs", "kvlib", "data", "backups", "run", "conf"))
    out = ok(box, "backup").splitlines()
    archive = Path(out[-1])
    assert archive.parent == box.path / "backups" and archive.is_file()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [".env", "config.json", "secrets/front.crt",
                                          "secrets/front.key"]  # fmt: skip
    token = box.secret_digest("ADMIN_TOKEN")
    # Wreck it: other settings, a new token, the certificate gone.
    box.edit(redis={"maxmemory_policy": "volatile-ttl"}, front={"tls": False})
    env = (box.path / ".env").read_text().splitlines()
    (box.path / ".env").write_text("".join(f"{ln}\n" for ln in env if "ADMIN_TOKEN" not in ln))
    for name in ("front.crt", "front.key"):
        (box.path / "secrets" / name).unlink()
    assert ok(box, "apply", "-y") == "Recreated: redis, front\n"
    assert box.secret_digest("ADMIN_TOKEN") != token
    assert box.config_get("maxmemory-policy") == "volatile-ttl"
    ok(box, "restore", str(archive))
    assert tree_hashes(box.path, skip=("logs", "kvlib", "data", "backups", "run", "conf")) == saved
    assert ok(box, "apply", "-y") == "Recreated: redis, front\n"
    box.wait_healthy()
    assert box.config_get("maxmemory-policy") == "noeviction"
    assert box.front("/admin/status", auth="ADMIN_TOKEN")[0] == 200
    assert box.front("/healthz")[1] == {"status": "ok", "scheme": "https"}


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_restore_refuses_a_bad_archive_touching_nothing(box: Box) -> None:
    good_env = (box.path / ".env").read_bytes()
    good_cfg = (box.path / "config.json").read_bytes()
    bad = {
        "not-a-tar": b"hello",
        "extra-member": _tar({"config.json": good_cfg, ".env": good_env, "etc/passwd": b"x"}),
        "escape": _tar({"config.json": good_cfg, ".env": good_env, "secrets/../x": b"x"}),
        "no-env": _tar({"config.json": good_cfg}),
        "bad-config": _tar({"config.json": b'{"redis": {"port": "x"}}', ".env": good_env}),
        "empty-secret": _tar({"config.json": good_cfg, ".env": b"REDIS_PASSWORD=\n"}),
    }
    files = tree_hashes(box.path)
    for name, data in bad.items():
        path = box.path.parent / f"{name}.tar.gz"
        path.write_bytes(data)
        proc = box.ctl("restore", str(path))
        assert (proc.returncode, proc.stdout) == (2, ""), (name, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1, (name, proc.stderr)
        assert tree_hashes(box.path) == files, name
    assert box.ctl("restore", str(box.path / "missing.tar.gz")).returncode == 2


def test_two_boxes_side_by_side(make_box: Callable[..., Box]) -> None:
    a, b = make_box("a"), make_box("b", replica={"enabled": True})
    a.wait_healthy()
    b.wait_healthy()
    ports_a = {a.port(s) for s in ("front", "redis", "api")}
    ports_b = {b.port(s) for s in ("front", "redis", "replica", "api")}
    assert not ports_a & ports_b
    procs_a, procs_b = box_processes(a.path), box_processes(b.path)
    assert procs_a and procs_b and not set(procs_a) & set(procs_b)
    assert {port for _, port in listening(set(procs_b))} == ports_b
    # The same key name holds different values: separate redis servers, separate passwords.
    assert a.redis_cli("SET", "kvtest:who", "a") == "OK"
    assert b.redis_cli("SET", "kvtest:who", "b") == "OK"
    assert a.front("/api/GET/kvtest:who")[1] == {"GET": "a"}
    assert b.front("/api/GET/kvtest:who")[1] == {"GET": "b"}
    assert a.secret_digest("REDIS_PASSWORD") != b.secret_digest("REDIS_PASSWORD")
    pids_b = b.pids()
    ok(a, "down")
    assert box_processes(a.path) == {}
    assert not {port for _, port in listening()} & ports_a
    assert b.status()[0] == 0 and b.pids() == pids_b
    assert digest((b.path / ".env").read_bytes()) != digest((a.path / ".env").read_bytes())
