"""What the gate needs from a stack, as a small typed API that a stack's matrix.py fills in.

Nothing in gate/ names a service, a key or a file of any one stack: those live here, in
values the user declares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath

from gate.errors import UsageError

Config = Mapping[str, Any]


def lookup(config: Config, dotted: str) -> Any:
    """The value at a dotted path; KeyError if any part is absent."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


@dataclass(frozen=True)
class Context:
    """What an expectation may depend on: the config under test and the run's options."""

    config: Config
    workers: int


Ref = Callable[[Context], Any]


def config(dotted: str) -> Ref:
    """A reference to a config value, resolved when the check runs."""

    def resolve(ctx: Context) -> Any:
        return lookup(ctx.config, dotted)

    resolve.__doc__ = f"config {dotted}"
    return resolve


def option(name: str) -> Ref:
    """A reference to a run option (e.g. `workers`)."""

    def resolve(ctx: Context) -> Any:
        return getattr(ctx, name)

    resolve.__doc__ = f"--{name}"
    return resolve


def _resolve(value: Any, ctx: Context) -> Any:
    return value(ctx) if callable(value) else value


def _same(observed: Any, expected: Any) -> bool:
    """Exact equality: `true` is not `1`, `false` is not missing, "8000" is not 8000."""
    return type(observed) is type(expected) and observed == expected


@dataclass(frozen=True)
class Equals:
    """The observed value is exactly the expected one (type included)."""

    value: Any

    def expected(self, ctx: Context) -> Any:
        return _resolve(self.value, ctx)

    def holds(self, observed: Any, ctx: Context) -> bool:
        return _same(observed, self.expected(ctx))

    def describe(self, ctx: Context) -> str:
        return f"== {self.expected(ctx)!r}"


@dataclass(frozen=True)
class AtLeast:
    """The observed value is a number no smaller than the expected one."""

    value: Any

    def expected(self, ctx: Context) -> Any:
        return _resolve(self.value, ctx)

    def holds(self, observed: Any, ctx: Context) -> bool:
        number = isinstance(observed, int | float) and not isinstance(observed, bool)
        return number and observed >= self.expected(ctx)

    def describe(self, ctx: Context) -> str:
        return f">= {self.expected(ctx)!r}"


Expectation = Equals | AtLeast


@dataclass(frozen=True)
class ApiCheck:
    """One field of the dashboard API asserted with a jmespath expression."""

    name: str
    expression: str
    expect: Expectation
    applies: Callable[[Config], bool] = lambda _config: True
    converges: float | None = None
    """Seconds the value may take to reach its expectation once the stack is ready (a sync,
    workers joining); None means it is settled by then and is asserted once."""

    def __post_init__(self) -> None:
        jmespath.compile(self.expression)


@dataclass(frozen=True)
class Increasing:
    """A counter in the API that must grow between two reads within `within` seconds."""

    name: str
    expression: str
    within: float = 30.0


@dataclass(frozen=True)
class Dashboard:
    """How to reach the stack's API on the box, with a token read on the box."""

    url: Callable[[Config], str]
    token_env_key: str
    secure_flag: Callable[[Config], bool]


@dataclass(frozen=True)
class Secrets:
    """Where a stack keeps its secrets: .env key globs, file globs, config paths."""

    env_keys: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    config_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commands:
    """The control command's verbs, appended to the inventory's control command."""

    apply: str = "apply -y"
    status: str = "status"
    status_json: str = "status --json"
    doctor: str = "doctor"
    version_json: str = "version --json"
    logs: str = "logs {service} -n {lines}"
    no_change_marker: str = "No configuration changes detected"


@dataclass(frozen=True)
class StatusShape:
    """Where the status JSON keeps per-service state, and which state counts as running."""

    services: str = "services"
    state_field: str = "state"
    running: str = "running"
    pid_field: str = "pid"
    started_field: str = "started"


@dataclass(frozen=True)
class StackContract:
    """Everything the gate needs to know about one stack."""

    name: str
    expected_services: Callable[[Config], frozenset[str]]
    posture: Callable[[Config], Mapping[str, str]]
    dashboard: Dashboard
    secrets: Secrets
    api_checks: tuple[ApiCheck, ...] = ()
    counters: tuple[Increasing, ...] = ()
    commands: Commands = field(default_factory=Commands)
    status: StatusShape = field(default_factory=StatusShape)
    config_file: str = "config.json"
    env_file: str = ".env"
    log_lines: int = 200


def fit_contract(contract: StackContract, cfg: Config, source: object, workers: int = 0) -> None:
    """Evaluate everything the contract derives from a config; a misfit is one usage line.

    A contract that names a config path the box lacks would otherwise fail deep inside a
    run as an internal error; this runs before the first change.
    """
    ctx = Context(config=cfg, workers=workers)
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("expected_services", lambda: contract.expected_services(cfg)),
        ("posture", lambda: contract.posture(cfg)),
        ("dashboard.url", lambda: contract.dashboard.url(cfg)),
        ("dashboard.secure_flag", lambda: contract.dashboard.secure_flag(cfg)),
    ]
    parts += [(f"api check {c.name!r}", _fitter(c, cfg, ctx)) for c in contract.api_checks]
    for what, evaluate in parts:
        try:
            evaluate()
        except KeyError as exc:
            raise UsageError(
                f"{source}: contract {contract.name!r} does not fit the box: {what} needs "
                f"config path {exc.args[0]!r}, which the box's {contract.config_file} lacks"
            ) from None
        except Exception as exc:  # the user's code: any error is a misfit, said in one line
            raise UsageError(
                f"{source}: contract {contract.name!r} does not fit the box: {what}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _fitter(check: ApiCheck, cfg: Config, ctx: Context) -> Callable[[], Any]:
    return lambda: check.applies(cfg) and check.expect.expected(ctx)
