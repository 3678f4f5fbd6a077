"""Running the contract's probes on the box into `Reading`s that the check battery judges.

Every probe runs through boxtool on the box, so a secret it needs (an auth header, a
command's environment) is read there and its output is scrubbed there. A read never
raises, not for a bad answer and not for a link that is gone: it says whether the gate
could not ask or the box answered badly, so the checks read before a drop keep their
verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath

from gate.box import Box
from gate.checks import Reading
from gate.contract import Config
from gate.errors import Unreachable
from gate.probes import (
    STATUS,
    CaFile,
    Command,
    File,
    Http,
    InsecureLoopback,
    Port,
    Probe,
    Status,
    at,
)
from gate.result import Result

HTTP_TIMEOUT = 10.0
STATUS_TIMEOUT = 30.0
"""How long the stack's status command may take (its blocking form: this past its wait)."""
INSECURE_NOTE = "TLS not verified (declared InsecureLoopback)"


def read_status(box: Box) -> tuple[Reading[int], Reading[Any]]:
    """The status command's exit code and its JSON (an object or a list), in one call."""
    command = box.contract.status.command
    return status_readings(_asked(lambda: box.control(command, timeout=30)), command)


def status_readings(
    result: Result | Reading[Any], command: str
) -> tuple[Reading[int], Reading[Any]]:
    if isinstance(result, Reading):
        return result, result
    code: Reading[int] = Reading(value=result.exit_code)
    return code, _json(result.stdout or result.stderr, f"`{command}` printed no JSON")


def _asked(run: Any) -> Result | Reading[Any]:
    """The command's result, or a could-not-ask reading."""
    try:
        result: Result = run()
    except Unreachable as exc:  # the link dropped and could not be re-established
        return Reading(lost=exc)
    return Reading(lost=result.lost) if result.lost is not None else result


def _json(text: str, garbage: str) -> Reading[Any]:
    """The text's JSON object or list, or the error `garbage` (what the source did wrong)."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except RepeatedKey as exc:
        return Reading(error=f"{garbage}: an object repeats the key {exc.args[0]!r}")
    except ValueError:
        return Reading(error=f"{garbage}: {text.strip()[:120]!r}")
    if not isinstance(data, dict | list):
        return Reading(error=f"{garbage}: {type(data).__name__} {text.strip()[:60]!r}")
    return Reading(value=data)


class RepeatedKey(ValueError):
    """A JSON object names one key twice: the parser would keep only the last one."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise RepeatedKey(key)
        found[key] = value
    return found


def read_probe(box: Box, probe: Probe, cfg: Config) -> Reading[Any]:
    """One probe's answer as JSON-shaped data, or why there is none."""
    if isinstance(probe, Status):
        return read_status(box)[1]
    if isinstance(probe, Http):
        return read_http(box, probe, cfg)
    if isinstance(probe, Command):
        return read_command(box, probe, cfg)
    return read_json_tool(box, *tool_args(probe, cfg))


def tool_args(probe: Port | File, cfg: Config) -> list[str]:
    """boxtool's arguments for a probe it answers itself."""
    if isinstance(probe, Port):
        flags = [] if probe.handshake else ["--no-tls"]
        return ["port", probe.host, str(at(probe.port, cfg)), *flags]
    return ["file", at(probe.path, cfg), probe.format]


def read_json_tool(box: Box, *args: str) -> Reading[Any]:
    """A boxtool JSON answer as a reading."""
    try:
        return Reading(value=box.tool_json(*args))
    except Unreachable as exc:
        return Reading(lost=exc)
    except ValueError as exc:
        return Reading(error=str(exc))


@dataclass(frozen=True)
class Batch:
    """The status command and some probes, read together: the status exit code, each
    probe's reading by name, and the seconds each read took on the box."""

    status_code: Reading[int]
    readings: dict[str, Reading[Any]]
    seconds: dict[str, float]


def read_batch(
    box: Box,
    probes: Sequence[Probe],
    cfg: Config,
    *,
    status: bool = True,
    block_s: float | None = None,
) -> Batch:
    """The status command (unless `status=False`) and `probes`, read in one boxtool call
    (they do not depend on each other), each reading as read_probe would give it alone.

    `block_s`: ask the status command's blocking form (Status.wait) for up to that long,
    first: the probes are read once it has answered."""
    others = [p for p in probes if not isinstance(p, Status)]
    command, limit = box.contract.status.command, STATUS_TIMEOUT
    if block_s is not None:
        command, limit = box.contract.status.waiting(block_s), block_s + STATUS_TIMEOUT
    calls = [["exec", f"{limit:g}", f"{box.control_command} {command}"]] if status else []
    calls += [batch_args(box, probe, cfg) for probe in others]
    if not calls:
        return Batch(Reading(error="the status command was not asked"), {}, {})
    try:
        results: list[Result | Reading[Any]] = [*box.batch(calls, timeout=limit)]
    except Unreachable as exc:
        results = [Reading(lost=exc)] * len(calls)
    code: Reading[int] = Reading(error="the status command was not asked")
    readings: dict[str, Reading[Any]] = {}
    if status:
        code, readings[STATUS] = status_readings(_asked(lambda: results[0]), command)
    answered = zip(others, calls[int(status) :], results[int(status) :], strict=True)
    for probe, call, result in answered:
        readings[probe.name] = reading_of(probe, cfg, call[0], _asked(lambda r=result: r))
    names = [STATUS] * status + [p.name for p in others]
    seconds = {n: r.duration for n, r in zip(names, results, strict=True) if isinstance(r, Result)}
    return Batch(code, readings, seconds)


