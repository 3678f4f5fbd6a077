"""Reading the box's live state into `Reading`s that the check battery judges.

Each function asks one raw source (the stack's status command, the dashboard API on the
box, the rendered env file, the port itself) and never raises, not for a bad answer and
not for a link that is gone: it says whether the gate could not ask or the box answered
badly, so the checks read before a drop keep their verdicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import jmespath

from gate.box import Box
from gate.checks import Reading
from gate.contract import Config
from gate.errors import Unreachable


def read_status(box: Box) -> tuple[Reading[int], Reading[Mapping[str, Any]]]:
    """The status command's exit code and its JSON, read in one call."""
    try:
        result = box.control(box.contract.commands.status_json, timeout=30)
    except Unreachable as exc:  # the link dropped and could not be re-established
        lost: Reading[Any] = Reading(lost=exc)
        return lost, lost
    if result.lost is not None:
        lost = Reading(lost=result.lost)
        return lost, lost
    code: Reading[int] = Reading(value=result.exit_code)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        shown = result.stdout.strip()[:120] or result.stderr.strip()[:120]
        return code, Reading(error=f"status --json printed no JSON: {shown!r}")
    if not isinstance(data, Mapping):
        return code, Reading(error="status --json is not a JSON object")
    return code, Reading(value=data)


def read_json_tool(box: Box, *args: str) -> Reading[Any]:
    """A boxtool JSON answer as a reading."""
    try:
        return Reading(value=box.tool_json(*args))
    except Unreachable as exc:
        return Reading(lost=exc)
    except ValueError as exc:
        return Reading(error=str(exc))


def read_config(box: Box) -> Reading[Config]:
    """config.json with its secret paths masked on the box."""
    return read_json_tool(box, "config")


def read_fingerprints(box: Box) -> Reading[Mapping[str, Mapping[str, str]]]:
    return read_json_tool(box, "fingerprint")


def read_env(box: Box, keys: list[str]) -> Reading[Mapping[str, Any]]:
    return read_json_tool(box, "env", *keys)


def read_api(box: Box, cfg: Config, timeout: float = 10.0) -> Reading[Any]:
    """The dashboard API, fetched on the box with the token read on the box."""
    dashboard = box.contract.dashboard
    answer = read_json_tool(box, "api", dashboard.url(cfg), dashboard.token_env_key, str(timeout))
    if not answer.usable:
        return answer
    reply: Mapping[str, Any] = answer.value or {}
    if reply.get("error"):
        return Reading(error=f"dashboard did not answer: {reply['error']}")
    if reply.get("code") != 200:
        return Reading(error=f"dashboard answered HTTP {reply.get('code')}")
    try:
        return Reading(value=json.loads(reply.get("body", "")))
    except ValueError:
        body = str(reply.get("body", ""))[:80]
        return Reading(error=f"dashboard answered something that is not JSON: {body!r}")


def read_scheme(box: Box, cfg: Config) -> Reading[str]:
    """Which scheme the dashboard port really speaks."""
    url = urlsplit(box.contract.dashboard.url(cfg))
    try:
        result = box.tool("scheme", url.hostname or "127.0.0.1", str(url.port or 443))
    except Unreachable as exc:
        return Reading(lost=exc)
    if result.lost is not None:
        return Reading(lost=result.lost)
    return Reading(value=result.stdout.strip())


def counter(api: Reading[Any], expression: str) -> float | None:
    """A numeric counter from an API reading, or None."""
    if not api.usable:
        return None
    value = jmespath.search(expression, api.value)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
