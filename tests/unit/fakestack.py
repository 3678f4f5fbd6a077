"""A stateful fake of the sample stack (examples/stack) behind a ScriptedTarget.

Unit tests of phases drive a real `gate.box.Box` over it and get the sample stack's answers
in microseconds, with no process: an in-memory stack dir (config.json, .env, secrets/,
.gate/), supervisord's programs with pids and start times, `stackctl` (status, apply,
version, doctor, logs, restart, backup, restore, down, up) and boxtool's verbs answered
from that state the way the real ones would. Config validation, expected services, .env
settings and per-service settings come from the sample stack's own pure functions
(stacklib.config), so the fake follows the stack.

    stack = FakeStack()                       # healthy, applied, nothing wrong
    stack = FakeStack(api_overrides={"pool.tier": "main"})   # a defect switch (see Defects)
    stack = FakeStack(wait_windows=None)      # matrix.py's own wait windows (default: 0.3 s)
    box = stack.connect()                     # a real Box, boxtool installed (output scrubbed)
    stack.stop("worker-1"); stack.target.once("doctor", Reply(1))   # state and rule tweaks

Commands are split into `&&`/`||` lists and each simple command is answered by the first
handler in HANDLERS whose pattern matches; one no handler knows fails the test
(UnexpectedCommand), so a new command shape shows up as a one-line table change.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import hashlib
import importlib.util
import json
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from gate import boxtool
from gate.box import Box, Event
from gate.contract import Fault, StackContract
from gate.inventory import HostSpec
from gate.testing.double import Answer, Held, Lost, Reply, ScriptedTarget

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "stack"))

from stacklib import SERVICE_VERSIONS, VERSION, envfile  # noqa: E402
from stacklib import config as stackconfig  # noqa: E402

DIR = "/srv/stack"
CONTROL = "./stackctl"
LOCK_BUSY = 75
CLOCK_START = 1_763_780_000.0
SECRETS = {
    "PROXY_AUTH_TOKEN": "fake-proxy-token-6b1d0c9a",
    "DASHBOARD_TOKEN": "fake-dashboard-token-3e7f21aa",
    "NODE_RPC_PASSWORD": "fake-rpc-password-90c4b2e1",
}
NODE_KEY = "fake-node-key-material-5d2c8e7f01"
PORTS = {"rpc_port": 41001, "pool": 41002, "proxy": 41003, "dashboard": 41004, "cache": 41005}


def load_contract() -> StackContract:
    """The repo's matrix.py CONTRACT, loaded by path (the engine's loader is being moved)."""
    spec = importlib.util.spec_from_file_location("fakestack_matrix", ROOT / "matrix.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    contract: StackContract = module.CONTRACT
    return contract


def quick(contract: StackContract, seconds: float = 0.3) -> StackContract:
    """The contract with every wait window (converging checks, counters) cut to `seconds`.

    The fake answers at once, so a value that holds does so on the first read; only a value
    that never will waits out its window, and a unit test need not wait a minute for that.
    """
    checks = tuple(
        dataclasses.replace(c, converges=seconds) if c.converges else c for c in contract.checks
    )
    counters = tuple(dataclasses.replace(c, within=seconds) for c in contract.counters)
    faults = tuple(quick_fault(f, seconds) for f in contract.faults)
    failover = quick_fault(contract.failover, seconds) if contract.failover else None
    return dataclasses.replace(
        contract, checks=checks, counters=counters, faults=faults, failover=failover
    )


def quick_fault(fault: Fault, seconds: float) -> Fault:
    """A fault with its detect, hold and recover windows cut to `seconds`."""
    return dataclasses.replace(fault, detect_s=seconds, hold_s=seconds, recover_s=seconds)


def default_config() -> dict[str, Any]:
    """A complete sample-stack config.json with fixed ports, as install + apply leave it."""
    cfg = copy.deepcopy(stackconfig.DEFAULTS)
    cfg["node"]["rpc_port"] = PORTS["rpc_port"]
    cfg["pool"]["port"] = PORTS["pool"]
    cfg["proxy"]["port"] = PORTS["proxy"]
    cfg["dashboard"]["port"] = PORTS["dashboard"]
    cfg["extras"]["cache_port"] = PORTS["cache"]
    return stackconfig.validate(cfg)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Defects:
    """Switches for what the engine's tests need to see go wrong; all off by default."""

    status_garbage: bool = False
    """`status --json` prints text that is not JSON (exit 0)."""
    status_services_as_strings: bool = False
    """`status --json` gives `{"services": {"node": "running", ...}}`."""
    api_overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted API paths forced to a settled (never changing) value, e.g. {"pool.tier": "x"}."""
    shares_stuck: bool = False
    """The API's shares.total never grows."""
    fail_apply: bool = False
    """Every apply exits 1 before writing anything."""
    fail_restore_apply: bool = False
    """An apply right after config.json was copied back (`cp -p`) fails part-way."""
    recreate_all_on_change: bool = False
    """An apply that changes anything recreates every program (new pids), not only those
    whose settings changed; a second apply is still quiet."""
    restart_on_every_apply: bool = False
    """Every apply restarts `pool` (new pid) and still prints the no-change line."""
    rotate_secret_on_apply: bool = False
    """Every apply mints a new DASHBOARD_TOKEN (and so recreates the dashboard)."""
    version_leaks_secret: bool = False
    """`version --json` carries DASHBOARD_TOKEN's value (only boxtool exec scrubs it)."""
    node_bind: str = ""
    """The node listens here whatever its settings say (e.g. "0.0.0.0" with lan_access off)."""
    backup_fails: bool = False
    """`stackctl backup` exits 1 and writes nothing."""
    backup_output: str | None = None
    """What `stackctl backup` prints instead of "Backup written to: PATH" (it still writes)."""
    backup_symlink: bool = False
    """The printed path is a symlink to the archive, not the archive itself."""
    backup_omits: tuple[str, ...] = ()
    """Members the archive leaves out, e.g. (".env",)."""
    restore_fails: bool = False
    """`stackctl restore ARCHIVE` exits 1 and changes nothing."""
    restore_noop: bool = False
    """`stackctl restore ARCHIVE` says it restored, exits 0 and changes nothing."""
    restart_noop: bool = False
    """`stackctl restart` says it restarted, exits 0 and restarts nothing (same pids)."""
    drop_at: int | None = None
    """The Nth command the target sees (1-based, holds included) loses the link."""
    drop_for_good: bool = False
    """With drop_at: the link cannot be re-established afterwards."""
    proxy_ignores_node: bool = False
    """The proxy keeps admitting workers with the node down (its debounce never ends)."""
    never_thaws: bool = False
    """A paused (SIGSTOP) service stays frozen after SIGCONT: the stack never recovers."""
    revive_after_reads: int | None = None
    """A service `stackctl stop` stopped runs again by itself on the Nth status read after
    the stop (an autorestart nobody declared): a degraded state that does not hold."""


