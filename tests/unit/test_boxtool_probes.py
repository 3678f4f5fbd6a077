"""boxtool's probe verbs on real files, sockets and processes in a temp stack dir."""

from __future__ import annotations

import http.server
import io
import json
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gate import boxtool

TOKEN = "canary-token-5f2e9a01c7"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack dir with an env file holding one secret and a spec naming it."""
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\nMODE=fast\n# a comment\n")
    spec = {
        "env_file": ".env",
        "config_file": "config.json",
        "config_format": "json",
        "env_keys": ["*_TOKEN"],
        "files": [],
        "config_paths": [],
        "in_use": [
            {"secret": "API_TOKEN", "file": "conf/app.conf"},
            {"secret": "API_TOKEN", "file": "conf/stale.conf"},
            {"secret": "API_TOKEN", "file": "conf/none.conf"},
        ],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.conf").write_text(f"requirepass {TOKEN}\nmaxmemory 64mb\n")
    (tmp_path / "conf" / "stale.conf").write_text("requirepass an-older-password\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATE_SPEC", str(tmp_path / "spec.json"))
    return tmp_path


def tool(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code = boxtool.main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_port_reports_the_kernel_bind(
    stack: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = tool(capsys, "port", "127.0.0.1", str(listener))
    assert answer == {"open": True, "tls": False, "listening": ["127.0.0.1"]}
    elsewhere = tool(capsys, "port", "127.0.0.2", str(listener))  # bound to .1 only
    assert (elsewhere["open"], elsewhere["listening"]) == (False, ["127.0.0.1"])
    plain = tool(capsys, "port", "127.0.0.1", str(listener), "--no-tls")
    assert plain == {"open": True, "tls": None, "listening": ["127.0.0.1"]}


def test_a_closed_port_is_neither_open_nor_tls(
    stack: Path, listener: int, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert tool(capsys, "port", "127.0.0.1", str(port)) == {
        "open": False,
        "tls": None,
        "listening": [],
    }


def test_file_formats_mask_secrets(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool(capsys, "file", ".env", "env") == {"API_TOKEN": "***", "MODE": "fast"}
    conf = tool(capsys, "file", "conf/app.conf", "keyvalue")
    assert conf == {"requirepass": "***", "maxmemory": "64mb"}
    assert tool(capsys, "file", "conf/app.conf", "lines") == ["requirepass ***", "maxmemory 64mb"]
    assert boxtool.main(["file", "conf/missing.conf", "lines"]) == 1


def test_in_use_compares_on_the_box_and_sends_no_plaintext(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = boxtool.main(["inuse"])
    out = capsys.readouterr().out
    assert code == 0 and TOKEN not in out
    present = {a["file"]: a["present"] for a in json.loads(out)}
    assert present == {"conf/app.conf": True, "conf/stale.conf": False, "conf/none.conf": None}


def test_exec_hands_a_secret_to_the_command_by_its_environment(
    stack: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    command = 'test "$KEY" = "$(sed -n s/^API_TOKEN=//p .env)" && echo same; echo "$KEY"'
    assert boxtool.main(["exec", "10", command, "KEY=API_TOKEN"]) == 0
    out = capfd.readouterr().out
    assert out.splitlines() == ["same", "***"]  # reached it, and scrubbed on the way out


def test_the_env_format_renders_in_place(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stack / "settings.env").write_text("# keep me\nMODE=fast\nLEVEL=3\n")
    spec = json.loads((stack / "spec.json").read_text())
    spec.update(config_file="settings.env", config_format="env")
    (stack / "spec.json").write_text(json.dumps(spec))
    assert tool(capsys, "config") == {"LEVEL": "3", "MODE": "fast"}
    render(stack, {"MODE": "slow", "LEVEL": True})
    assert (stack / "out.env").read_text() == "# keep me\nMODE=slow\nLEVEL=true\n"
    assert render(stack, {"NOPE": "1"}) == 2


class IniFormat:
    """A format added through the seam: `[section]` + `key = value` lines."""

    @staticmethod
    def load(text: str) -> Any:
        config: dict[str, dict[str, str]] = {}
        section = config.setdefault("", {})
        for line in text.splitlines():
            if line.startswith("["):
                section = config.setdefault(line.strip("[]"), {})
            elif "=" in line:
                key, _, value = line.partition("=")
                section[key.strip()] = value.strip()
        return config

    @staticmethod
    def dump(config: Any, _original: str) -> str:
        return "".join(
            f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
            for name, keys in config.items()
            if name
        )


def test_a_new_config_format_is_one_entry_in_formats(
    stack: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(boxtool.FORMATS, "ini", IniFormat)
    (stack / "app.ini").write_text("[server]\nport = 80\n")
    spec = json.loads((stack / "spec.json").read_text())
    spec.update(config_file="app.ini", config_format="ini")
    (stack / "spec.json").write_text(json.dumps(spec))
    assert tool(capsys, "config")["server"] == {"port": "80"}
    assert render(stack, {"server.port": "8080"}, base="app.ini", out="out.ini") == 0
    assert (stack / "out.ini").read_text() == "[server]\nport = 8080\n"


def render(stack: Path, overrides: dict[str, Any], base: str = "", out: str = "out.env") -> int:
    """boxtool render with the overrides on stdin, as the matrix phase sends them."""
    spec = json.loads((stack / "spec.json").read_text())
    stdin = sys.stdin
    sys.stdin = io.StringIO(json.dumps(overrides))
    try:
        return boxtool.main(["render", base or spec["config_file"], out])
    finally:
        sys.stdin = stdin


def test_a_bearer_word_in_a_file_keeps_the_json_whole(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nginx.conf's `add_header WWW-Authenticate 'Bearer realm=\\"kv\\"'`: scrubbing the
    dumped text once ate the escape's backslash and broke the JSON (found gating kvfront)."""
    (stack / "conf" / "nginx.conf").write_text(
        f"add_header WWW-Authenticate 'Bearer realm=\\\"kv\\\"';\nmap {TOKEN} 1;\n"
    )
    lines = tool(capsys, "file", "conf/nginx.conf", "lines")
    assert lines == ["add_header WWW-Authenticate 'Bearer ***\"kv\\\"';", "map *** 1;"]


