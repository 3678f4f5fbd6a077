"""The gate's helper on the box: the one place plaintext secrets are touched.

The gate uploads this file (stdlib only, any python3) to `<stack>/.gate/boxtool.py` and
runs it for everything that would otherwise carry a secret across the wire: it hashes
secrets into fingerprints, scrubs secret values out of command output, reads the API token
from .env itself, and renders configs from the on-box baseline. Its non-secret inputs
(key globs, file globs, config paths) come from `.gate/spec.json`. It also holds the box
lock for a run (`lock`, `lifeline`): in a detached process, so a dropped link does not
silently free the box while the run may still act on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any, NoReturn

MASK = "***"
SPEC_PATH = os.path.join(".gate", "spec.json")
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"']+")


def load_spec() -> dict[str, Any]:
    """This run's spec: $GATE_SPEC names it (each run has its own, so a run refused at the
    lock cannot change what another run scrubs and fingerprints)."""
    with open(os.environ.get("GATE_SPEC") or SPEC_PATH, encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


def read_env(path: str) -> dict[str, str]:
    """KEY=value lines of a dotenv file ({} when there is none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_env(handle.read())
    except FileNotFoundError:
        return {}


def parse_env(text: str) -> dict[str, str]:
    """KEY=value lines; comments and blanks skipped, one layer of quotes removed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def is_secret_key(key: str, spec: dict[str, Any]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in spec["env_keys"])


def dotted(config: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(config, dict) or part not in config:
            return None
        config = config[part]
    return config


class JsonFormat:
    """config.json-style files: nested objects, dotted paths."""

    @staticmethod
    def load(text: str) -> Any:
        return json.loads(text)

    @staticmethod
    def dump(config: Any, _original: str) -> str:
        return json.dumps(config, indent=2) + "\n"


class EnvFormat:
    """KEY=value files as the config: each key is a path; values are strings."""

    @staticmethod
    def load(text: str) -> Any:
        return parse_env(text)

    @staticmethod
    def dump(config: Any, original: str) -> str:
        """The original lines with changed values replaced in place (comments kept)."""
        lines, seen = [], set()
        for line in original.splitlines():
            key = line.partition("=")[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and key in config:
                line = f"{key}={env_text(config[key])}"
                seen.add(key)
            lines.append(line)
        lines += [f"{k}={env_text(v)}" for k, v in config.items() if k not in seen]
        return "\n".join(lines) + "\n"


def env_text(value: Any) -> str:
    """How a JSON scalar is spelled in an env file (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FORMATS: dict[str, Any] = {"json": JsonFormat, "env": EnvFormat}
"""The config formats gate can read and render; a new one is a class with load and dump."""


def config_format(spec: dict[str, Any]) -> Any:
    return FORMATS[spec.get("config_format", "json")]


def read_config(spec: dict[str, Any]) -> Any:
    with open(spec["config_file"], encoding="utf-8") as handle:
        return config_format(spec).load(handle.read())


def secret_files(spec: dict[str, Any]) -> list[str]:
    found: set[str] = set()
    for pattern in spec["files"]:
        found.update(p for p in glob.glob(pattern) if os.path.isfile(p))
    return sorted(found)


def secret_values(spec: dict[str, Any]) -> list[str]:
    """Every secret value on this box, longest first, so substrings are masked last.

    An env file set aside (`aside`) counts too: while a key is blanked in the env file,
    its value must still be scrubbed from whatever a command prints."""
    env = read_env(spec["env_file"])
    values = {v for k, v in env.items() if is_secret_key(k, spec)}
    for path in glob.glob(ASIDE_GLOB):
        values.update(v for k, v in read_env(path).items() if is_secret_key(k, spec))
    try:
        config = read_config(spec)
    except (OSError, ValueError):
        config = {}
    values.update(str(dotted(config, path) or "") for path in spec["config_paths"])
    for path in secret_files(spec):
        with open(path, encoding="utf-8", errors="replace") as handle:
            values.update(line.strip() for line in handle if len(line.strip()) >= 8)
    values.update(form for value in list(values) for form in escaped_forms(value))
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def escaped_forms(value: str) -> set[str]:
    """How a secret reads inside JSON text (a quote, a backslash, a slash or a non-ASCII
    character is escaped there), so output that carries it escaped is scrubbed too."""
    ascii_form = json.dumps(value)[1:-1]
    return {ascii_form, json.dumps(value, ensure_ascii=False)[1:-1], ascii_form.replace("/", "\\/")}


def scrub(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, MASK)
    text = _USERINFO.sub(r"\1" + MASK + "@", text)
    return _BEARER.sub(r"\1" + MASK, text)


def scrub_tree(value: Any, values: list[str]) -> Any:
    """Every string in a JSON value (keys too) scrubbed before it is dumped: scrubbing the
    dumped text could eat an escape (`Bearer realm=\\"x\\"`) and break the JSON."""
    if isinstance(value, str):
        return scrub(value, values)
    if isinstance(value, list):
        return [scrub_tree(item, values) for item in value]
    if isinstance(value, dict):
        return {scrub(str(k), values): scrub_tree(v, values) for k, v in value.items()}
    return value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cmd_fingerprint(spec: dict[str, Any], _args: list[str]) -> int:
    """Print secret fingerprints per category; plaintext never leaves this process."""
    print(json.dumps(fingerprints(spec), sort_keys=True))
    return 0


def fingerprints(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """sha256 of every secret, per category (env keys, secret files, config paths)."""
    env = read_env(spec["env_file"])
    prints: dict[str, dict[str, str]] = {"env": {}, "files": {}, "config": {}}
    for key, value in env.items():
        if is_secret_key(key, spec):
            prints["env"][key] = sha256(value.encode())
    for path in secret_files(spec):
        with open(path, "rb") as handle:
            prints["files"][path] = sha256(handle.read())
    config = read_config(spec)
    for path in spec["config_paths"]:
        value = dotted(config, path)
        if value not in (None, ""):
            prints["config"][path] = sha256(str(value).encode())
    return prints


def cmd_exec(spec: dict[str, Any], args: list[str]) -> int:
    """exec TIMEOUT CMD [VAR=ENV_KEY ...]: run `sh -c CMD` with a timeout, each VAR set from
    the env file here (a secret reaches the command by its environment, never argv), scrub
    its output, exit with its code (124: timeout)."""
    timeout, command = float(args[0]), args[1]
    env = read_env(spec["env_file"]) if args[2:] else {}
    child_env = dict(os.environ)
    for pair in args[2:]:
        variable, _, key = pair.partition("=")
        if not env.get(key):
            print(f"boxtool: {missing_key(key)}", file=sys.stderr)
            return 2
        child_env[variable] = env[key]
    child = subprocess.Popen(
        ["sh", "-c", command],
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
        code = child.returncode if child.returncode >= 0 else 128 - child.returncode  # a shell's
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        err += f"\nboxtool: timed out after {timeout:g}s\n".encode()
        code = 124
    values = secret_values(spec)
    sys.stdout.write(scrub(out.decode("utf-8", "replace"), values))
    sys.stderr.write(scrub(err.decode("utf-8", "replace"), values))
    return code


def missing_key(key: str) -> str:
    """A secret a probe needs is absent: the probe must not run without it (an endpoint or
    daemon that accepts an empty credential would otherwise pass)."""
    return f"env key {key} is missing or empty in the env file"


def cmd_scrub(spec: dict[str, Any], _args: list[str]) -> int:
    sys.stdout.write(scrub(sys.stdin.read(), secret_values(spec)))
    return 0


def mask_paths(config: Any, paths: list[str]) -> Any:
    """The config with every secret path's value replaced by the mask."""
    for path in paths:
        parts = path.split(".")
        parent = dotted(config, ".".join(parts[:-1])) if len(parts) > 1 else config
        if isinstance(parent, dict) and parent.get(parts[-1]) not in (None, ""):
            parent[parts[-1]] = MASK
    return config


def cmd_config(spec: dict[str, Any], _args: list[str]) -> int:
    """Print the config (any format, as JSON) with every secret path masked."""
    config = mask_paths(read_config(spec), spec["config_paths"])
    print(json.dumps(scrub_tree(config, secret_values(spec)), indent=2, sort_keys=True))
    return 0


def tls_context(args: dict[str, str]) -> ssl.SSLContext | None:
    """--ca FILE verifies against that CA; --insecure does not verify (declared loopback)."""
    if "ca" in args:
        return ssl.create_default_context(cafile=args["ca"])
    context = ssl.create_default_context()
    if "insecure" in args:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def options(args: list[str]) -> dict[str, str]:
    """`--name value` pairs (and bare `--flag`s, as "") into a dict."""
    found: dict[str, str] = {}
    index = 0
    while index < len(args):
        name = args[index].removeprefix("--")
        flag = index + 1 >= len(args) or args[index + 1].startswith("--")
        found[name] = "" if flag else args[index + 1]
        index += 1 if flag else 2
    return found


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A probe's answer is the endpoint's own: a redirect is reported as its 3xx, never
    followed (urllib would carry the auth header to wherever it points)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def cmd_http(spec: dict[str, Any], args: list[str]) -> int:
    """http URL TIMEOUT [--header NAME --template T --env-key KEY] [--ca FILE | --insecure]:
    GET URL, the header's value read from the env file here; print {code, body, error}."""
    url, timeout, opts = args[0], float(args[1]), options(args[2:])
    headers = {}
    if "header" in opts:
        secret = read_env(spec["env_file"]).get(opts["env-key"], "")
        if "wrong" in opts:  # the auth control's wrong credential: never a real one
            secret = "gate-wrong-credential-" + os.urandom(8).hex()
        elif not secret:
            print(json.dumps({"code": None, "body": "", "error": missing_key(opts["env-key"])}))
            return 0
        headers[opts["header"]] = opts.get("template", "{}").replace("{}", secret)
    request = urllib.request.Request(url, headers=headers)
    result: dict[str, Any] = {"code": None, "body": "", "error": ""}
    try:
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=tls_context(opts)), NoRedirect()
        )
        with opener.open(request, timeout=timeout) as answer:
            result["code"], result["body"] = answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        result["code"], result["body"] = exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(scrub_tree(result, secret_values(spec))))
    return 0


def listening(port: int) -> list[str]:
    """The local addresses a TCP listener is bound to on `port`, from the kernel's tables."""
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, _, hexport = fields[1].partition(":")
            if fields[3] == "0A" and int(hexport, 16) == port:
                found.add(kernel_address(address, width))
    return sorted(found)


def kernel_address(text: str, width: int) -> str:
    """/proc/net/tcp's address (32-bit words in host byte order) as text."""
    raw = b"".join(
        int(text[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(text), 8)
    )
    return str(socket.inet_ntop(socket.AF_INET if width == 4 else socket.AF_INET6, raw))


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def speaks_tls(host: str, port: int) -> bool | None:
    """True if the port completes a TLS handshake, False if it is open but does not, None
    if nothing accepts a connection there."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=3) as raw:
            try:
                with context.wrap_socket(raw, server_hostname=host):
                    return True
            except (ssl.SSLError, OSError):
                return False
    except OSError:
        return None


def cmd_port(_spec: dict[str, Any], args: list[str]) -> int:
    """port HOST PORT [--no-tls]: {"open", "tls", "listening"} for a TCP port on this box
    (with --no-tls, only a connect: "tls" is None)."""
    host, port = args[0], int(args[1])
    if "--no-tls" in args[2:]:
        opened, tls = connects(host, port), None
    else:
        tls = speaks_tls(host, port)
        opened = tls is not None
    print(json.dumps({"open": opened, "tls": tls, "listening": listening(port)}))
    return 0


def parse_file(text: str, form: str, spec: dict[str, Any]) -> Any:
    """A file's text in one of the File probe's formats; secret env keys masked."""
    if form == "json":
        return json.loads(text)
    if form == "env":
        env = parse_env(text)
        return {k: MASK if is_secret_key(k, spec) else v for k, v in env.items()}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if form == "lines":
        return lines
    if form == "keyvalue":
        pairs = (line.split(None, 1) for line in lines if not line.startswith("#"))
        return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}
    return text


def cmd_file(spec: dict[str, Any], args: list[str]) -> int:
    """file PATH FORMAT: the file parsed, as JSON, secrets masked; exit 1 if unreadable."""
    try:
        with open(args[0], encoding="utf-8") as handle:
            parsed = parse_file(handle.read(), args[1], spec)
    except (OSError, ValueError) as exc:
        print(f"boxtool: {args[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(scrub_tree(parsed, secret_values(spec)), sort_keys=True))
    return 0


def whole_word(secret: str, text: str) -> bool:
    """`secret` occurs in `text` as a whole token: `pw` is not in use in `pw-OLD-rotated`."""
    edge = r"[A-Za-z0-9._~+/=-]"
    return re.search(f"(?<!{edge}){re.escape(secret)}(?!{edge})", text) is not None


def cmd_inuse(spec: dict[str, Any], _args: list[str]) -> int:
    """Whether each declared secret is present in its rendered file as a whole token,
    compared here: only yes/no leaves the box."""
    env = read_env(spec["env_file"])
    answers = []
    for use in spec.get("in_use", []):
        secret = env.get(use["secret"], "")
        try:
            with open(use["file"], encoding="utf-8", errors="replace") as handle:
                present: bool | None = bool(secret) and whole_word(secret, handle.read())
        except OSError:
            present = None
        answers.append({**use, "present": present, "secret_set": bool(secret)})
    print(json.dumps(answers, sort_keys=True))
    return 0


def cmd_render(spec: dict[str, Any], args: list[str]) -> int:
    """Write BASE plus dotted overrides (JSON on stdin) to OUT in the config's format;
    unknown paths are refused."""
    base, out = args[0], args[1]
    form = config_format(spec)
    with open(base, encoding="utf-8") as handle:
        original = handle.read()
    config = form.load(original)
    overrides: dict[str, Any] = json.load(sys.stdin)
    for path, value in overrides.items():
        parts = [path] if form is EnvFormat else path.split(".")
        parent = dotted(config, ".".join(parts[:-1])) if len(parts) > 1 else config
        if not isinstance(parent, dict) or parts[-1] not in parent:
            print(f"boxtool: config has no path {path}", file=sys.stderr)
            return 2
        parent[parts[-1]] = value
    with open(out + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(form.dump(config, original))
    os.replace(out + ".tmp", out)
    return 0


# --- the box lock: held by a detached process, so it outlives a dropped link --------------
#
# `lock` takes an flock on .gate/lock and hands it to a holder in its own session (stdio on
# /dev/null: a dying SSH session neither signals nor blocks it). The holder keeps the lock
# while the run may still act: one of its registered lifelines (a `lock` or `lifeline`
# process reading the runner's link) lives, or any boxtool command is in flight, or for
# GRACE seconds after that was last true (the window a runner has to reconnect and prove it
# with `lifeline`). A `release` line on a lifeline frees it at once. Pids are recorded with
# their kernel start time, so a reused pid never passes for a live one.

GATE = ".gate"
LOCK_PATH = os.path.join(GATE, "lock")
HOLDER_PATH = os.path.join(GATE, "holder.json")
JOURNAL_PATH = os.path.join(GATE, "journal.jsonl")
LIFELINES = os.path.join(GATE, "lifelines")
MUTEX_PATH = os.path.join(LIFELINES, ".mutex")
INFLIGHT = os.path.join(GATE, "inflight")
WATCHDOG_PATH = os.path.join(GATE, "watchdog.json")
STATE_PATH = os.path.join(GATE, "state.json")
LOCK_BUSY = 75
POLL_SECONDS = 0.2
RELEASE_WAIT = 10.0
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def proc_start(pid: int) -> str:
    """The kernel's start time of a live `pid` ('' if it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return ""
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return ""
    return fields[19]


def is_alive(pid: int, start: str) -> bool:
    return bool(start) and proc_start(pid) == start


def write_atomic(path: str, text: str) -> None:
    """Write via a dot-file and rename: a reader never sees half a record."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def register(directory: str, pid: int) -> str:
    """Record `pid` (with its start time) in `directory`; returns the record's path."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, str(pid))
    write_atomic(path, proc_start(pid))
    return path


def unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def any_alive(directory: str) -> bool:
    """Whether a pid recorded in `directory` still runs; records of dead ones are pruned."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    found = False
    for name in (n for n in names if n.isdigit()):
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="ascii") as handle:
                start = handle.read().strip()
        except OSError:
            continue
        if is_alive(int(name), start):
            found = True
        else:
            unlink_quietly(path)
    return found


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def run_dir(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return os.path.join(LIFELINES, run_id)


def journal(run_id: str, event: str, **details: Any) -> None:
    """One line in the on-box journal, as the runner's own journal lines are written."""
    record = {"run_id": run_id, "mode": "lock", "event": event, "at": time.time(), **details}
    with contextlib.suppress(OSError):
        fd = os.open(JOURNAL_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


@contextlib.contextmanager
def lock_state() -> Iterator[None]:
    """Serialise the holder's decision to let go with lifelines attaching to it."""
    os.makedirs(LIFELINES, mode=0o700, exist_ok=True)
    fd = os.open(MUTEX_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def holder_record(run_id: str) -> dict[str, Any]:
    return read_json(os.path.join(run_dir(run_id), "holder.json"))


def holder_missing(run_id: str) -> str:
    """Why `run_id` does not hold the lock any more ('' when it does). Call under lock_state."""
    record = holder_record(run_id)
    if not record:
        return f"run {run_id} holds no lock here (it lapsed or was released)"
    if not is_alive(int(record.get("pid", 0)), str(record.get("start", ""))):
        return f"the holder of run {run_id} (pid {record.get('pid')}) is gone"
    if os.path.exists(os.path.join(run_dir(run_id), "release")):
        return f"run {run_id} is releasing its lock"
    try:
        inode = os.stat(LOCK_PATH).st_ino
    except OSError:
        inode = -1
    if inode != record.get("inode"):
        return f"{LOCK_PATH} was replaced since run {run_id} locked it"
    return ""


def sweep_dead_runs() -> None:
    """Drop records left by holders that died (SIGKILL, reboot). Call under lock_state."""
    with contextlib.suppress(OSError):
        for name in (n for n in os.listdir(LIFELINES) if not n.startswith(".")):
            record = read_json(os.path.join(LIFELINES, name, "holder.json"))
            if not is_alive(int(record.get("pid", 0)), str(record.get("start", ""))):
                shutil.rmtree(os.path.join(LIFELINES, name), ignore_errors=True)


def detach(keep: tuple[int, ...]) -> None:
    """Leave the caller's session and stdio (its SSH channel): only `keep` stays open."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)
    for signum in DETACHED_IGNORES:
        signal.signal(signum, signal.SIG_IGN)


DETACHED_IGNORES = (signal.SIGHUP, signal.SIGPIPE, signal.SIGINT)
"""What a detached holder ignores (and, for its own wait, SIGUSR1 it blocks)."""


def default_signals() -> None:
    """In a child of the holder, before exec: the signals it ignores and blocks back to
    their defaults. An ignored signal survives exec, so a service the watchdog (re)starts
    would otherwise never see a SIGHUP reload or a SIGINT stop (a shell cannot even trap
    one ignored on entry), unlike the same service started by the runner."""
    for signum in DETACHED_IGNORES:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def run_lives(run_id: str) -> bool:
    """A lifeline of the run, or a gate command of this run (or of no known run), is still
    running on this box. Another run's commands do not count: runs refused at the lock
    still run their preflight here, and retried often enough they kept a dead run's lock,
    and its watchdog, waiting for ever."""
    mine = os.path.join(INFLIGHT, run_id)
    return any_alive(run_dir(run_id)) or any_alive(INFLIGHT) or any_alive(mine)


def inflight_dir() -> str:
    """Where this command is recorded while it runs: under its run's id when its spec names
    the run (gate/box.py: `.gate/spec-RUN_ID.json`), else in .gate/inflight/ itself."""
    name = os.path.basename(os.environ.get("GATE_SPEC", ""))
    run_id = name.removeprefix("spec-").removesuffix(".json")
    known = name == f"spec-{run_id}.json" and _RUN_ID.fullmatch(run_id)
    return os.path.join(INFLIGHT, run_id) if known else INFLIGHT


def any_in_flight() -> bool:
    """Whether any gate command, of any run, is still running on this box."""
    with contextlib.suppress(OSError):
        for name in os.listdir(INFLIGHT):
            if not name.isdigit() and any_alive(os.path.join(INFLIGHT, name)):
                return True
    return any_alive(INFLIGHT)


def serve(run_id: str, grace: float, watchdog: float) -> bool:
    """Hold until released (False) or until the run showed no life for `grace` s (True);
    while the run has left the box dirty with the watchdog armed, `watchdog` s instead."""
    released = os.path.join(run_dir(run_id), "release")
    last_life = time.monotonic()
    while True:
        signal.sigtimedwait([signal.SIGUSR1], POLL_SECONDS)  # SIGUSR1: a release, now
        if not os.path.exists(released) and run_lives(run_id):
            last_life = time.monotonic()
            continue
        patience = max(grace, watchdog) if watchdog and armed_plan(run_id) else grace
        if not os.path.exists(released) and time.monotonic() - last_life < patience:
            continue
        with lock_state():  # no lifeline can attach between this check and the retirement
            lapsed = not os.path.exists(released)
            if lapsed and run_lives(run_id):
                continue
            retire(run_id)
            return lapsed


def retire(run_id: str) -> None:
    """Remove the run's records: from here on `lifeline RUN_ID` answers lost."""
    if read_json(HOLDER_PATH).get("run_id") == run_id:
        unlink_quietly(HOLDER_PATH)
    shutil.rmtree(run_dir(run_id), ignore_errors=True)


def hold_lock(fd: int, ready: int, run_id: str, mode: str, grace: float, info: str) -> NoReturn:
    """The detached holder's whole life: record itself, report ready, serve, let go."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        detach(keep=(fd, ready))
        me = {"pid": os.getpid(), "start": proc_start(os.getpid()), "run_id": run_id}
        me.update(mode=mode, grace=grace, inode=os.fstat(fd).st_ino)
        write_atomic(os.path.join(run_dir(run_id), "holder.json"), json.dumps(me))
        if mode == "exclusive":
            shown = {**json.loads(info), "run_id": run_id, "grace": grace}
            shown.update(holder_pid=me["pid"], holder_start=me["start"])
            write_atomic(HOLDER_PATH, json.dumps(shown, sort_keys=True))
        else:  # no exclusive holder can exist beside a shared one: any record is stale
            unlink_quietly(HOLDER_PATH)
        os.write(ready, json.dumps(me).encode())
        os.close(ready)
        watchdog = float(json.loads(info).get("watchdog_s", 0)) if mode == "exclusive" else 0.0
        lapsed = serve(run_id, grace, watchdog)
        if lapsed and watchdog:
            watch(run_id, watchdog)
        fcntl.flock(fd, fcntl.LOCK_UN)
        if lapsed:
            journal(run_id, "lock-lapsed", grace=grace)
        code = 0
    finally:
        os._exit(code)


# The watchdog: the holder of a mutating run's lock puts the box back when the runner went
# silent (no lifeline, no command in flight) for the watchdog's limit with the box dirty.
# The runner armed it (.gate/watchdog.json) with the same baseline the engine restores to;
# the proof here is what stdlib can see: config bytes, secret fingerprints, status exit 0.
# Command output is never kept (it may hold a secret): exit codes only.


def armed_plan(run_id: str) -> dict[str, Any]:
    """The watchdog plan `run_id` left, if the box is still dirty from that run ({} if not)."""
    plan, state = read_json(WATCHDOG_PATH), read_json(STATE_PATH)
    mine = plan.get("run_id") == run_id and state.get("run_id") == run_id
    return plan if mine and state.get("state") == "dirty" else {}


def watch(run_id: str, silent: float) -> None:
    """Restore the baseline the silent run left, prove it, and journal what was done."""
    plan = armed_plan(run_id)
    if not plan:
        return
    write_atomic(HOLDER_PATH, json.dumps({"run_id": run_id, "watchdog": True}))
    journal(run_id, "watchdog-start", silent_s=silent)
    try:
        failures = mend_open_repairs(run_id, plan) + restore_baseline(plan)
        failures += proof_failures(plan)
    finally:
        unlink_quietly(HOLDER_PATH)
    if failures:
        journal(run_id, "watchdog-failed", failures=failures)
        state = {**read_json(STATE_PATH), "watchdog": "; ".join(failures)}
    else:
        journal(run_id, "watchdog-restored", config_sha256=plan["config_sha256"])
        state = {"state": "clean", "run_id": run_id, "phase": "watchdog-restored"}
    archive = kept_archive(run_id)
    if archive:  # the run's verified safety backup: named, never removed by the watchdog
        state["archive"] = archive
    write_atomic(STATE_PATH, json.dumps({**state, "since": time.time()}, sort_keys=True))


def kept_archive(run_id: str) -> str:
    """The safety backup `run_id` verified and never removed ('' if none), from the journal
    (the runner's `backup` and `backup-removed` events)."""
    archive = ""
    for event in journal_lines():
        if event.get("run_id") != run_id:
            continue
        if event.get("event") == "backup":
            archive = str(event.get("archive") or "")
        elif event.get("event") == "backup-removed" and event.get("archive") == archive:
            archive = ""
    return archive


def run_quietly(command: str, timeout: float) -> int:
    """`sh -c command` in the stack dir, output dropped, its whole group killed at the
    deadline; the exit code (124 at the deadline, 127 if it could not start)."""
    try:
        child = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=default_signals,  # safe: the holder runs no other thread
        )
    except OSError:
        return 127
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return 124


def mend_open_repairs(run_id: str, plan: dict[str, Any]) -> list[str]:
    """Run the repairs the run opened and never closed, newest first (as the engine does)."""
    events = [e for e in journal_lines() if e.get("run_id") == run_id]
    closed = {e.get("key") for e in events if e.get("event") == "repair-closed"}
    opened = [e for e in events if e.get("event") == "repair-open" and e.get("key") not in closed]
    failures = []
    for repair in reversed(opened):
        for step in repair.get("steps", []):
            code = repair_step([str(part) for part in step], plan)
            if code != 0:
                failures.append(f"repair {repair.get('what')}: {step[0]} exited {code}")
        journal(run_id, "watchdog-mended", key=repair.get("key"))
    return failures


def repair_step(step: list[str], plan: dict[str, Any]) -> int:
    """One step of a repair (gate/repairs.py Step): a control verb, boxtool, or a removal."""
    via, args = step[0], step[1:]
    if via == "control":
        return run_quietly(f"{plan['control']} {args[0]}", plan["apply_s"])
    if via == "remove":
        unlink_quietly(args[0])
        return 0 if not os.path.lexists(args[0]) else 1
    return in_process(plan["spec"], args)


def in_process(spec: dict[str, Any], args: list[str]) -> int:
    """A boxtool verb run here, its output dropped; a crash is its failure."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            return int(COMMANDS[args[0]](spec, args[1:]))
        except Exception:
            return 1


def restore_baseline(plan: dict[str, Any]) -> list[str]:
    """The baseline config back over the config file, applied, and the status green again."""
    try:
        shutil.copy2(plan["baseline_config"], plan["config"])
    except OSError as exc:
        return [f"the baseline config could not be put back: {exc.strerror}"]
    applied = run_quietly(f"{plan['control']} {plan['apply']}", plan["apply_s"])
    if applied != 0:
        return [f"apply exited {applied}"]
    return [] if status_green(plan) else [f"status not exit 0 within {plan['ready_s']:g}s"]


def status_green(plan: dict[str, Any]) -> bool:
    """Poll the status command (backing off to 2 s) until it exits 0 or the deadline passes."""
    deadline = time.monotonic() + float(plan["ready_s"])
    pause = 0.25
    while True:
        if run_quietly(f"{plan['control']} {plan['status']}", 30.0) == 0:
            return True
        if time.monotonic() + pause > deadline:
            return False
        time.sleep(pause)  # sleep-ok: backs off between polls of the stack's own status
        pause = min(pause * 2, 2.0)


def proof_failures(plan: dict[str, Any]) -> list[str]:
    """What the box shows that differs from the baseline: config bytes, secret fingerprints."""
    failures = []
    try:
        with open(plan["config"], "rb") as handle:
            if sha256(handle.read()) != plan["config_sha256"]:
                failures.append("config bytes differ from the baseline's")
    except OSError as exc:
        failures.append(f"config unreadable: {exc.strerror}")
    try:
        if fingerprints(plan["spec"]) != plan["fingerprints"]:
            failures.append("secret fingerprints differ from the baseline's")
    except (OSError, ValueError, KeyError) as exc:
        failures.append(f"secrets unreadable: {type(exc).__name__}")
    return failures


def journal_lines() -> list[dict[str, Any]]:
    """The on-box journal's records (lines that do not parse are skipped)."""
    records = []
    with contextlib.suppress(OSError), open(JOURNAL_PATH, encoding="utf-8") as handle:
        for line in handle:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records


def spawn_holder(fd: int, run_id: str, mode: str, grace: float, info: str) -> dict[str, Any]:
    """Fork the holder (twice: it is nobody's child here); its record once it is ready."""
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(ready_r)
            if os.fork() == 0:
                hold_lock(fd, ready_w, run_id, mode, grace, info)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.waitpid(child, 0)
    with os.fdopen(ready_r, "rb") as answer:
        data = answer.read()
    return dict(json.loads(data)) if data else {}


def follow(run_id: str, lifeline: str, holder: dict[str, Any]) -> int:
    """Be a lifeline: read stdin to EOF; a `release` line frees the lock before returning."""
    for signum in (signal.SIGHUP, signal.SIGINT):  # the runner answers signals, not us
        signal.signal(signum, signal.SIG_IGN)
    try:
        for line in sys.stdin.buffer:
            if line.strip() == b"release":
                return release(run_id, holder)
    finally:
        unlink_quietly(lifeline)
    return 0


def release(run_id: str, holder: dict[str, Any]) -> int:
    """Ask the holder to let go now and wait until it has: then the lock is free."""
    pid, start = int(holder["pid"]), str(holder["start"])
    with contextlib.suppress(OSError):
        write_atomic(os.path.join(run_dir(run_id), "release"), "")
    if is_alive(pid, start):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + RELEASE_WAIT
    while is_alive(pid, start) and time.monotonic() < deadline:
        time.sleep(0.01)  # sleep-ok: polls the holder pid, a real signal, to a deadline
    return 1 if is_alive(pid, start) else 0


def cmd_lock(_spec: dict[str, Any], args: list[str]) -> int:
    """lock RUN_ID shared|exclusive GRACE [HOLDER_JSON]: exit 75 at once if busy; else
    print `held` and stay the run's first lifeline until stdin closes."""
    run_id, mode, grace = args[0], args[1], float(args[2])
    info = args[3] if len(args) > 3 else "{}"
    if mode not in ("shared", "exclusive") or not grace > 0 or not _RUN_ID.fullmatch(run_id):
        print(f"boxtool: usage: lock RUN_ID shared|exclusive GRACE, got {args}", file=sys.stderr)
        return 2
    if not isinstance(json.loads(info), dict):
        print("boxtool: HOLDER_JSON must be a JSON object", file=sys.stderr)
        return 2
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    flag = fcntl.LOCK_EX if mode == "exclusive" else fcntl.LOCK_SH
    try:
        fcntl.flock(fd, flag | fcntl.LOCK_NB)
    except BlockingIOError:
        print("boxtool: the box lock is held by another run", file=sys.stderr)
        return LOCK_BUSY
    with lock_state():
        sweep_dead_runs()
        lifeline = register(run_dir(run_id), os.getpid())
        holder = spawn_holder(fd, run_id, mode, grace, info)
    os.close(fd)  # the holder's copy keeps the lock
    if not holder:
        unlink_quietly(lifeline)
        print("boxtool: the lock holder did not start", file=sys.stderr)
        return 1
    print("held", flush=True)
    return follow(run_id, lifeline, holder)


def cmd_lifeline(_spec: dict[str, Any], args: list[str]) -> int:
    """lifeline RUN_ID: after a reconnect, prove RUN_ID still holds the lock (`held`, then
    stay a lifeline until stdin closes) or say why not (`lost: ...`, exit 1)."""
    run_id = args[0]
    if not _RUN_ID.fullmatch(run_id):
        print(f"lost: not a run id: {run_id!r}", flush=True)
        return 1
    with lock_state():
        why = holder_missing(run_id)
        lifeline = "" if why else register(run_dir(run_id), os.getpid())
    if why:
        print(f"lost: {why}", flush=True)
        return 1
    holder = holder_record(run_id)
    journal(run_id, "lock-reproven", holder_pid=holder["pid"])
    print("held", flush=True)
    return follow(run_id, lifeline, holder)


def dispatch(name: str, spec: dict[str, Any], args: list[str]) -> int:
    """Run a command; while it runs it is in flight (.gate/inflight/), so no lock lapses."""
    if name in UNTRACKED:
        return COMMANDS[name](spec, args)
    record = ""
    with contextlib.suppress(OSError):
        record = register(inflight_dir(), os.getpid())
    try:
        return COMMANDS[name](spec, args)
    except Exception as exc:  # a box that answers garbage: one line for the runner, no trace
        print(f"boxtool {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if record:
            unlink_quietly(record)


def cmd_quiesce(_spec: dict[str, Any], args: list[str]) -> int:
    """Wait (up to TIMEOUT s) until no gate command is in flight here: after a reconnect, a
    command the dropped link left running (an apply) must end before the run acts again."""
    deadline = time.monotonic() + float(args[0])
    while any_in_flight():
        if time.monotonic() >= deadline:
            print("busy", flush=True)
            return 1
        time.sleep(POLL_SECONDS)  # sleep-ok: polls in-flight pids to a deadline
    print("quiet", flush=True)
    return 0


def file_facts(path: str) -> dict[str, Any]:
    """A file's kind and permission bits (the link's target's, for a symlink); never its
    content."""
    try:
        info = os.stat(path)
    except OSError:
        return {"exists": False}
    return {
        "exists": True,
        "regular": stat.S_ISREG(info.st_mode),
        "link": os.path.islink(path),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
    }


def tree_size(path: str) -> int | None:
    """Bytes in a file, or in every file under a dir (links not followed); None if absent."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on `path`'s filesystem."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def newest_archive(directory: str) -> dict[str, Any] | None:
    """The newest regular file (not a link, not a dot-file) directly in `directory`."""
    newest: tuple[float, str, int] | None = None
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            if newest is None or info.st_mtime > newest[0]:
                newest = (info.st_mtime, entry.name, info.st_size)
    return None if newest is None else {"name": newest[1], "size": newest[2]}


def backup_dir_facts(path: str) -> dict[str, Any]:
    """Whether the backup dir is a dir this user may write into, its newest archive, and
    the free space on its filesystem."""
    if not os.path.exists(path):
        return {"path": path, "kind": "missing"}
    if not os.path.isdir(path):
        return {"path": path, "kind": "not a directory"}
    return {
        "path": path,
        "kind": "dir",
        "writable": os.access(path, os.W_OK | os.X_OK),
        "newest": newest_archive(path),
        "free": free_bytes(path),
    }


def cmd_fitness(spec: dict[str, Any], args: list[str]) -> int:
    """fitness '{"backup_dir": D|null, "data_paths": [...], "tools": [...]}': what --readiness
    judges, read here and changing nothing: the mode of the env file and of every secret
    file, the backup dir (writable, newest archive, free space), the sizes of the config,
    the env file and the data paths, free space in the stack dir, and which tools are on
    PATH. Only kinds, modes, sizes, names and booleans are printed, never a file's bytes."""
    wanted = json.loads(args[0]) if args else {}
    secret_paths = [spec["env_file"], *secret_files(spec)]
    sized = [spec["config_file"], spec["env_file"], *wanted.get("data_paths", [])]
    facts: dict[str, Any] = {
        "files": {path: file_facts(path) for path in secret_paths},
        "sizes": {path: tree_size(path) for path in sized},
        "stack_free": free_bytes("."),
        "backup_dir": backup_dir_facts(wanted["backup_dir"]) if wanted.get("backup_dir") else None,
        "tools": {tool: shutil.which(tool) is not None for tool in wanted.get("tools", [])},
    }
    print(json.dumps(scrub_tree(facts, secret_values(spec)), sort_keys=True))
    return 0


def within(path: str, root: str) -> bool:
    """Whether the real path `path` lies under the real path of `root` (links resolved)."""
    base = os.path.realpath(root)
    return os.path.commonpath([path, base]) == base and path != base


def archive_members(path: str) -> tuple[str, list[str]]:
    """(format, the names of its regular-file members) of a tar (any compression) or zip;
    ValueError if it is neither. A leading "./" is dropped; directories are not listed."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
        return "zip", [n.removeprefix("./") for n in names]
    try:
        with tarfile.open(path, "r:*") as archive:
            names = [m.name for m in archive.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ValueError(f"not a readable tar or zip archive ({type(exc).__name__})") from None
    return "tar", [n.removeprefix("./") for n in names]


def cmd_archive(spec: dict[str, Any], args: list[str]) -> int:
    """archive PATH '{"roots": [DIR, ...], "holds": [NAME, ...]}': whether PATH (relative to
    the stack dir, or absolute) is a regular file, not a link, inside one of the roots (real
    paths), and which of the names its listing lacks as a regular-file member (a name held
    as a dir counts when any file lies under it). Only kinds, names and counts are printed;
    no member is extracted or read. Changes nothing."""
    path, wanted = args[0], json.loads(args[1]) if len(args) > 1 else {}
    facts: dict[str, Any] = {"path": path, "real": os.path.realpath(path)}
    try:
        info = os.lstat(path)
    except OSError as exc:
        facts["kind"] = "missing" if isinstance(exc, FileNotFoundError) else type(exc).__name__
        print(json.dumps(scrub_tree(facts, secret_values(spec)), sort_keys=True))
        return 0
    kind = "file" if stat.S_ISREG(info.st_mode) else "other"
    kind = "link" if stat.S_ISLNK(info.st_mode) else kind
    facts.update(kind=kind, size=info.st_size)
    roots = [str(r) for r in wanted.get("roots", ["."])]
    facts["inside"] = [r for r in roots if within(facts["real"], r)]
    if kind == "file":
        try:
            form, names = archive_members(path)
        except (ValueError, OSError) as exc:
            facts["error"] = str(exc)
        else:
            have = set(names)
            facts.update(format=form, members=len(names))
            facts["lacks"] = [
                n
                for n in wanted.get("holds", [])
                if n not in have and not any(m.startswith(n.rstrip("/") + "/") for m in have)
            ]
    print(json.dumps(scrub_tree(facts, secret_values(spec)), sort_keys=True))
    return 0


# --- auth-fail-closed: the env file set aside, one key blanked, the exact bytes put back --

ASIDE_GLOB = os.path.join(".gate", "aside-*")
"""Where copies of the env file are set aside: inside .gate/ (mode 0700), each file 0600."""


def is_aside_path(path: str) -> bool:
    """An aside copy's path: a file named aside-* directly in .gate/ (real paths)."""
    real = os.path.realpath(path)
    return os.path.dirname(real) == os.path.realpath(".gate") and fnmatch.fnmatchcase(
        os.path.basename(real), "aside-*"
    )


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return sha256(handle.read())


def blank_bytes(data: bytes, key: str) -> tuple[bytes, int]:
    """The env file's bytes with the value of every `KEY=...` line cut (`KEY=` stays), every
    other byte kept (comments, order, line endings); and how many lines were blanked."""
    lines, count = data.split(b"\n"), 0
    for index, line in enumerate(lines):
        body = line[:-1] if line.endswith(b"\r") else line
        name, equals, _value = body.partition(b"=")
        bare = name.strip().removeprefix(b"export ").strip()
        if equals and not body.lstrip().startswith(b"#") and bare == key.encode():
            lines[index] = name + b"=" + line[len(body) :]
            count += 1
    return b"\n".join(lines), count


def replace_keeping(path: str, data: bytes, like: os.stat_result) -> None:
    """Replace `path` with `data` through a 0600 temp file beside it, given `like`'s mode and
    owner before it takes the name (OSError, nothing replaced, when the owner cannot be
    kept)."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.gate-tmp")
    unlink_quietly(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if (like.st_uid, like.st_gid) != (os.geteuid(), os.getegid()):
            os.chown(tmp, like.st_uid, like.st_gid)
        os.chmod(tmp, stat.S_IMODE(like.st_mode))
        os.replace(tmp, path)
    except OSError:
        unlink_quietly(tmp)
        raise


def refuse(message: str, code: int = 2) -> int:
    print(f"boxtool: {message}", file=sys.stderr)
    return code


def regular(path: str) -> bool:
    return os.path.isfile(path) and not os.path.islink(path)


def cmd_aside(_spec: dict[str, Any], args: list[str]) -> int:
    """aside ENV_FILE ASIDE: copy the env file's exact bytes to ASIDE, a new file named
    aside-* in .gate/, mode 0600; print only its sha256 (after reading the copy back)."""
    source, dest = args[0], args[1]
    if not is_aside_path(dest):
        return refuse(f"aside: {dest} is not .gate/aside-*")
    if not regular(source):
        return refuse(f"aside: {source} is not a regular file")
    with open(source, "rb") as handle:
        data = handle.read()
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return refuse(f"aside: {dest} exists already (nothing overwritten)", 1)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    copied = file_sha256(dest)
    if copied != sha256(data):
        return refuse(f"aside: the copy reads back as sha256 {copied}, not {sha256(data)}", 1)
    print(copied)
    return 0


def cmd_blank(_spec: dict[str, Any], args: list[str]) -> int:
    """blank ENV_FILE KEY: the env file rewritten with KEY's value empty, every other byte,
    its mode and its owner kept; refused (nothing written) when KEY is not in it. Prints
    the key and a count, never a value."""
    path, key = args[0], args[1]
    if not regular(path):
        return refuse(f"blank: {path} is not a regular file")
    info = os.stat(path)
    with open(path, "rb") as handle:
        data = handle.read()
    blanked, count = blank_bytes(data, key)
    if not count:
        return refuse(f"blank: {key} is not set in {path}: nothing blanked", 1)
    try:
        replace_keeping(path, blanked, info)
    except OSError as exc:
        return refuse(f"blank: {path} not rewritten ({type(exc).__name__}: {exc.strerror})", 1)
    print(f"blanked {key} in {path} ({count} line{'s' if count > 1 else ''})")
    return 0


def cmd_putback(_spec: dict[str, Any], args: list[str]) -> int:
    """putback ASIDE ENV_FILE [SHA256]: the aside copy's exact bytes back over the env file
    (its current mode and owner kept); print both sha256s; remove ASIDE only when they
    match (exit 1 otherwise). SHA256, the env file's hash before the copy was taken, makes
    it safe to repeat: no ASIDE and the env file already hashing to it is success."""
    aside, path = args[0], args[1]
    expected = args[2] if len(args) > 2 else ""
    if not is_aside_path(aside):
        return refuse(f"putback: {aside} is not .gate/aside-*")
    if not os.path.exists(aside):
        now = file_sha256(path) if regular(path) else "absent"
        print(f"{path} sha256 {now}")
        if expected and now == expected:
            print(f"no aside copy: {path} already holds the bytes set aside")
            return 0
        return refuse(f"putback: no aside copy at {aside}, and {path} is not the original", 1)
    with open(aside, "rb") as handle:
        data = handle.read()
    saved = sha256(data)
    print(f"{aside} sha256 {saved}")
    if expected and saved != expected:
        return refuse(f"putback: {aside} is not the copy set aside (sha256 {expected})", 1)
    try:
        replace_keeping(path, data, os.stat(path) if regular(path) else os.stat(aside))
    except OSError as exc:
        return refuse(f"putback: {path} not rewritten ({type(exc).__name__}: {exc.strerror})", 1)
    now = file_sha256(path)
    print(f"{path} sha256 {now}")
    if now != saved:
        return refuse(f"putback: {path} differs from the aside copy (kept at {aside})", 1)
    os.unlink(aside)
    return 0


BATCHABLE = {"exec", "http", "port", "file", "config", "fingerprint", "inuse"}
"""Reads that do not depend on each other: `batch` runs them in one process."""


def cmd_batch(spec: dict[str, Any], _args: list[str]) -> int:
    """batch < [[VERB, ARG...], ...]: run independent reads in this one process (one python
    start and one round trip instead of one each); print [{exit, stdout, stderr, seconds}]."""
    try:
        calls = json.load(sys.stdin)
    except ValueError as exc:
        return refuse(f"batch: stdin is not JSON: {exc}")
    if not isinstance(calls, list) or not all(
        isinstance(c, list) and c and c[0] in BATCHABLE and all(isinstance(a, str) for a in c)
        for c in calls
    ):
        return refuse(f"batch: expected a list of [verb, args...] with verbs {sorted(BATCHABLE)}")
    print(json.dumps([batched(spec, call) for call in calls]))
    return 0


def batched(spec: dict[str, Any], call: list[str]) -> dict[str, Any]:
    """One read as its own run would have answered it: exit code and both streams."""
    out, err = io.StringIO(), io.StringIO()
    began = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = COMMANDS[call[0]](spec, call[1:])
        except Exception as exc:  # one read's crash is its own answer, not the batch's
            print(f"boxtool {call[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
    seconds = round(time.monotonic() - began, 4)
    return {"exit": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "seconds": seconds}


COMMANDS = {
    "batch": cmd_batch,
    "fingerprint": cmd_fingerprint,
    "exec": cmd_exec,
    "scrub": cmd_scrub,
    "config": cmd_config,
    "http": cmd_http,
    "port": cmd_port,
    "file": cmd_file,
    "inuse": cmd_inuse,
    "render": cmd_render,
    "fitness": cmd_fitness,
    "archive": cmd_archive,
    "aside": cmd_aside,
    "blank": cmd_blank,
    "putback": cmd_putback,
    "lock": cmd_lock,
    "lifeline": cmd_lifeline,
    "quiesce": cmd_quiesce,
}
UNTRACKED = {"lock", "lifeline", "quiesce"}  # lifelines and the wait, not commands in flight


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"boxtool: usage: {' | '.join(COMMANDS)}", file=sys.stderr)
        return 2
    spec = {} if argv[0] in UNTRACKED else load_spec()  # the lock needs no spec
    return dispatch(argv[0], spec, argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
