"""What the gate needs from a stack, as a small typed API that a stack's contract file fills in.

A contract is probes (read-only ways to look at the box), checks (a probe, a jmespath
expression and an expectation), the services the config should run, where the secrets
live, and the actions (command templates) that change the stack. Nothing in gate/ names a
service, a key or a file of any one stack: those live here, in values the user declares.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jmespath

from gate.expect import Absent, AtLeast, Context, Equals, Expectation, Matches, OneOf, Ref
from gate.probes import (
    STATUS,
    CaFile,
    Command,
    File,
    Header,
    Http,
    InsecureLoopback,
    Port,
    Probe,
    Status,
)

__all__ = [
    "STATUS",
    "Absent",
    "Actions",
    "AtLeast",
    "AuthGuard",
    "CaFile",
    "Check",
    "Command",
    "Config",
    "ConfigFile",
    "Context",
    "Equals",
    "Expectation",
    "Fault",
    "File",
    "Header",
    "Http",
    "InUse",
    "Increasing",
    "InsecureLoopback",
    "Matches",
    "OneOf",
    "Port",
    "Probe",
    "Readiness",
    "Ref",
    "Secrets",
    "Services",
    "StackContract",
    "Status",
    "config",
    "fact",
    "lookup",
]

Config = Mapping[str, Any]


def lookup(cfg: Config, dotted: str) -> Any:
    """The value at a dotted path; KeyError if any part is absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def config(dotted: str) -> Ref:
    """The config value at `dotted`, resolved against the config under test."""

    def resolve(ctx: Context) -> Any:
        return lookup(ctx.config, dotted)

    resolve.__doc__ = f"config {dotted}"
    return resolve


def fact(name: str, cast: Callable[[str], Any] = str) -> Ref:
    """A run-wide value the box's owner knows (inventory [requirements], --fact, or the
    contract's default), e.g. how many workers must be online: `fact("workers", int)`."""

    def resolve(ctx: Context) -> Any:
        if name not in ctx.facts:
            raise KeyError(f"fact {name}")
        return cast(ctx.facts[name])

    resolve.__doc__ = f"fact {name}"
    return resolve


def _always(_cfg: Config) -> bool:
    return True


@dataclass(frozen=True)
class Check:
    """One value a probe reports, found by a jmespath expression, against an expectation."""

    name: str
    probe: str
    expression: str
    expect: Expectation
    applies: Callable[[Config], bool] = _always
    converges: float | None = None
    """Seconds the value may take to reach its expectation once the stack is ready (a sync,
    workers joining); None means it is settled by then and is asserted once."""

    def __post_init__(self) -> None:
        jmespath.compile(self.expression)


@dataclass(frozen=True)
class Increasing:
    """A counter a probe reports that must grow between two reads within `within` seconds."""

    name: str
    probe: str
    expression: str
    within: float = 30.0

    def __post_init__(self) -> None:
        jmespath.compile(self.expression)


@dataclass(frozen=True)
class Services:
    """Where a probe's answer lists the services, and what each entry says.

    `at` is a jmespath expression giving either an object keyed by service name or a list
    of objects that carry the name in `name`. `pid` and `started` are optional: idempotency
    compares what the stack reports and says exactly what that was.
    """

    probe: str = STATUS
    at: str = "services"
    name: str = "name"
    state: str = "state"
    running: str = "running"
    absent: tuple[str, ...] = ("missing",)
    """States that mean "listed but not there": such an entry is no unexpected service."""
    pid: str | None = "pid"
    started: str | None = None

    def __post_init__(self) -> None:
        jmespath.compile(self.at)


@dataclass(frozen=True)
class InUse:
    """A secret must be present in a rendered file: the box compares, plaintext stays there.

    `secret` is an env-file key; `file` a path in the stack dir."""

    secret: str
    file: str
    applies: Callable[[Config], bool] = _always
    """Whether this config renders the file at all (e.g. only when a replica is on)."""


