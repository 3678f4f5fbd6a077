"""Does a contract fit a box's config? Checked before the first change, one usage line if not.

A contract that names a config path the box lacks, a probe whose TLS declaration does not
fit its URL, a check on a probe nobody declared, or a threshold that cannot fail would
otherwise fail deep inside a run (or, worse, pass); here it is a usage error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from gate.contract import Config, StackContract
from gate.errors import UsageError
from gate.expect import Context, unfit
from gate.faults import declared_faults, lacking_action
from gate.probes import Command, File, Http, Port, Probe, at


def check_declarations(contract: StackContract, source: object) -> None:
    """What needs no config: the contract asserts something, names only declared probes."""
    names = [p.name for p in contract.probes]
    if len(set(names)) != len(names) or contract.status.name in names:
        raise UsageError(f"{source}: contract {contract.name!r}: a probe name is used twice")
    if not contract.checks and not contract.counters:
        raise UsageError(
            f"{source}: contract {contract.name!r} declares no check: it would assert nothing "
            "beyond the status command's own word (declare at least one Check)"
        )
    check_secret_keys(contract, source)
    check_faults(contract, source)
    used = [c.probe for c in contract.checks] + [c.probe for c in contract.counters]
    used += [c.probe for f in declared_faults(contract) for c in (*f.armed, *f.degraded)]
    for name in [*used, contract.services.probe]:
        try:
            contract.probe(name)
        except KeyError:
            known = ", ".join([contract.status.name, *names])
            raise UsageError(
                f"{source}: contract {contract.name!r} uses probe {name!r}, which it does not "
                f"declare (known: {known})"
            ) from None


def check_faults(contract: StackContract, source: object) -> None:
    """Every declared fault (and the failover) can be injected and healed with the
    contract's own actions (docs/fault-injection.md)."""
    for fault in declared_faults(contract):
        lacking = lacking_action(contract.actions, fault)
        if lacking:
            raise UsageError(
                f"{source}: contract {contract.name!r}: fault {fault.name!r} "
                f"({fault.inject} {fault.service}) needs {lacking}, which the contract "
                "does not declare"
            )


def check_secret_keys(contract: StackContract, source: object) -> None:
    """Every env-file key a probe hands to the box's commands is a declared secret (so its
    value is scrubbed from what comes back), and every auth template places it."""
    named: list[tuple[str, str]] = []
    for probe in contract.probes:
        if isinstance(probe, Http) and probe.auth is not None:
            if probe.auth.template.count("{}") != 1:
                raise UsageError(
                    f"{source}: probe {probe.name!r}: Header template "
                    f"{probe.auth.template!r} must hold exactly one {{}} (the secret's place)"
                )
            named.append((f"probe {probe.name!r}", probe.auth.env_key))
        if isinstance(probe, Command):
            named += [(f"probe {probe.name!r}", key) for key in probe.env.values()]
    named += [("secrets.in_use", use.secret) for use in contract.secrets.in_use]
    if contract.auth_guard is not None:
        named.append(("auth_guard", contract.auth_guard.secret))
    globs = contract.secrets.env_keys
    for where, key in named:
        if not any(fnmatchcase(key, glob) for glob in globs):
            raise UsageError(
                f"{source}: {where} reads env key {key!r}, which no Secrets.env_keys glob "
                f"matches ({', '.join(globs) or 'none declared'}): its value would not be "
                "scrubbed from what the box answers"
            )


def fit_contract(
    contract: StackContract, cfg: Config, source: object, facts: Mapping[str, str]
) -> None:
    """Evaluate everything the contract derives from a config; a misfit is one usage line.
    (What needs no config, check_declarations, is checked once when the file loads.)"""
    ctx = Context(config=cfg, facts=facts)
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("expected_services", lambda: _services(contract, cfg)),
    ]
    parts += [(f"probe {p.name!r}", _probe_fitter(p, cfg)) for p in contract.probes]
    for check in contract.checks:
        parts.append((f"check {check.name!r}", _check_fitter(contract, check, cfg, ctx)))
    for fault in declared_faults(contract):
        for check in (*fault.armed, *fault.degraded):
            what = f"fault {fault.name!r} check {check.name!r}"
            parts.append((what, _check_fitter(contract, check, cfg, ctx)))
    for what, evaluate in parts:
        try:
            evaluate()
        except KeyError as exc:
            raise UsageError(
                f"{source}: contract {contract.name!r} does not fit the box: {what} needs "
                f"{_needs(exc, contract)}"
            ) from None
        except UsageError as exc:
            raise UsageError(f"{source}: contract {contract.name!r}: {what}: {exc}") from None
        except Exception as exc:  # the user's code: any error is a misfit, said in one line
            raise UsageError(
                f"{source}: contract {contract.name!r} does not fit the box: {what}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _needs(exc: KeyError, contract: StackContract) -> str:
    key = str(exc.args[0]) if exc.args else "?"
    if key.startswith("fact "):
        return f"{key}, which no inventory [requirements], --fact or contract default gives"
    return f"config path {key!r}, which the box's {contract.config.path} lacks"


def _services(contract: StackContract, cfg: Config) -> None:
    services = contract.expected_services(cfg)
    if not isinstance(services, frozenset | set) or not all(isinstance(s, str) for s in services):
        raise UsageError("expected_services must return a set of service names")


def _probe_fitter(probe: Probe, cfg: Config) -> Callable[[], Any]:
    def evaluate() -> None:
        if not probe.applies(cfg):
            return
        if isinstance(probe, Http) and (why := probe.check_tls(cfg)):
            raise UsageError(why)
        if isinstance(probe, Port) and not isinstance(at(probe.port, cfg), int):
            raise UsageError(f"port must be a number, got {at(probe.port, cfg)!r}")
        if isinstance(probe, Command | File):
            at(probe.command if isinstance(probe, Command) else probe.path, cfg)

    return evaluate


def _check_fitter(
    contract: StackContract, check: Any, cfg: Config, ctx: Context
) -> Callable[[], Any]:
    def evaluate() -> None:
        applies = check.applies(cfg) and contract.probe(check.probe).applies(cfg)
        if applies and (why := unfit(check.expect, ctx)):
            raise UsageError(why)

    return evaluate