def test_in_use_wants_the_whole_token(stack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (stack / "conf" / "app.conf").write_text(f"requirepass {TOKEN}-OLD-rotated\n")
    answers = {a["file"]: a["present"] for a in tool(capsys, "inuse")}
    assert answers["conf/app.conf"] is False


def test_a_probe_whose_secret_is_missing_does_not_run(
    stack: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert boxtool.main(["exec", "10", "echo ran", "KEY=NO_SUCH_TOKEN"]) == 2
    out, err = capfd.readouterr()
    assert "ran" not in out
    assert "env key NO_SUCH_TOKEN is missing or empty" in err
    assert boxtool.main(["http", "http://127.0.0.1:1/", "1", "--header", "Authorization",
                         "--template", "Bearer {}", "--env-key", "NO_SUCH_TOKEN"]) == 0  # fmt: skip
    assert "missing or empty" in json.loads(capfd.readouterr().out)["error"]


def test_a_secret_escaped_in_json_output_is_scrubbed(
    stack: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    odd = "sl/ash-w\u00f6rd-5678"
    (stack / ".env").write_text(f"API_TOKEN={odd}\n")
    escaped = json.dumps(odd)[1:-1].replace("/", "\\/")  # sl\/ash-w\u00f6rd-5678
    assert boxtool.main(["exec", "10", f"printf '%s' '{escaped}'"]) == 0
    out = capfd.readouterr().out
    assert out == "***", out


class _Redirect(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Redirect.seen.append(self.headers.get("Authorization", ""))
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.2:1/elsewhere")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_http_probe_reports_a_redirect_and_does_not_follow_it(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api"
        answer = tool(capsys, "http", url, "5", "--header", "Authorization",
                      "--template", "Bearer {}", "--env-key", "API_TOKEN")  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert answer["code"] == 302
    assert _Redirect.seen == [f"Bearer {TOKEN}"], "one request, the redirect not followed"


# --- batch: independent reads in one process ---------------------------------------------


def batch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, calls: Any) -> Any:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(calls)))
    return tool(capsys, "batch")


def test_a_batch_answers_each_read_as_it_would_alone(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = tool(capsys, "file", "conf/app.conf", "lines")
    answers = batch(
        capsys,
        monkeypatch,
        [
            ["file", "conf/app.conf", "lines"],
            ["exec", "10", "echo $API_TOKEN; echo err >&2; exit 3", "API_TOKEN=API_TOKEN"],
            ["file", "conf/missing.conf", "lines"],
        ],
    )
    assert [a["exit"] for a in answers] == [0, 3, 1]
    assert json.loads(answers[0]["stdout"]) == alone
    assert answers[1]["stdout"] == "***\n"  # the secret reached the command, and was scrubbed
    assert answers[1]["stderr"] == "err\n"
    assert "FileNotFoundError" in answers[2]["stderr"]  # one read's crash is its own answer
    assert all(a["seconds"] >= 0 for a in answers)


@pytest.mark.parametrize(
    "stdin",
    ["not json", json.dumps({"file": "x"}), json.dumps([["lock", "run"]]), json.dumps([[]])],
    ids=["garbage", "not-a-list", "a-mutating-verb", "empty-call"],
)
def test_a_batch_that_is_not_a_list_of_reads_is_refused(
    stack: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert boxtool.main(["batch"]) == 2
    assert "boxtool: batch:" in capsys.readouterr().err


def test_exec_gives_a_command_killed_by_a_signal_the_shells_code(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """128 + the signal, as a shell says it: not Python's negative code, which a process
    exit would wrap (SIGHUP's -1 would even read as ssh's own failure, 255).

    SIGHUP at its default here: a command inherits an ignored SIGHUP (a run under
    `nohup`), as any Unix child does, and would then not die of it."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        assert boxtool.main(["exec", "10", "kill -HUP $$"]) == 129
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert boxtool.main(["exec", "10", "kill -TERM $$"]) == 143


def test_a_config_that_is_not_json_is_one_line_not_a_traceback(
    stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (stack / "config.json").write_text("")  # e.g. emptied by a copy cut short
    assert boxtool.main(["config"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "boxtool config: JSONDecodeError: Expecting value: line 1 column 1 (char 0)"
    ], err