@dataclass(frozen=True)
class Secrets:
    """Where a stack keeps its secrets (env-file key globs, file globs, config paths), and
    the rendered files each must reach."""

    env_keys: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    config_paths: tuple[str, ...] = ()
    in_use: tuple[InUse, ...] = ()


DEFAULT_BACKUP_PATH = r"(?P<path>[^\s'\"]*/[^\s'\"]+|[^\s'\"]+\.(?:tar|tgz|gz|bz2|xz|zip))\W*$"
"""The last path-like token of a line: one holding a "/", or ending in an archive suffix."""


@dataclass(frozen=True)
class Actions:
    """Command templates appended to the control command; None: the stack has no such verb.

    `{service}`, `{signal}` and `{archive}` are filled by the phase that uses them; the
    backup's archive path is taken from the last line of its output.
    """

    apply: str = "apply -y"
    no_change_marker: str = "No configuration changes detected"
    version: str = "version --json"
    restart: str | None = None
    stop: str | None = None
    start: str | None = None
    kill: str | None = None
    remove: str | None = None
    up: str | None = None
    down: str | None = None
    backup: str | None = None
    backup_path: str = DEFAULT_BACKUP_PATH
    """A regex searched in the LAST non-empty line of the backup's output: its group `path`
    (else the whole match) is the archive's path, absolute or relative to the stack dir.
    The default takes the last token holding a "/" or ending in an archive suffix, so both
    "Backup written to: /srv/stack/backups/b.tar.gz" and a bare path are read."""
    backup_holds: tuple[str, ...] | None = None
    """Names the archive's listing must hold as regular files (a dir name: any file under
    it). None: the config file and the env file; a tuple given must name both."""
    restore: str | None = None
    logs: str | None = None
    """e.g. "logs {service} -n 200": captured for every expected service on a failure."""
    diagnostics: tuple[tuple[str, str], ...] = ()
    """(file name, read-only verb) pairs captured on a failure, e.g. ("doctor.txt", "doctor")."""


@dataclass(frozen=True)
class Readiness:
    """What `--readiness` judges besides its built-ins (docs/readiness.md); every default
    is empty, and an item the contract leaves undeclared is a named skip, never a pass.

    Paths are relative to the stack dir; none of them is read for its content."""

    loopback_ports: tuple[str, ...] = ()
    """Names of Port probes whose listeners must be bound to loopback addresses only."""
    backup_dir: str | None = None
    """Where the backup action writes its archives: it must be a writable dir, and its
    newest archive sizes the free space a backup needs."""
    data_paths: tuple[str, ...] = ()
    """What a backup holds besides the config and the env file (files or dirs): their size
    sizes the free space a backup needs while backup_dir holds no archive yet."""
    tools: tuple[str, ...] = ()
    """Commands the box must have on PATH, besides the ones gate itself needs."""
    headroom: float = 2.0
    """Free space on the backup's filesystem must be at least this many backups."""

    def __post_init__(self) -> None:
        if not self.headroom > 0:
            raise ValueError(f"Readiness.headroom must be > 0, not {self.headroom!r}")


INJECTIONS = ("stop", "pause", "remove")
"""How a fault is injected, and healed: stop -> start, pause (SIGSTOP through Actions.kill)
-> SIGCONT, remove -> up."""


@dataclass(frozen=True)
class Fault:
    """One way a service fails, and how the stack must behave while it is down
    (docs/fault-injection.md). The lifecycle's failover is one of these too.

    Before the fault, the stack is ready and every `armed` check holds (the positive
    control: the behaviour the fault must switch off is on). After the injection, the
    status command exits `status_exit` and every `degraded` check holds within `detect_s`,
    and they keep holding, sampled, for `hold_s`. After the heal the stack is ready and
    `armed` holds again within `recover_s`."""

    name: str
    service: str
    inject: str = "stop"
    armed: tuple[Check, ...] = ()
    degraded: tuple[Check, ...] = ()
    status_exit: int | None = 1
    """The status command's exit code while degraded; None: not asserted."""
    detect_s: float = 30.0
    hold_s: float = 10.0
    recover_s: float = 60.0
    applies: Callable[[Config], bool] = _always
    """Whether this config can have the fault (besides running `service` at all)."""

    def __post_init__(self) -> None:
        if self.inject not in INJECTIONS:
            raise ValueError(
                f"Fault {self.name!r}: inject must be one of {', '.join(INJECTIONS)}, "
                f"not {self.inject!r}"
            )
        if not self.degraded and self.status_exit is None:
            raise ValueError(
                f"Fault {self.name!r} asserts nothing while degraded: declare `degraded` "
                "checks or a `status_exit`"
            )
        for field_name in ("detect_s", "hold_s", "recover_s"):
            if not getattr(self, field_name) > 0:
                raise ValueError(f"Fault {self.name!r}: {field_name} must be > 0")