def batch_args(box: Box, probe: Probe, cfg: Config) -> list[str]:
    """boxtool's arguments that read `probe` inside a batch."""
    if isinstance(probe, Http):
        return ["http", *http_args(probe, cfg)]
    if isinstance(probe, Command):
        return ["exec", "30", command_text(box, probe, cfg), *env_pairs(probe)]
    assert isinstance(probe, Port | File)
    return tool_args(probe, cfg)


def reading_of(probe: Probe, cfg: Config, verb: str, result: Result | Reading[Any]) -> Reading[Any]:
    """What a batched read's result means for its probe (the same as a read alone)."""
    if isinstance(result, Reading):
        return result
    if isinstance(probe, Command):
        return command_reading(probe, result)
    answer = tool_reading(result, verb)
    return http_reading(probe, cfg, answer) if isinstance(probe, Http) else answer


def tool_reading(result: Result, verb: str) -> Reading[Any]:
    """boxtool's JSON answer as a reading, judged as Box.tool_json judges it."""
    if not result.ok:
        return Reading(error=f"boxtool {verb} exited {result.exit_code}: {result.stderr[-200:]}")
    try:
        return Reading(value=json.loads(result.stdout))
    except ValueError as exc:
        return Reading(error=str(exc))


def http_args(probe: Http, cfg: Config, credential: str = "right") -> list[str]:
    """boxtool http's arguments: the URL, and the header to read from the env file there
    (credential "right"), a wrong one made up on the box ("wrong"), or none ("none")."""
    args = [at(probe.url, cfg), str(HTTP_TIMEOUT)]
    if probe.auth is not None and credential != "none":
        auth = probe.auth
        args += ["--header", auth.name, "--template", auth.template, "--env-key", auth.env_key]
        args += ["--wrong"] if credential == "wrong" else []
    tls = at(probe.tls, cfg)
    if isinstance(tls, CaFile):
        args += ["--ca", tls.path]
    elif isinstance(tls, InsecureLoopback):
        args += ["--insecure"]
    return args


def fetch(box: Box, probe: Http, cfg: Config, credential: str = "right") -> Reading[Any]:
    """boxtool http's raw answer: {code, body, error}."""
    return read_json_tool(box, "http", *http_args(probe, cfg, credential))


def read_http(box: Box, probe: Http, cfg: Config) -> Reading[Any]:
    """The endpoint's JSON body; anything but HTTP 200 with JSON is a bad answer."""
    return http_reading(probe, cfg, fetch(box, probe, cfg))


def http_reading(probe: Http, cfg: Config, answer: Reading[Any]) -> Reading[Any]:
    if not answer.usable:
        return answer
    reply: Mapping[str, Any] = answer.value or {}
    note = INSECURE_NOTE if isinstance(at(probe.tls, cfg), InsecureLoopback) else ""
    if reply.get("error"):
        return Reading(error=f"{probe.name} did not answer: {reply['error']}")
    if reply.get("code") != 200:
        return Reading(error=f"{probe.name} answered HTTP {reply.get('code')}")
    body = _json(str(reply.get("body", "")), f"{probe.name} answered something that is not JSON")
    return Reading(value=body.value, error=body.error, note=note)


def read_command(box: Box, probe: Command, cfg: Config) -> Reading[Any]:
    """The command's output: JSON, one text, or its lines; a non-zero exit is a bad answer."""
    command = command_text(box, probe, cfg)
    result = _asked(lambda: box.run(command, timeout=30, env_from=env_pairs(probe)))
    return result if isinstance(result, Reading) else command_reading(probe, result)


def command_text(box: Box, probe: Command, cfg: Config) -> str:
    return at(probe.command, cfg).replace("{control}", box.control_command)


def env_pairs(probe: Command) -> list[str]:
    """VAR=ENV_KEY: boxtool exec sets each VAR from the env file on the box."""
    return [f"{variable}={key}" for variable, key in sorted(probe.env.items())]


def command_reading(probe: Command, result: Result) -> Reading[Any]:
    if not result.ok:
        said = (result.stderr or result.stdout).strip()[-160:]
        return Reading(error=f"{probe.name}: exit {result.exit_code}: {said}")
    if probe.output == "json":
        return _json(result.stdout, f"{probe.name} printed no JSON")
    if probe.output == "lines":
        return Reading(value=[ln.strip() for ln in result.stdout.splitlines() if ln.strip()])
    return Reading(value=result.stdout.strip())


def read_config(box: Box) -> Reading[Config]:
    """The config (any format, as JSON) with its secret paths masked on the box."""
    return read_json_tool(box, "config")


def read_fingerprints(box: Box) -> Reading[Mapping[str, Mapping[str, str]]]:
    return read_json_tool(box, "fingerprint")


def read_in_use(box: Box) -> Reading[list[dict[str, Any]]]:
    """For each declared secret use: is the secret present in its file (compared on the box)."""
    return read_json_tool(box, "inuse")


def counter(reading: Reading[Any], expression: str) -> float | None:
    """A numeric counter from a probe's reading, or None."""
    if not reading.usable:
        return None
    value = jmespath.search(expression, reading.value)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
