"""boxtool aside / blank / putback on real files: what --auth-fail-closed does on the box.

Each verb prints hashes, a key and counts, never a value; blank keeps every other byte and
the file's mode; putback puts the exact bytes back, compares sha256s, and removes the aside
copy only after they match.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from gate import boxtool

TOKEN = "canary-authfc-7d41e0b9a2c3"
OTHER = "canary-other-55aa9c01e7"
ENV = (
    "# the box's env file\r\n"
    "NODE_MODE=local\n"
    f"PROXY_AUTH_TOKEN={TOKEN}\n"
    f"PROXY_AUTH_TOKEN_OLD={OTHER}\n"
    f"export DASHBOARD_TOKEN = {OTHER}x\r\n"
    "# PROXY_AUTH_TOKEN=commented-out-value\n"
    "LAST=no-newline-at-the-end"
)
ASIDE = ".gate/aside-run1.env"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".env").write_bytes(ENV.encode())
    (tmp_path / ".env").chmod(0o640)
    spec = {"env_file": ".env", "config_file": "config.json", "config_format": "json",
            "env_keys": ["*_TOKEN"], "files": [], "config_paths": [], "in_use": []}  # fmt: skip
    (tmp_path / "config.json").write_text("{}\n")
    (tmp_path / ".gate").mkdir(mode=0o700)
    (tmp_path / ".gate" / "spec.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATE_SPEC", str(tmp_path / ".gate" / "spec.json"))
    return tmp_path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """boxtool's exit code and everything it printed; no secret may be in it."""
    code = boxtool.main(list(args))
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert TOKEN not in said and OTHER not in said, said
    return code, said


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- aside ----------------------------------------------------------------------------------