@dataclass(frozen=True)
class AuthGuard:
    """The stack refuses to bring a service up without its secret (docs/auth-fail-closed.md):
    with env key `secret` blanked on the box, Actions.start for `service` must exit non-zero
    and `refusal` (a regex) must appear in its output or in the service's logs."""

    secret: str
    service: str
    refusal: str

    def __post_init__(self) -> None:
        re.compile(self.refusal)


@dataclass(frozen=True)
class ConfigFile:
    """The file the user edits and gate renders scenarios into, and its format (a name in
    boxtool's FORMATS: "json", or "env" for KEY=value files; docs/writing-a-matrix.md)."""

    path: str = "config.json"
    format: str = "json"


@dataclass(frozen=True)
class StackContract:
    """Everything the gate needs to know about one stack."""

    name: str
    control: str
    """The control command, run from the stack dir (the inventory's `control` overrides it)."""
    expected_services: Callable[[Config], frozenset[str]]
    probes: tuple[Probe, ...] = ()
    checks: tuple[Check, ...] = ()
    counters: tuple[Increasing, ...] = ()
    status: Status = field(default_factory=Status)
    services: Services = field(default_factory=Services)
    secrets: Secrets = field(default_factory=Secrets)
    actions: Actions = field(default_factory=Actions)
    config: ConfigFile = field(default_factory=ConfigFile)
    env_file: str = ".env"
    facts: Mapping[str, str] = field(default_factory=dict)
    """Defaults of run-wide facts (`fact(...)`); the inventory and --fact override them."""
    log_lines: int = 200
    readiness: Readiness = field(default_factory=Readiness)
    """What `--readiness` checks besides its built-ins (docs/readiness.md)."""
    failover: Fault | None = None
    """The dependency failover `--lifecycle` exercises (a stop, healed by a start)."""
    faults: tuple[Fault, ...] = ()
    """What `--fault-injection` injects, one after another."""
    auth_guard: AuthGuard | None = None
    """What `--auth-fail-closed` proves: a service refuses to come up without its secret."""

    def __post_init__(self) -> None:
        re.compile(self.actions.backup_path)
        holds = self.actions.backup_holds
        if holds is not None:
            lacking = [name for name in (self.config.path, self.env_file) if name not in holds]
            if lacking:
                raise ValueError(
                    f"Actions.backup_holds must name the config file and the env file: "
                    f"add {', '.join(repr(n) for n in lacking)}"
                )
        ports = {p.name for p in self.probes if isinstance(p, Port)}
        for name in self.readiness.loopback_ports:
            if name not in ports:
                raise ValueError(
                    f"Readiness.loopback_ports names {name!r}, which is not a Port probe "
                    f"of this contract (Port probes: {', '.join(sorted(ports)) or 'none'})"
                )

    @property
    def backup_holds(self) -> tuple[str, ...]:
        """What a verified backup's listing holds: Actions.backup_holds, else the config
        file and the env file."""
        declared = self.actions.backup_holds
        return declared if declared is not None else (self.config.path, self.env_file)

    def probe(self, name: str) -> Probe:
        """The probe called `name` (the status command is `STATUS`)."""
        if name == self.status.name:
            return self.status
        for probe in self.probes:
            if probe.name == name:
                return probe
        raise KeyError(name)
