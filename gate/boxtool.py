"""The gate's helper on the box: the one place plaintext secrets are touched.

The gate uploads this file (stdlib only, any python3) to `<stack>/.gate/boxtool.py` and
runs it for everything that would otherwise carry a secret across the wire: it hashes
secrets into fingerprints, scrubs secret values out of command output, reads the API token
from .env itself, and renders configs from the on-box baseline. Its non-secret inputs
(key globs, file globs, config paths) come from `.gate/spec.json`.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

MASK = "***"
SPEC_PATH = os.path.join(".gate", "spec.json")
_USERINFO = re.compile(r"(://[^/\s:@]*:)[^@\s/]+@")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"']+")


def load_spec() -> dict[str, Any]:
    with open(SPEC_PATH, encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)
    return spec


def read_env(path: str) -> dict[str, str]:
    """KEY=value lines of a dotenv file; comments and blanks skipped."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return values
    for line in lines:
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


def read_config(spec: dict[str, Any]) -> Any:
    with open(spec["config_file"], encoding="utf-8") as handle:
        return json.load(handle)


def secret_files(spec: dict[str, Any]) -> list[str]:
    found: set[str] = set()
    for pattern in spec["files"]:
        found.update(p for p in glob.glob(pattern) if os.path.isfile(p))
    return sorted(found)


def secret_values(spec: dict[str, Any]) -> list[str]:
    """Every secret value on this box, longest first, so substrings are masked last."""
    env = read_env(spec["env_file"])
    values = {v for k, v in env.items() if is_secret_key(k, spec)}
    try:
        config = read_config(spec)
    except (OSError, ValueError):
        config = {}
    values.update(str(dotted(config, path) or "") for path in spec["config_paths"])
    for path in secret_files(spec):
        with open(path, encoding="utf-8", errors="replace") as handle:
            values.update(line.strip() for line in handle if len(line.strip()) >= 8)
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def scrub(text: str, values: list[str]) -> str:
    for value in values:
        text = text.replace(value, MASK)
    text = _USERINFO.sub(r"\1" + MASK + "@", text)
    return _BEARER.sub(r"\1" + MASK, text)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cmd_fingerprint(spec: dict[str, Any], _args: list[str]) -> int:
    """Print secret fingerprints per category; plaintext never leaves this process."""
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
    print(json.dumps(prints, sort_keys=True))
    return 0


def cmd_exec(spec: dict[str, Any], args: list[str]) -> int:
    """Run `sh -c CMD` with a timeout, scrub its output, exit with its code (124: timeout)."""
    timeout, command = float(args[0]), args[1]
    child = subprocess.Popen(
        ["sh", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=timeout)
        code = child.returncode
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        err += f"\nboxtool: timed out after {timeout:g}s\n".encode()
        code = 124
    values = secret_values(spec)
    sys.stdout.write(scrub(out.decode("utf-8", "replace"), values))
    sys.stderr.write(scrub(err.decode("utf-8", "replace"), values))
    return code


def cmd_scrub(spec: dict[str, Any], _args: list[str]) -> int:
    sys.stdout.write(scrub(sys.stdin.read(), secret_values(spec)))
    return 0


def cmd_env(spec: dict[str, Any], args: list[str]) -> int:
    """Print the named .env keys (or --all) as JSON; a secret key's value is masked, never sent."""
    env = read_env(spec["env_file"])
    keys = sorted(env) if args == ["--all"] else args
    chosen = {k: (MASK if is_secret_key(k, spec) else env.get(k)) for k in keys}
    print(scrub(json.dumps(chosen, sort_keys=True), secret_values(spec)))
    return 0


def cmd_config(spec: dict[str, Any], _args: list[str]) -> int:
    """Print config.json with every secret path masked."""
    config = read_config(spec)
    for path in spec["config_paths"]:
        parts = path.split(".")
        parent = dotted(config, ".".join(parts[:-1])) if len(parts) > 1 else config
        if isinstance(parent, dict) and parent.get(parts[-1]) not in (None, ""):
            parent[parts[-1]] = MASK
    print(scrub(json.dumps(config, indent=2, sort_keys=True), secret_values(spec)))
    return 0


def cmd_api(spec: dict[str, Any], args: list[str]) -> int:
    """GET the API with the bearer token read from .env here; print {code, body, error}."""
    url, token_key = args[0], args[1]
    token = read_env(spec["env_file"]).get(token_key, "")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stack's own self-signed certificate on loopback
    result: dict[str, Any] = {"code": None, "body": "", "error": ""}
    try:
        with urllib.request.urlopen(request, timeout=float(args[2]), context=context) as answer:
            result["code"], result["body"] = answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        result["code"], result["body"] = exc.code, exc.read().decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    values = secret_values(spec)
    print(json.dumps({k: scrub(v, values) if isinstance(v, str) else v for k, v in result.items()}))
    return 0


def cmd_scheme(_spec: dict[str, Any], args: list[str]) -> int:
    """Print which scheme the port really speaks: https, http, or none."""
    host, port = args[0], int(args[1])
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=3) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            print("https")
            return 0
    except ssl.SSLError:
        pass
    except OSError:
        print("none")
        return 0
    try:
        with socket.create_connection((host, port), timeout=3) as raw:
            raw.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            print("http" if raw.recv(5).startswith(b"HTTP/") else "none")
    except OSError:
        print("none")
    return 0


def cmd_render(spec: dict[str, Any], args: list[str]) -> int:
    """Write BASE plus dotted overrides (JSON on stdin) to OUT; unknown paths are refused."""
    base, out = args[0], args[1]
    with open(base, encoding="utf-8") as handle:
        config = json.load(handle)
    overrides: dict[str, Any] = json.load(sys.stdin)
    for path, value in overrides.items():
        parts = path.split(".")
        parent = dotted(config, ".".join(parts[:-1])) if len(parts) > 1 else config
        if not isinstance(parent, dict) or parts[-1] not in parent:
            print(f"boxtool: config has no path {path}", file=sys.stderr)
            return 2
        parent[parts[-1]] = value
    with open(out + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
        handle.write("\n")
    os.replace(out + ".tmp", out)
    return 0


COMMANDS = {
    "fingerprint": cmd_fingerprint,
    "exec": cmd_exec,
    "scrub": cmd_scrub,
    "env": cmd_env,
    "config": cmd_config,
    "api": cmd_api,
    "scheme": cmd_scheme,
    "render": cmd_render,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"boxtool: usage: {' | '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](load_spec(), argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
