"""`--readiness`'s facts and judgements: boxtool's `fitness` verb on real files and dirs in a
temp stack dir, and the pure checks of gate/fitness.py on the facts it prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gate import boxtool
from gate.checks import CheckRecord, Reading, SkipClass, Verdict
from gate.contract import (
    Command,
    Header,
    Http,
    InUse,
    Readiness,
    Secrets,
    StackContract,
)
from gate.errors import Unreachable
from gate.fitness import (
    check_backup_dir,
    check_headroom,
    check_healthy,
    check_loopback,
    check_modes,
    check_secrets_found,
    check_tools,
    human,
    loopback,
    uses_env_file,
)

TOKEN = "canary-token-5f2e9a01c7"
KEY = "canary-key-material-77aa01"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack dir: config, a private env file with a secret, a secret file, a backup dir."""
    (tmp_path / "config.json").write_text('{"api": {"port": 1}}\n')
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\n")
    (tmp_path / ".env").chmod(0o600)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "node.key").write_text(KEY + "\n")
    (tmp_path / "secrets" / "node.key").chmod(0o600)
    (tmp_path / "backups").mkdir()
    spec = {
        "env_file": ".env",
        "config_file": "config.json",
        "config_format": "json",
        "env_keys": ["*_TOKEN"],
        "files": ["secrets/*.key"],
        "config_paths": [],
        "in_use": [],
    }
    (tmp_path / ".gate").mkdir()
    (tmp_path / ".gate" / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATE_SPEC", str(tmp_path / ".gate" / "spec.json"))
    return tmp_path


WANTED = {"backup_dir": "backups", "data_paths": ["secrets"], "tools": ["python3"]}


def fitness(capsys: pytest.CaptureFixture[str], wanted: dict[str, Any] = WANTED) -> Any:
    code = boxtool.main(["fitness", json.dumps(wanted)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert TOKEN not in out and KEY not in out, "a secret crossed the wire"
    return json.loads(out)


# --- boxtool fitness on real files --------------------------------------------------------------


def test_fitness_reports_modes_sizes_space_and_tools_of_a_healthy_stack(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    facts = fitness(capsys, {**WANTED, "tools": ["python3", "no-such-tool-7f3a"]})
    assert facts["files"] == {
        ".env": {"exists": True, "regular": True, "link": False, "mode": "0600"},
        "secrets/node.key": {"exists": True, "regular": True, "link": False, "mode": "0600"},
    }
    assert facts["sizes"] == {
        "config.json": len('{"api": {"port": 1}}\n'),
        ".env": len(f"API_TOKEN={TOKEN}\n"),
        "secrets": len(KEY) + 1,
    }
    backup = facts["backup_dir"]
    assert (backup["kind"], backup["writable"], backup["newest"]) == ("dir", True, None)
    assert backup["free"] > 0 and facts["stack_free"] > 0
    assert facts["tools"] == {"python3": True, "no-such-tool-7f3a": False}


def test_fitness_sees_a_world_readable_env_file_and_a_linked_secret(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / ".env").chmod(0o644)
    (stack / "elsewhere.key").write_text(KEY + "\n")
    (stack / "elsewhere.key").chmod(0o640)
    (stack / "secrets" / "linked.key").symlink_to(stack / "elsewhere.key")
    files = fitness(capsys)["files"]
    assert files[".env"]["mode"] == "0644"
    assert files["secrets/linked.key"] == {
        "exists": True,
        "regular": True,
        "link": True,
        "mode": "0640",
    }


def test_fitness_says_a_missing_env_file_is_missing(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / ".env").unlink()
    facts = fitness(capsys)
    assert facts["files"][".env"] == {"exists": False}
    assert facts["sizes"][".env"] is None


def test_fitness_finds_the_newest_archive_ignoring_links_and_dot_files(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backups = stack / "backups"
    (backups / "backup-old.tar.gz").write_bytes(b"x" * 10)
    os.utime(backups / "backup-old.tar.gz", (1_000_000, 1_000_000))
    big = backups / "backup-new.tar.gz"
    with big.open("wb") as handle:
        handle.truncate(5 * 1024**4)  # 5 TiB, sparse: a "big fake archive" taking no space
    os.utime(big, (2_000_000, 2_000_000))
    (backups / ".partial").write_bytes(b"y")
    (backups / "latest").symlink_to(big)
    os.utime(backups / ".partial", (3_000_000, 3_000_000))
    newest = fitness(capsys)["backup_dir"]["newest"]
    assert newest == {"name": "backup-new.tar.gz", "size": 5 * 1024**4}


def test_fitness_says_a_backup_dir_is_missing_or_not_a_dir(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / "backups").rmdir()
    assert fitness(capsys)["backup_dir"] == {"path": "backups", "kind": "missing"}
    (stack / "backups").write_text("")
    assert fitness(capsys)["backup_dir"] == {"path": "backups", "kind": "not a directory"}
    assert fitness(capsys, {"tools": []})["backup_dir"] is None


@pytest.fixture
def immutable(stack: Path) -> Iterator[Path]:
    """The backup dir made immutable (chattr +i): not writable even for root."""
    target = stack / "backups"
    if shutil.which("chattr") is None:
        pytest.skip("no chattr on this machine")
    made = subprocess.run(["chattr", "+i", str(target)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i refused here: {made.stderr.decode().strip()}")
    try:
        yield target
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)


def test_fitness_sees_a_backup_dir_nobody_may_write_into(
    immutable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fitness(capsys)["backup_dir"]["writable"] is False


def test_fitness_writes_nothing_outside_gate_dir(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def tree() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(stack)): (p.stat().st_mtime_ns, p.stat().st_mode)
            for p in stack.rglob("*")
            if ".gate" not in p.parts
        }

    before = tree()
    fitness(capsys)
    assert tree() == before


# --- the judgements ----------------------------------------------------------------------------


def facts(**value: Any) -> Reading[Any]:
    base: dict[str, Any] = {
        "files": {},
        "sizes": {"config.json": 100, ".env": 50},
        "stack_free": 10_000,
        "backup_dir": None,
        "tools": {},
    }
    return Reading(value={**base, **value})


LOST: Reading[Any] = Reading(lost=Unreachable("link reset"))
BROKEN: Reading[Any] = Reading(error="boxtool fitness exited 1: Traceback")


def only(records: list[CheckRecord]) -> CheckRecord:
    assert len(records) == 1, records
    return records[0]


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [("0600", "pass"), ("0400", "pass"), ("0000", "pass"), ("0640", "fail"), ("0604", "fail"),
     ("0700", "fail"), ("4600", "fail"), ("0644", "fail")],
)  # fmt: skip
def test_only_owner_read_write_bits_are_private(mode: str, verdict: str) -> None:
    info = {"exists": True, "regular": True, "link": False, "mode": mode}
    found = only(check_modes(facts(files={".env": info}), ".env"))
    assert found.verdict == verdict
    if verdict == "fail":
        assert found.evidence.endswith("chmod 600 .env"), found.evidence


def test_a_missing_env_file_and_a_dir_in_place_of_a_secret_are_unfit() -> None:
    files = {
        ".env": {"exists": False},
        "secrets/x.key": {"exists": True, "regular": False, "link": True, "mode": "0700"},
    }
    env, secret = check_modes(facts(files=files), ".env")
    assert env.verdict is Verdict.FAIL and "the env file .env is missing" in env.evidence
    assert secret.verdict is Verdict.FAIL
    assert secret.evidence == (
        "secrets/x.key is not a regular file (through a symlink): make it one, mode 0600"
    )


def test_an_absent_env_file_nothing_reads_is_a_by_design_skip() -> None:
    found = only(check_modes(facts(files={".env": {"exists": False}}), ".env", env_used=False))
    assert (found.verdict, found.skip_class) == (Verdict.SKIP, SkipClass.BY_DESIGN)
    mode = {"exists": True, "regular": True, "link": False, "mode": "0644"}
    unused_but_wide = only(check_modes(facts(files={".env": mode}), ".env", env_used=False))
    assert unused_but_wide.verdict is Verdict.FAIL


def test_the_env_file_is_used_by_secret_keys_headers_commands_and_in_use() -> None:
    bare = StackContract("s", "./ctl", lambda cfg: frozenset({"a"}))
    assert not uses_env_file(bare)
    assert uses_env_file(replace(bare, secrets=Secrets(env_keys=("*_TOKEN",))))
    assert uses_env_file(replace(bare, secrets=Secrets(in_use=(InUse("A_TOKEN", "x.conf"),))))
    assert uses_env_file(replace(bare, probes=(Http("a", "http://127.0.0.1/", Header("K")),)))
    assert uses_env_file(replace(bare, probes=(Command("c", "true", env={"V": "K"}),)))
    assert not uses_env_file(replace(bare, probes=(Command("c", "true"),)))


@pytest.mark.parametrize("reading", [LOST, BROKEN])
def test_facts_that_could_not_be_read_are_never_a_pass(reading: Reading[Any]) -> None:
    expected = Verdict.INCONCLUSIVE if reading is LOST else Verdict.FAIL
    readiness = Readiness(backup_dir="backups")
    for found in (
        only(check_modes(reading, ".env")),
        check_headroom(reading, readiness),
        check_backup_dir(reading, readiness, has_backup=True),
        check_tools(reading),
    ):
        assert found.verdict is expected, found
        assert found.phase == "readiness"


def test_headroom_uses_the_backup_dirs_filesystem_and_its_newest_archive() -> None:
    backup = {"path": "b", "kind": "dir", "writable": True, "free": 3000,
              "newest": {"name": "a.tgz", "size": 1000}}  # fmt: skip
    fit = check_headroom(facts(backup_dir=backup, stack_free=0), Readiness(backup_dir="b"))
    assert fit.verdict is Verdict.PASS, fit
    assert "newest archive b/a.tgz" in fit.evidence
    unfit = check_headroom(facts(backup_dir=backup), Readiness(backup_dir="b", headroom=4))
    assert unfit.verdict is Verdict.FAIL
    assert unfit.evidence.startswith("the filesystem of b has 2.9 KiB free but a backup needs")


def test_headroom_without_an_archive_sizes_config_env_and_data() -> None:
    sizes = {"config.json": 100, ".env": 50, "data": None}
    found = check_headroom(facts(sizes=sizes, stack_free=299), Readiness())
    assert found.verdict is Verdict.FAIL
    assert "the stack dir's filesystem has 299 B free" in found.evidence
    assert "(no archive yet; config.json + .env (absent: data))" in found.evidence
    assert check_headroom(facts(sizes=sizes, stack_free=300), Readiness()).verdict is Verdict.PASS


def test_backup_dir_undeclared_is_a_skip_of_the_right_class() -> None:
    missing = check_backup_dir(facts(), Readiness(), has_backup=True)
    assert (missing.verdict, missing.skip_class) == (Verdict.SKIP, SkipClass.MISSING)
    by_design = check_backup_dir(facts(), Readiness(), has_backup=False)
    assert (by_design.verdict, by_design.skip_class) == (Verdict.SKIP, SkipClass.BY_DESIGN)


def test_tools_name_every_missing_one() -> None:
    found = check_tools(facts(tools={"python3": True, "tar": False, "jq": False}))
    assert found.verdict is Verdict.FAIL
    assert found.evidence.startswith("missing tar, jq: install them on the box")
    assert check_tools(facts(tools={"python3": True})).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("::ffff:10.0.0.5", False),
     ("garbage", False)],
)  # fmt: skip
def test_loopback_addresses(address: str, expected: bool) -> None:
    assert loopback(address) is expected


def test_a_port_bound_wide_or_to_nothing_is_unfit() -> None:
    wide = check_loopback("api", 8080, Reading(value={"listening": ["127.0.0.1", "::"]}))
    assert wide.verdict is Verdict.FAIL
    assert wide.evidence.startswith("port 8080 (probe api) listens on ::: bind it to 127.0.0.1")
    closed = check_loopback("api", 8080, Reading(value={"open": False, "listening": []}))
    assert closed.verdict is Verdict.FAIL and "nothing listens on port 8080" in closed.evidence
    both = check_loopback("api", 8080, Reading(value={"listening": ["127.0.0.1", "::1"]}))
    assert both.verdict is Verdict.PASS
    assert check_loopback("api", 8080, LOST).verdict is Verdict.INCONCLUSIVE


def test_secrets_found_fails_on_an_empty_set() -> None:
    empty: Reading[Any] = Reading(value={"env": {}, "files": {}, "config": {}})
    found = check_secrets_found(empty)
    assert found.verdict is Verdict.FAIL
    assert "every mutating run stops at its baseline" in found.evidence
    some: Reading[Any] = Reading(value={"env": {"A_TOKEN": "ab12"}, "files": {}, "config": {}})
    assert check_secrets_found(some).verdict is Verdict.PASS


def test_a_bad_answer_is_unfit_in_one_line() -> None:
    found = check_tools(Reading(error="boxtool fitness exited 1:\nTraceback\n  boom"))
    assert found.verdict is Verdict.FAIL
    assert found.evidence == (
        "the box answered badly (boxtool fitness exited 1: Traceback boom): fix that, re-run"
    )


def test_healthy_is_one_item_over_the_battery() -> None:
    ok = CheckRecord("status: exit code 0", Verdict.PASS)
    bad = [CheckRecord(f"check {i}", Verdict.FAIL, observed=f"seen {i}") for i in range(5)]
    unasked = CheckRecord("api: x", Verdict.INCONCLUSIVE, evidence="could not ask: reset")
    assert check_healthy([ok], "gate --check").verdict is Verdict.PASS
    failed = check_healthy([ok, *bad, unasked], "gate --check")
    assert failed.verdict is Verdict.FAIL
    assert failed.evidence == (
        "fix the stack until `gate --check` passes: failed check 0 (seen 0), check 1 (seen 1), "
        "check 2 (seen 2) and 2 more"
    )
    assert check_healthy([ok, unasked], "gate --check").verdict is Verdict.INCONCLUSIVE
    assert check_healthy([], "gate --check").verdict is Verdict.FAIL


def test_human_sizes() -> None:
    assert [human(n) for n in (0, 1023, 1024, 3 * 1024**3, 5 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "3.0 GiB",
        "5.0 TiB",
    ]


def test_a_headroom_of_zero_is_refused_where_the_contract_is_written() -> None:
    with pytest.raises(ValueError, match="headroom must be > 0"):
        Readiness(headroom=0)