@dataclass
class FakeFile:
    text: str
    mode: str = "644"


@dataclass
class Program:
    """A supervisord program: what it started with, and whether it still runs."""

    settings: dict[str, Any]
    pid: int | None
    started: float | None
    state: str = "running"
    exitstatus: int | None = None


Handler = Callable[["FakeStack", re.Match[str], str], Reply]


class FakeStack:
    """The sample stack's box, in memory, answering through `self.target`."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        directory: str = DIR,
        wait_windows: float | None = 0.3,
        blocking_status: bool = True,
        **defects: Any,
    ) -> None:
        self.dir = directory
        self.defects = Defects()
        contract = load_contract()
        if not blocking_status:  # readiness polls the status command, as most stacks need
            contract = dataclasses.replace(
                contract, status=dataclasses.replace(contract.status, wait=None)
            )
        self.contract = contract if wait_windows is None else quick(contract, wait_windows)
        """The repo's contract (matrix.py), its wait windows cut short unless wait_windows=None."""
        self.target = ScriptedTarget(name="fake-stack")
        self.files: dict[str, FakeFile] = {}
        self.dirs = {".", "secrets", "logs"}
        self.programs: dict[str, Program] = {}
        self.logs: dict[str, list[str]] = {}
        self.missing_tools: list[str] = []
        self.lock_busy = False
        self.shares = 100
        self.applies: list[Reply] = []
        self.archives: dict[str, dict[str, FakeFile]] = {}
        """Archive path (stack-relative) -> its members as the backup stored them."""
        self.links: dict[str, str] = {}
        """Symlink path (stack-relative) -> its target."""
        self.backups: list[str] = []
        """Every path `stackctl backup` printed."""
        self._pid = 4000
        self._clock = CLOCK_START
        self._config_copied = False
        self._stopped_reads: dict[str, int] = {}
        """Services `stackctl stop` stopped -> status reads since (revive_after_reads)."""
        self._plant(dict(config) if config is not None else default_config())
        self.defects = Defects(**defects)
        self.target.on(re.compile(r"(?s).*"), self._shell)
        self.target.on(re.compile(r"\bflock\b|boxtool\.py (lock|lifeline) "), self._lock)

    # --- building and connecting ----------------------------------------------------------

    def _plant(self, cfg: dict[str, Any]) -> None:
        """The box as install + a first apply leave it: files written, every service up."""
        self.files["config.json"] = FakeFile(json.dumps(cfg, indent=2) + "\n")
        env = {**stackconfig.render_env_settings(stackconfig.validate(cfg)), **SECRETS}
        self.files[".env"] = FakeFile(envfile.format_env(env), "600")
        self.files["secrets/node.key"] = FakeFile(NODE_KEY + "\n", "600")
        self._apply()
        self.applies.clear()

    def host(self) -> HostSpec:
        return HostSpec(name="fake", host="fake.invalid", dir=self.dir, control=CONTROL)

    def connect(self, *, install: bool = True, events: list[Event] | None = None) -> Box:
        """A real Box over this fake, link open, boxtool installed unless `install=False`."""
        self.target.open()
        recorded: list[Event] = [] if events is None else events
        box = Box(self.target, self.host(), self.contract, recorded.append)
        if install:
            box.install_tool()
        return box

    # --- state a test can change ----------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """config.json as it is on disk now (parsed)."""
        parsed: dict[str, Any] = json.loads(self.files["config.json"].text)
        return parsed

    @property
    def env(self) -> dict[str, str]:
        return envfile.parse(self.files[".env"].text)

    def set_env(self, key: str, value: str) -> None:
        """Edit one .env line by hand (no apply): what a drifted box looks like."""
        self.files[".env"].text = envfile.format_env({**self.env, key: value})

    def stop(self, service: str) -> None:
        """A service exits (like `stackctl stop S`); apply starts it again."""
        program = self.programs[service]
        program.state, program.pid, program.exitstatus = "exited", None, 0

    def add_program(self, name: str) -> None:
        """supervisord runs a program the config does not ask for (e.g. "node-extra")."""
        self.programs[name] = self._spawn(name, {"stray": True})

    def pids(self) -> dict[str, int | None]:
        return {name: program.pid for name, program in self.programs.items()}

    # --- the shell ------------------------------------------------------------------------

    def _dropped(self) -> Lost | None:
        """The drop_at defect: this command loses the link."""
        if self.defects.drop_at != len(self.target.calls):
            return None
        reason = f"link dropped at command {self.defects.drop_at} (fake)"
        return Lost(reason, reconnect=not self.defects.drop_for_good)

    def _shell(self, match: re.Match[str], stdin: str) -> Answer:
        """One command: the link defect first, then `cd`, the and-or list, boxtool exec's scrub."""
        call = self.target.calls[-1]
        if lost := self._dropped():
            return lost
        if call.directory is not None and call.directory != self.dir:
            return Reply(2, stderr=f"sh: cd: can't cd to {call.directory}\n")
        if call.scrubbed and self._spec_path() not in self.files:
            return Reply(1, stderr="boxtool: FileNotFoundError: .gate/spec.json\n")
        reply = self._and_or(call.command, stdin)
        if call.scrubbed:
            values = self._secret_values()
            reply = Reply(
                reply.exit_code,
                boxtool.scrub(reply.stdout, values),
                boxtool.scrub(reply.stderr, values),
            )
        return reply

    def _and_or(self, command: str, stdin: str) -> Reply:
        """`a && b || c` with the shell's left-to-right rule; the whole-command table first."""
        for pattern, handler in WHOLE:
            if found := pattern.search(command):
                return handler(self, found, stdin)
        parts = re.split(r" (&&|\|\|) ", command)
        out, err, code = "", "", 0
        for index in range(0, len(parts), 2):
            operator = parts[index - 1] if index else "&&"
            if (operator == "&&") != (code == 0):
                continue
            reply = self._simple(parts[index], stdin)
            out, err, code = out + reply.stdout, err + reply.stderr, reply.exit_code
        return Reply(code, out, err)

    def _simple(self, command: str, stdin: str) -> Reply:
        quiet = command.endswith(" 2>/dev/null")
        command = command.removesuffix(" 2>/dev/null")
        for pattern, handler in HANDLERS:
            if found := pattern.fullmatch(command):
                reply = handler(self, found, stdin)
                return Reply(reply.exit_code, reply.stdout, "" if quiet else reply.stderr)
        raise self.target.unexpected(self.target.calls[-1])

    def _lock(self, match: re.Match[str], stdin: str) -> Answer:
        """The box lock through hold(): held, or the conflict code when `lock_busy`; an
        exclusive `boxtool lock` leaves holder.json as the real holder does."""
        if not self.target.calls[-1].held:
            return self._shell(match, stdin)
        if lost := self._dropped():
            return lost
        if self.lock_busy:
            return Reply(LOCK_BUSY)
        words = shlex.split(self.target.calls[-1].command)
        if match.group(1) == "lock" and "exclusive" in words:
            run_id, _mode, grace, info = words[words.index("lock") + 1 :][:4]
            holder = {**json.loads(info), "run_id": run_id, "grace": float(grace)}
            self.files[".gate/holder.json"] = FakeFile(json.dumps(holder), "600")
        return Held()

    # --- files ----------------------------------------------------------------------------

    def _path(self, word: str) -> str:
        """A shell word naming a path, relative to the stack dir as the fake's tables key it."""
        return self._rel(shlex.split(word)[0])

    def _rel(self, path: str) -> str:
        if path == self.dir:
            return "."
        return path.removeprefix(self.dir + "/")

    def _parent_exists(self, path: str) -> bool:
        return str(PurePosixPath(path).parent) in self.dirs

    def _write(self, path: str, text: str) -> Reply:
        if not self._parent_exists(path):
            return Reply(2, stderr=f"sh: cannot create {path}: Directory nonexistent\n")
        old = self.files.get(path)
        self.files[path] = FakeFile(text, old.mode if old else "600")
        if path == "config.json":
            self._config_copied = False
        return Reply()

    def _cat_into(self, match: re.Match[str], stdin: str) -> Reply:
        return self._write(self._path(match["path"]), stdin)

    def _cat_append(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._path(match["path"])
        old = self.files.get(path)
        return self._write(path, (old.text if old else "") + stdin)

    def _cat(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._path(match["path"])
        if path not in self.files:
            return Reply(1, stderr=f"cat: {path}: No such file or directory\n")
        return Reply(stdout=self.files[path].text)

    def _chmod(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._path(match["path"])
        if path not in self.files and path not in self.dirs:
            return Reply(1, stderr=f"chmod: cannot access '{path}': No such file\n")
        if path in self.files:
            self.files[path].mode = match["mode"]
        return Reply()

    def _mv(self, match: re.Match[str], stdin: str) -> Reply:
        source, dest = self._path(match["src"]), self._path(match["dst"])
        if source not in self.files:
            return Reply(1, stderr=f"mv: cannot stat '{source}': No such file\n")
        reply = self._write(dest, self.files[source].text)
        if reply.exit_code == 0:
            self.files[dest].mode = self.files.pop(source).mode
        return reply

    def _cp(self, match: re.Match[str], stdin: str) -> Reply:
        source, dest = self._path(match["src"]), self._path(match["dst"])
        if source not in self.files:
            return Reply(1, stderr=f"cp: cannot stat '{source}': No such file\n")
        reply = self._write(dest, self.files[source].text)
        if reply.exit_code == 0:
            self.files[dest].mode = self.files[source].mode
            self._config_copied = dest == "config.json"
        return reply

    def _rm(self, match: re.Match[str], stdin: str) -> Reply:
        self.files.pop(self._rel(self._path(match["path"])), None)
        return Reply()

    def _mkdir(self, match: re.Match[str], stdin: str) -> Reply:
        path = PurePosixPath(self._path(match["path"]))
        self.dirs.update(str(p) for p in [path, *path.parents])
        return Reply()

    def _test_dir(self, match: re.Match[str], stdin: str) -> Reply:
        return Reply(0 if self._path(match["path"]) in self.dirs else 1)

    def _echo(self, match: re.Match[str], stdin: str) -> Reply:
        return Reply(stdout=" ".join(shlex.split(match["words"] or "")) + "\n")

    def _sha256sum(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._path(match["path"])
        if path not in self.files:
            return Reply(1, stderr=f"sha256sum: {path}: No such file or directory\n")
        return Reply(stdout=f"{sha256(self.files[path].text)}  {path}\n")

    def _ok(self, match: re.Match[str], stdin: str) -> Reply:
        return Reply()

    def _preflight(self, match: re.Match[str], stdin: str) -> Reply:
        if shlex.split(match["dir"])[0] != self.dir:
            return Reply(stdout="no-dir\n")
        tools = match["tools"].split()
        return Reply(stdout="".join(f"missing:{t}\n" for t in tools if t in self.missing_tools))

    def _tool_probe(self, match: re.Match[str], stdin: str) -> Reply:
        tools = match["tools"].split()
        return Reply(stdout="".join(f"{t}\n" for t in tools if t in self.missing_tools))

    # --- boxtool --------------------------------------------------------------------------

    def _spec_path(self) -> str:
        """The spec the command names (GATE_SPEC=...), as boxtool finds it."""
        named = re.search(r"GATE_SPEC=(\S+)", self.target.calls[-1].raw)
        return shlex.split(named.group(1))[0] if named else ".gate/spec.json"

    def _spec(self) -> dict[str, Any] | None:
        spec = self.files.get(self._spec_path())
        return json.loads(spec.text) if spec else None

    def _secret_env(self, spec: Mapping[str, Any]) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if boxtool.is_secret_key(k, spec)}

    def _secret_files(self, spec: Mapping[str, Any]) -> list[str]:
        return sorted(
            p for p in self.files if any(fnmatch.fnmatchcase(p, g) for g in spec["files"])
        )

    def _secret_values(self) -> list[str]:
        """What boxtool's secret_values finds: env secrets, secret config paths, key lines."""
        spec = self._spec() or {"env_keys": [], "files": [], "config_paths": []}
        values = set(self._secret_env(spec).values())
        values.update(
            str(boxtool.dotted(self._raw_config(), p) or "") for p in spec["config_paths"]
        )
        for path in self._secret_files(spec):
            values.update(ln.strip() for ln in self.files[path].text.splitlines())
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def _raw_config(self) -> Any:
        try:
            return json.loads(self.files["config.json"].text)
        except (KeyError, ValueError):
            return {}

    def _boxtool(self, match: re.Match[str], stdin: str) -> Reply:
        verb, *args = shlex.split(match["args"])
        spec = self._spec()
        if spec is None:
            return Reply(1, stderr="boxtool: FileNotFoundError: .gate/spec.json\n")
        if verb not in TOOL_VERBS:
            raise self.target.unexpected(self.target.calls[-1])
        return TOOL_VERBS[verb](self, spec, args, stdin)

    def _tool_fingerprint(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        prints: dict[str, dict[str, str]] = {"env": {}, "files": {}, "config": {}}
        prints["env"] = {k: sha256(v) for k, v in self._secret_env(spec).items()}
        prints["files"] = {p: sha256(self.files[p].text) for p in self._secret_files(spec)}
        for path in spec["config_paths"]:
            value = boxtool.dotted(self._raw_config(), path)
            if value not in (None, ""):
                prints["config"][path] = sha256(str(value))
        return Reply(stdout=json.dumps(prints, sort_keys=True) + "\n")

    def _tool_config(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        cfg = self._raw_config()
        for path in spec["config_paths"]:
            *parents, last = path.split(".")
            parent = boxtool.dotted(cfg, ".".join(parents)) if parents else cfg
            if isinstance(parent, dict) and parent.get(last) not in (None, ""):
                parent[last] = boxtool.MASK
        text = json.dumps(cfg, indent=2, sort_keys=True)
        return Reply(stdout=boxtool.scrub(text, self._secret_values()) + "\n")

    def _tool_render(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        base, out = (self._rel(arg) for arg in args)
        if base not in self.files:
            return Reply(1, stderr=f"FileNotFoundError: {base}\n")
        cfg = json.loads(self.files[base].text)
        for path, value in json.loads(stdin).items():
            *parents, last = path.split(".")
            parent = boxtool.dotted(cfg, ".".join(parents)) if parents else cfg
            if not isinstance(parent, dict) or last not in parent:
                return Reply(2, stderr=f"boxtool: config has no path {path}\n")
            parent[last] = value
        return self._write(out, json.dumps(cfg, indent=2) + "\n")

    def _tool_scrub(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        return Reply(stdout=boxtool.scrub(stdin, self._secret_values()))

    def _tool_http(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        url, opts = args[0], boxtool.options(args[2:])
        answer: dict[str, Any] = {"code": None, "body": "", "error": ""}
        dashboard = self._running("dashboard")
        token = self.env.get(opts.get("env-key", ""), "") if "header" in opts else ""
        if "wrong" in opts:
            token = "gate-wrong-credential-0123456789abcdef"
        elif "header" in opts and not token:
            answer["error"] = boxtool.missing_key(opts["env-key"])
            return Reply(stdout=json.dumps(answer) + "\n")
        if dashboard is None or not self._serves(dashboard, url):
            answer["error"] = "URLError: <urlopen error [Errno 111] Connection refused>"
        elif sha256(token) != dashboard.settings["token_sha256"]:
            answer.update(code=401, body=json.dumps({"error": "bearer token required"}))
        else:
            answer.update(code=200, body=json.dumps(self.api_state()))
        values = self._secret_values()
        scrubbed = {
            k: boxtool.scrub(v, values) if isinstance(v, str) else v for k, v in answer.items()
        }
        return Reply(stdout=json.dumps(scrubbed) + "\n")

    def _tool_quiesce(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        """No command of the fake is ever left running: the box is quiet at once."""
        return Reply(stdout="quiet\n")

    def _tool_port(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        """The dashboard's port speaks TLS when secure; the node's RPC port is bound where
        its settings say (`node_bind` overrides that: a daemon ignoring its config)."""
        host, port = args[0], int(args[1])
        answer: dict[str, Any] = {"open": False, "tls": None, "listening": []}
        dashboard, node = self._running("dashboard"), self._running("node")
        if dashboard is not None and port == dashboard.settings["port"]:
            answer.update(open=True, tls=dashboard.settings["secure"], listening=["127.0.0.1"])
        if node is not None and port == node.settings["port"]:
            bind = self.defects.node_bind or node.settings["bind"]
            answer.update(open=True, tls=False, listening=[bind])
        if host != "127.0.0.1" and answer["listening"] != ["0.0.0.0"]:
            answer.update(open=False, tls=None)
        return Reply(stdout=json.dumps(answer) + "\n")

    def _tool_file(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        path, form = self._rel(args[0]), args[1]
        if path not in self.files:
            return Reply(1, stderr=f"boxtool: {path}: FileNotFoundError\n")
        parsed = boxtool.parse_file(self.files[path].text, form, dict(spec))
        text = json.dumps(parsed, sort_keys=True)
        return Reply(stdout=boxtool.scrub(text, self._secret_values()) + "\n")

    def _tool_archive(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        """boxtool archive PATH WANTED: the kind, where it lies, what its listing lacks."""
        path, wanted = self._rel(args[0]), json.loads(args[1])
        real = self.links.get(path, path)
        facts: dict[str, Any] = {"path": args[0], "real": f"{self.dir}/{real}"}
        if path in self.links:
            facts["kind"] = "link"
        elif path in self.files:
            facts["kind"] = "file"
        else:
            facts["kind"] = "missing"
            return Reply(stdout=json.dumps(facts) + "\n")
        inside = not real.startswith(("/", "../"))
        facts["inside"] = [
            r for r in wanted["roots"] if inside and (r == "." or real.startswith(r + "/"))
        ]
        if facts["kind"] == "file":
            members = self.archives.get(path)
            if members is None:
                facts["error"] = "not a readable tar or zip archive (ReadError)"
            else:
                facts.update(format="tar", members=len(members))
                facts["lacks"] = [
                    n
                    for n in wanted["holds"]
                    if n not in members and not any(m.startswith(n + "/") for m in members)
                ]
        return Reply(stdout=json.dumps(facts) + "\n")

    def _rm_archive(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._rel(self._path(match["path"]))
        self.files.pop(path, None)
        self.archives.pop(path, None)
        self.links.pop(path, None)
        return Reply()

    def _tool_inuse(self, spec: Mapping[str, Any], args: list[str], stdin: str) -> Reply:
        answers = []
        for use in spec.get("in_use", []):
            secret = self.env.get(use["secret"], "")
            text = self.files.get(use["file"])
            present = None if text is None else bool(secret) and secret in text.text
            answers.append({**use, "present": present, "secret_set": bool(secret)})
        return Reply(stdout=json.dumps(answers) + "\n")

    def _serves(self, dashboard: Program, url: str) -> bool:
        parts = urlsplit(url)
        scheme = "https" if dashboard.settings["secure"] else "http"
        wanted = (scheme, "127.0.0.1", dashboard.settings["port"], "/api/state")
        return (parts.scheme, parts.hostname, parts.port, parts.path) == wanted

    # --- the stack's own state ------------------------------------------------------------

    def _running(self, name: str) -> Program | None:
        program = self.programs.get(name)
        return program if program is not None and program.state == "running" else None

    def admitting(self) -> bool:
        """The proxy admits workers while it runs and the node answers (or is remote)."""
        if self._running("proxy") is None:
            return False
        remote = self.programs["proxy"].settings.get("node_mode") == "remote"
        return remote or self.defects.proxy_ignores_node or self._running("node") is not None

    def _revive(self) -> None:
        """The revive_after_reads defect: a stopped service comes back by itself."""
        for name in list(self._stopped_reads):
            self._stopped_reads[name] += 1
            if self._stopped_reads[name] >= (self.defects.revive_after_reads or 0):
                del self._stopped_reads[name]
                if name in self.programs and not self._running(name):
                    self.programs[name] = self._spawn(name, self.programs[name].settings)

    def api_state(self) -> dict[str, Any]:
        """/api/state as the running dashboard gathers it from the running services."""
        dashboard = self.programs["dashboard"].settings
        node, pool, proxy = (self._running(n) for n in ("node", "pool", "proxy"))
        remote = dashboard["node_mode"] == "remote"
        workers = sum(1 for n in self.programs if n.startswith("worker-") and self._running(n))
        if proxy is not None and not self.defects.shares_stuck:
            self.shares += max(1, workers)
        state: dict[str, Any] = {
            "node": {
                "mode": dashboard["node_mode"],
                "synchronized": remote or node is not None,
                "height": 120,
                "target_height": 120,
                "compact": node.settings["compact"] if node else None,
            },
            "pool": {"tier": pool.settings["tier"] if pool else None, "ready": pool is not None},
            "proxy": {"admitting": self.admitting()},
            "workers": {"online": workers if self.admitting() else 0},
            "shares": {"total": self.shares},
            "cache": {
                "enabled": bool(dashboard["cache_url"]),
                "healthy": (self._running("cache") is not None) if dashboard["cache_url"] else None,
            },
            "strict": dashboard["strict"],
            "version": VERSION,
        }
        for path, value in self.defects.api_overrides.items():
            *parents, last = path.split(".")
            node_ = state
            for part in parents:
                node_ = node_.setdefault(part, {})
            node_[last] = value
        return state

    def status_doc(self) -> tuple[int, dict[str, Any]]:
        """What `stackctl status --json` reports, and its exit code (stacklib/status.py)."""
        self._revive()
        try:
            cfg = stackconfig.validate(json.loads(self.files["config.json"].text))
        except (ValueError, stackconfig.ConfigError) as exc:
            doc = {"overall": "unknown", "reasons": [str(exc)], "services": {}, "expected": []}
            return 2, {**doc, "node": None, "version": VERSION}
        expected = stackconfig.expected_services(cfg)
        services = {name: self._entry(name) for name in expected}
        services.update(
            {n: {**self._entry(n), "detail": "not in config (run apply)", "unexpected": True}
             for n in self.programs if n not in expected}
        )  # fmt: skip
        reasons = [
            f"{n}: {s['state']}"
            for n, s in services.items()
            if s["state"] != "running" and "unexpected" not in s
        ]
        reasons += [
            f"{n}: running but not in config" for n, s in services.items() if "unexpected" in s
        ]
        node = self._running("node") is not None or cfg["node"]["mode"] == "remote"
        reasons += [] if node else ["node unreachable: connection refused"]
        reasons += [] if self.admitting() else ["proxy not admitting workers"]
        if cfg["dashboard"]["strict"] and not self._running("pool"):
            reasons.append("pool not ready (dashboard.strict)")
        doc = {
            "overall": "degraded" if reasons else "healthy",
            "reasons": reasons,
            "services": services,
            "expected": expected,
            "node": {"endpoint": stackconfig.node_url(cfg), "synchronized": node},
            "version": VERSION,
        }
        return (1 if reasons else 0), doc

    def _entry(self, name: str) -> dict[str, Any]:
        program = self.programs.get(name)
        if program is None:
            return {"state": "missing", "pid": None, "started": None}
        entry: dict[str, Any] = {
            "state": program.state,
            "pid": program.pid,
            "started": program.started,
        }
        if program.state == "exited":
            entry.update(detail="exited", exitstatus=program.exitstatus)
        if program.state == "paused":
            entry.update(state="unhealthy", detail="not answering: timed out")
        return entry

    # --- stackctl -------------------------------------------------------------------------

    def _stackctl(self, match: re.Match[str], stdin: str) -> Reply:
        for pattern, handler in STACKCTL:
            if found := pattern.fullmatch(match["args"]):
                return handler(self, found, stdin)
        raise self.target.unexpected(self.target.calls[-1])

    def _ctl_status_json(self, match: re.Match[str], stdin: str) -> Reply:
        code, doc = self.status_doc()
        if self.defects.status_garbage:
            return Reply(0, "overall: healthy (no JSON here)\n")
        if self.defects.status_services_as_strings:
            doc["services"] = {n: s["state"] for n, s in doc["services"].items()}
        return Reply(code, json.dumps(doc, indent=2) + "\n")

    def _ctl_status(self, match: re.Match[str], stdin: str) -> Reply:
        code, doc = self.status_doc()
        lines = [
            f"{name:<12} {s['state']:<10} {'pid ' + str(s['pid']) if s['pid'] else ''}".rstrip()
            for name, s in doc["services"].items()
        ]
        lines += [f"overall: {doc['overall']}", *(f"  - {r}" for r in doc["reasons"])]
        return Reply(code, "\n".join(lines) + "\n")

    def _ctl_version(self, match: re.Match[str], stdin: str) -> Reply:
        doc: dict[str, Any] = {"stack": VERSION, "services": SERVICE_VERSIONS}
        if self.defects.version_leaks_secret:
            doc["build"] = self.env.get("DASHBOARD_TOKEN", "")
        return Reply(stdout=json.dumps(doc) + "\n")

    def _ctl_doctor(self, match: re.Match[str], stdin: str) -> Reply:
        code, doc = self.status_doc()
        lines = [f"{'OK' if code != 2 else 'FAIL'} config.json is valid"]
        lines += [f"{'OK' if self.env.get(k) else 'FAIL'} {k} is set" for k in SECRETS]
        lines += [
            f"{'OK' if s['state'] == 'running' else 'FAIL'} {n} {s['state']}"
            for n, s in doc["services"].items()
        ]
        lines.append(f"{'OK' if code == 0 else 'FAIL'} overall {doc['overall']}")
        failed = any(line.startswith("FAIL") for line in lines)
        return Reply(1 if failed else 0, "\n".join(lines) + "\n")

    def _ctl_logs(self, match: re.Match[str], stdin: str) -> Reply:
        lines = self.logs.get(match["service"], [])[-int(match["lines"]) :]
        if not lines:
            return Reply(stdout=f"(no log yet for {match['service']})\n")
        return Reply(stdout="".join(line + "\n" for line in lines))

    def _ctl_apply(self, match: re.Match[str], stdin: str) -> Reply:
        return self._apply()

    def _ctl_backup(self, match: re.Match[str], stdin: str) -> Reply:
        """config.json, .env and secrets/ into backups/backup-N.tar.gz (stacklib/backup.py)."""
        if self.defects.backup_fails:
            return Reply(1, stderr="error: OSError: [Errno 28] No space left on device\n")
        self.dirs.add("backups")
        name = f"backups/backup-{len(self.backups) + 1}.tar.gz"
        kept = [p for p in self.files if p in ("config.json", ".env") or p.startswith("secrets/")]
        members = {
            p: dataclasses.replace(self.files[p])
            for p in kept
            if p not in self.defects.backup_omits
        }
        real = (
            f"backups/real-{len(self.backups) + 1}.tar.gz" if self.defects.backup_symlink else name
        )
        self.archives[real] = members
        self.files[real] = FakeFile("<tar.gz>", "600")
        if self.defects.backup_symlink:
            self.links[name] = real
        self.backups.append(name)
        if self.defects.backup_output is not None:
            return Reply(stdout=self.defects.backup_output)
        return Reply(stdout=f"Backup written to: {self.dir}/{name}\n")

    def _ctl_restore(self, match: re.Match[str], stdin: str) -> Reply:
        path = self._path(match["archive"])
        if self.defects.restore_fails or path not in self.archives:
            return Reply(2, stderr=f"error: restore refused, nothing changed: {path}\n")
        for member, stored in self.archives[path].items():
            if not self.defects.restore_noop:
                self.files[member] = dataclasses.replace(stored)
        return Reply(stdout=f"Restored config.json, .env and secrets/ from {path}\n")

    def _ctl_restart(self, match: re.Match[str], stdin: str) -> Reply:
        """Every program stopped and started again from its settings: new pids."""
        if not self.defects.restart_noop:
            for name, program in self.programs.items():
                self.programs[name] = self._spawn(name, program.settings)
        return Reply(stdout="Restarted\n")

    def _known(self, name: str) -> Reply | None:
        """stackctl's own refusal of a service the config does not run (exit 2)."""
        if name in stackconfig.expected_services(stackconfig.validate(self.config)):
            return None
        return Reply(2, stderr=f"error: no such service: {name}\n")

    def _ctl_stop(self, match: re.Match[str], stdin: str) -> Reply:
        name = match["service"]
        if refused := self._known(name):
            return refused
        if name in self.programs:
            self.stop(name)
            if self.defects.revive_after_reads is not None:
                self._stopped_reads[name] = 0
        return Reply(stdout=f"Stopped: {name}\n")

    def _ctl_start(self, match: re.Match[str], stdin: str) -> Reply:
        name = match["service"]
        if refused := self._known(name):
            return refused
        if name not in self.programs:
            return Reply(1, stderr=f"error: {name} was removed: run stackctl up\n")
        if self.programs[name].state == "exited":
            self.programs[name] = self._spawn(name, self.programs[name].settings)
        return Reply(stdout=f"Started: {name}\n")

    def _ctl_kill(self, match: re.Match[str], stdin: str) -> Reply:
        """STOP freezes (status: unhealthy), CONT thaws, anything else ends the process."""
        name, sig = match["service"], match["signal"].upper().removeprefix("SIG")
        if refused := self._known(name):
            return refused
        program = self.programs.get(name)
        if program is None or program.state == "exited":
            return Reply(1, stderr=f"error: Fault: NOT_RUNNING: {name}\n")
        if sig == "STOP":
            program.state = "paused"
        elif sig == "CONT":
            program.state = "paused" if self.defects.never_thaws else "running"
        else:
            self.stop(name)
        return Reply(stdout=f"Sent SIG{sig} to {name}\n")

    def _ctl_rm(self, match: re.Match[str], stdin: str) -> Reply:
        name = match["service"]
        if refused := self._known(name):
            return refused
        self.programs.pop(name, None)
        return Reply(stdout=f"Removed: {name}\n")

    def _ctl_down(self, match: re.Match[str], stdin: str) -> Reply:
        for program in self.programs.values():
            program.state, program.pid, program.exitstatus = "exited", None, 0
        return Reply(stdout="Stopped\n")

    def _ctl_up(self, match: re.Match[str], stdin: str) -> Reply:
        """Every expected service from the last applied settings (no render)."""
        for name, program in self.programs.items():
            if program.state == "exited":  # a frozen one is RUNNING to supervisord
                self.programs[name] = self._spawn(name, program.settings)
        wanted = self._programs(stackconfig.validate(self.config))
        for name in wanted:  # a removed program comes back from the applied settings
            if name not in self.programs:
                self.programs[name] = self._spawn(name, wanted[name])
        return Reply(stdout="Started\n")

    # --- apply ----------------------------------------------------------------------------

    def _apply(self) -> Reply:
        """validate, render .env, recreate what changed, start what stopped (stacklib/apply.py)."""
        try:
            cfg = stackconfig.validate(json.loads(self.files["config.json"].text))
        except ValueError as exc:
            return self._applied(Reply(2, stderr=f"error: config.json: {exc}\n"))
        except stackconfig.ConfigError as exc:
            return self._applied(Reply(2, stderr=f"error: {exc}\n"))
        if self.defects.fail_apply:
            tier = cfg["pool"]["tier"]
            return self._applied(
                Reply(1, stderr=f"error: pool failed to come up with tier {tier}\n")
            )
        restoring, self._config_copied = self._config_copied, False
        self._render_env(cfg)
        wanted = self._programs(cfg)
        if restoring and self.defects.fail_restore_apply:
            return self._applied(self._fail_part_way(wanted))
        return self._applied(Reply(stdout="".join(f"{line}\n" for line in self._reconcile(wanted))))

    def _applied(self, reply: Reply) -> Reply:
        self.applies.append(reply)
        return reply

    def _render_env(self, cfg: dict[str, Any]) -> None:
        old = self.env
        env = stackconfig.render_env_settings(cfg)
        env.update({k: old[k] for k in SECRETS if k in old})
        if self.defects.rotate_secret_on_apply:
            env["DASHBOARD_TOKEN"] = f"fake-rotated-token-{self._pid:06d}"
        for key, value in old.items():
            env.setdefault(key, value)
        self.files[".env"].text = envfile.format_env(env)

    def _programs(self, cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each expected program's start settings, secrets as digests (a change recreates it)."""
        settings = stackconfig.service_settings(Path(self.dir), cfg)
        settings["pool"]["tier"] = cfg["pool"]["tier"]
        env = self.env
        for name, values in settings.items():
            used = stackconfig.secrets_used(name, cfg)
            values["secrets"] = {k: sha256(env.get(k, "")) for k in used}
        settings["dashboard"]["token_sha256"] = sha256(env.get("DASHBOARD_TOKEN", ""))
        return {name: settings[name] for name in stackconfig.expected_services(cfg)}

    def _reconcile(self, wanted: dict[str, dict[str, Any]]) -> list[str]:
        changed = [
            n for n in wanted if n in self.programs and self.programs[n].settings != wanted[n]
        ]
        created = [n for n in wanted if n not in self.programs]
        removed = sorted(n for n in self.programs if n not in wanted)
        stopped = [
            n for n in wanted if n not in changed + created and self.programs[n].state == "exited"
        ]
        for name in removed:
            del self.programs[name]
        if self.defects.recreate_all_on_change and (changed or created or removed):
            changed = [n for n in wanted if n in self.programs]
        for name in changed + created + stopped:
            self.programs[name] = self._spawn(name, wanted[name])
        if self.defects.restart_on_every_apply and "pool" in self.programs:
            self.programs["pool"] = self._spawn("pool", self.programs["pool"].settings)
        lines = [] if changed or created or removed else ["No configuration changes detected"]
        lines += [f"Recreated: {', '.join(changed + created)}"] if changed or created else []
        lines += [f"Removed: {', '.join(removed)}"] if removed else []
        lines += [f"Started: {', '.join(stopped)}"] if stopped else []
        return lines

    def _fail_part_way(self, wanted: dict[str, dict[str, Any]]) -> Reply:
        """The first program comes back; every other one is left exited, exit 1."""
        first, *rest = wanted
        self.programs[first] = self._spawn(first, wanted[first])
        for name in rest:
            self.programs[name] = Program(wanted[name], None, None, "exited", 1)
        return Reply(1, f"Recreated: {first}\n", f"error: RuntimeError: {rest[0]}: spawn error\n")

    def _spawn(self, name: str, settings: dict[str, Any]) -> Program:
        self._pid += 1
        self._clock += 1.0
        self.logs.setdefault(name, []).append(f"{name}: started pid {self._pid}")
        return Program(settings, self._pid, self._clock)


def _tool_probe_pattern() -> re.Pattern[str]:
    return re.compile(
        r'^for t in (?P<tools>[^;]+); do command -v "\$t" >/dev/null \|\| echo "\$t"; done$'
    )


PREFLIGHT = re.compile(
    r"^test -d (?P<dir>\S+) \|\| \{ echo no-dir; exit 0; \}; "
    r'for t in (?P<tools>[^;]+); do command -v "\$t" >/dev/null \|\| echo "missing:\$t"; done$'
)
"""The engine's preflight probe (gate/engine/engine.py): fixed words only."""

WHOLE: tuple[tuple[re.Pattern[str], Handler], ...] = (
    (_tool_probe_pattern(), FakeStack._tool_probe),
    (PREFLIGHT, FakeStack._preflight),
)
"""Commands answered as a whole, before and-or splitting (they hold `||` themselves)."""

_P = r"(?P<path>\S+)"
HANDLERS: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(pattern), handler)
    for pattern, handler in (
        (r"umask \d+", FakeStack._ok),
        (rf"cat > {_P}", FakeStack._cat_into),
        (rf"cat >> {_P}", FakeStack._cat_append),
        (rf"cat {_P}", FakeStack._cat),
        (rf"chmod (?P<mode>[0-7]{{3,4}}) {_P}", FakeStack._chmod),
        (r"mv -f (?P<src>\S+) (?P<dst>\S+)", FakeStack._mv),
        (r"cp -p (?P<src>\S+) (?P<dst>\S+)", FakeStack._cp),
        (rf"mkdir -p {_P}", FakeStack._mkdir),
        (rf"rm -f {_P}", FakeStack._rm),
        (rf"rm -f -- {_P}", FakeStack._rm_archive),
        (rf"test -d {_P}", FakeStack._test_dir),
        (r"echo(?: (?P<words>.*))?", FakeStack._echo),
        (rf"sha256sum {_P}", FakeStack._sha256sum),
        (r"(?:GATE_SPEC=\S+ )?python3 \.gate/boxtool\.py (?P<args>.+)", FakeStack._boxtool),
        (rf"{re.escape(CONTROL)} (?P<args>.+)", FakeStack._stackctl),
    )
)
"""Simple commands (one piece of an and-or list), matched in full."""

STACKCTL: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(pattern), handler)
    for pattern, handler in (
        (r"status --json", FakeStack._ctl_status_json),
        (r"status --json --wait \d+", FakeStack._ctl_status_json),  # the fake is ready at once
        (r"status", FakeStack._ctl_status),
        (r"apply -y", FakeStack._ctl_apply),
        (r"version --json", FakeStack._ctl_version),
        (r"doctor", FakeStack._ctl_doctor),
        (r"logs (?P<service>\S+) -n (?P<lines>\d+)", FakeStack._ctl_logs),
        (r"backup", FakeStack._ctl_backup),
        (r"restore (?P<archive>\S+)", FakeStack._ctl_restore),
        (r"restart", FakeStack._ctl_restart),
        (r"down", FakeStack._ctl_down),
        (r"stop (?P<service>\S+)", FakeStack._ctl_stop),
        (r"start (?P<service>\S+)", FakeStack._ctl_start),
        (r"kill -s (?P<signal>\S+) (?P<service>\S+)", FakeStack._ctl_kill),
        (r"rm (?P<service>\S+)", FakeStack._ctl_rm),
        (r"up", FakeStack._ctl_up),
    )
)
"""stackctl's verbs the gate sends, matched in full against what follows the control path."""

ToolVerb = Callable[[FakeStack, Mapping[str, Any], list[str], str], Reply]
TOOL_VERBS: dict[str, ToolVerb] = {
    "fingerprint": FakeStack._tool_fingerprint,
    "config": FakeStack._tool_config,
    "render": FakeStack._tool_render,
    "scrub": FakeStack._tool_scrub,
    "http": FakeStack._tool_http,
    "port": FakeStack._tool_port,
    "file": FakeStack._tool_file,
    "inuse": FakeStack._tool_inuse,
    "archive": FakeStack._tool_archive,
    "quiesce": FakeStack._tool_quiesce,
}
"""boxtool's verbs (`exec` never arrives: the double unwraps it and `_shell` scrubs)."""