def test_aside_copies_the_exact_bytes_0600_and_prints_only_their_sha256(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = tool(capsys, "aside", ".env", ASIDE)
    assert code == 0, said
    assert said == sha(ENV.encode()) + "\n"
    assert (stack / ASIDE).read_bytes() == ENV.encode()
    assert mode(stack / ASIDE) == 0o600
    assert (stack / ".env").read_bytes() == ENV.encode()


@pytest.mark.parametrize("dest", ["aside-run1.env", ".gate/copy.env", ".gate/sub/aside-x"])
def test_aside_refuses_a_place_outside_gate_or_not_named_aside(
    stack: Path, capsys: pytest.CaptureFixture[str], dest: str
) -> None:
    (stack / ".gate" / "sub").mkdir()
    code, said = tool(capsys, "aside", ".env", dest)
    assert code == 2 and "is not .gate/aside-*" in said, said
    assert not (stack / dest).exists()


def test_aside_never_overwrites_and_refuses_a_symlinked_env_file(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / ASIDE).write_text("earlier\n")
    code, said = tool(capsys, "aside", ".env", ASIDE)
    assert code == 1 and "exists already" in said
    assert (stack / ASIDE).read_text() == "earlier\n"
    (stack / "link.env").symlink_to(stack / ".env")
    code, said = tool(capsys, "aside", "link.env", ".gate/aside-run2.env")
    assert code == 2 and "not a regular file" in said
    assert not (stack / ".gate" / "aside-run2.env").exists()


# --- blank ----------------------------------------------------------------------------------


def test_blank_empties_one_key_and_keeps_every_other_byte_and_the_mode(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = tool(capsys, "blank", ".env", "PROXY_AUTH_TOKEN")
    assert code == 0, said
    assert said == "blanked PROXY_AUTH_TOKEN in .env (1 line)\n"
    expected = ENV.replace(f"PROXY_AUTH_TOKEN={TOKEN}\n", "PROXY_AUTH_TOKEN=\n")
    assert expected != ENV
    assert (stack / ".env").read_bytes() == expected.encode()
    assert mode(stack / ".env") == 0o640
    assert not list(stack.glob(".*.gate-tmp")), "a temp file was left beside the env file"


def test_blank_keeps_the_line_ending_and_reads_an_export_line(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, said = tool(capsys, "blank", ".env", "DASHBOARD_TOKEN")
    assert code == 0, said
    text = (stack / ".env").read_bytes()
    assert b"export DASHBOARD_TOKEN =\r\n" in text
    assert text == ENV.encode().replace(f" {OTHER}x\r\n".encode(), b"\r\n")


def test_blank_refuses_a_key_that_is_absent_and_writes_nothing(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (stack / ".env").stat()
    code, said = tool(capsys, "blank", ".env", "NO_SUCH_TOKEN")
    assert code == 1 and "NO_SUCH_TOKEN is not set in .env: nothing blanked" in said
    after = (stack / ".env").stat()
    assert (stack / ".env").read_bytes() == ENV.encode()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_blanked_secret_is_still_scrubbed_while_its_copy_is_aside(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = boxtool.load_spec()
    assert TOKEN in boxtool.secret_values(spec)
    tool(capsys, "blank", ".env", "PROXY_AUTH_TOKEN")
    assert TOKEN not in boxtool.secret_values(spec), "precondition: the env file lost it"
    (stack / ".env").write_bytes(ENV.encode())
    tool(capsys, "aside", ".env", ASIDE)
    tool(capsys, "blank", ".env", "PROXY_AUTH_TOKEN")
    assert TOKEN in boxtool.secret_values(spec)
    assert boxtool.scrub(f"debug: token {TOKEN}", boxtool.secret_values(spec)).count(TOKEN) == 0


# --- putback --------------------------------------------------------------------------------


def blanked(stack: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The env file set aside and blanked, as the phase leaves it; the original's sha256."""
    assert tool(capsys, "aside", ".env", ASIDE)[0] == 0
    assert tool(capsys, "blank", ".env", "PROXY_AUTH_TOKEN")[0] == 0
    assert (stack / ".env").read_bytes() != ENV.encode()
    return sha(ENV.encode())


def test_putback_restores_the_exact_bytes_prints_both_hashes_and_removes_the_copy(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = blanked(stack, capsys)
    code, said = tool(capsys, "putback", ASIDE, ".env", original)
    assert code == 0, said
    assert (stack / ".env").read_bytes() == ENV.encode()
    assert said.count(original) == 2, said
    assert mode(stack / ".env") == 0o640
    assert not (stack / ASIDE).exists()


def test_putback_is_safe_to_repeat_and_fails_when_the_original_is_gone(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = blanked(stack, capsys)
    assert tool(capsys, "putback", ASIDE, ".env", original)[0] == 0
    code, said = tool(capsys, "putback", ASIDE, ".env", original)
    assert code == 0 and "already holds the bytes set aside" in said
    (stack / ".env").write_text("SOMETHING=else\n")
    code, said = tool(capsys, "putback", ASIDE, ".env", original)
    assert code == 1 and "no aside copy" in said
    code, said = tool(capsys, "putback", ASIDE, ".env")
    assert code == 1, "with no hash to compare, a missing copy is never success"


def test_putback_refuses_a_copy_that_is_not_the_one_set_aside(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blanked(stack, capsys)
    blank = (stack / ".env").read_bytes()
    code, said = tool(capsys, "putback", ASIDE, ".env", sha(b"something else"))
    assert code == 1 and "is not the copy set aside" in said
    assert (stack / ".env").read_bytes() == blank
    assert (stack / ASIDE).exists()


def test_putback_keeps_the_copy_when_the_bytes_written_differ(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = blanked(stack, capsys)
    real = boxtool.replace_keeping

    def torn(path: str, data: bytes, like: os.stat_result) -> None:
        real(path, data[:-3], like)  # a short write nobody noticed

    monkeypatch.setattr(boxtool, "replace_keeping", torn)
    code, said = tool(capsys, "putback", ASIDE, ".env", original)
    assert code == 1 and "differs from the aside copy" in said
    assert (stack / ASIDE).read_bytes() == ENV.encode()


def test_putback_refuses_a_copy_outside_gate(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / "aside-x").write_text("X_TOKEN=stranger\n")
    code, said = tool(capsys, "putback", "aside-x", ".env")
    assert code == 2 and "is not .gate/aside-*" in said
    assert (stack / ".env").read_bytes() == ENV.encode()


def test_blank_bytes_blanks_every_line_of_the_key_and_nothing_else() -> None:
    data = b"A=1\nKEY=x\nKEYS=y\n KEY = z\n#KEY=w\nKEY\n"
    out, count = boxtool.blank_bytes(data, "KEY")
    assert count == 2
    assert out == b"A=1\nKEY=\nKEYS=y\n KEY =\n#KEY=w\nKEY\n"
