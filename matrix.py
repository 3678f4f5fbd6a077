"""What gate checks on the sample stack (examples/stack): its contract and its config matrix.

This is the file a team writes for its own stack (docs/writing-a-matrix.md). gate/ knows
nothing of the names below.
"""

from __future__ import annotations

from collections.abc import Mapping

from gate.contract import (
    ApiCheck,
    AtLeast,
    Config,
    Dashboard,
    Equals,
    Increasing,
    Secrets,
    StackContract,
    config,
    lookup,
    option,
)
from gate.matrix import Axis, Fact, Matrix, Scenario

REMOTE_WHY = "remote mode needs a node endpoint elsewhere: --fact remote_node_url=http://..."
COMPACT_WHY = (
    "flipping node.compact needs a spare data dir in the other format (never the live one): "
    "--fact alt_data_dir=/path"
)


CONVERGE_S = 60.0
"""How long a sync, the pool, the proxy and joining workers may take once status says ready."""


def expected_services(cfg: Config) -> frozenset[str]:
    """The supervisord programs this config runs, by exact name."""
    services = {"pool", "proxy", "dashboard"}
    if lookup(cfg, "node.mode") == "local":
        services.add("node")
    if lookup(cfg, "extras.cache"):
        services.add("cache")
    services.update(f"worker-{i}" for i in range(1, int(lookup(cfg, "workers.count")) + 1))
    return frozenset(services)


def _flag(value: object) -> str:
    return "true" if value else "false"


def posture(cfg: Config) -> Mapping[str, str]:
    """The .env settings apply must render from this config."""
    return {
        "NODE_MODE": str(lookup(cfg, "node.mode")),
        "NODE_COMPACT": _flag(lookup(cfg, "node.compact")),
        "NODE_RPC_BIND": "0.0.0.0" if lookup(cfg, "node.lan_access") else "127.0.0.1",
        "POOL_TIER": str(lookup(cfg, "pool.tier")),
        "DASHBOARD_SECURE": _flag(lookup(cfg, "dashboard.secure")),
        "DASHBOARD_STRICT": _flag(lookup(cfg, "dashboard.strict")),
        "EXTRAS_CACHE": _flag(lookup(cfg, "extras.cache")),
        "WORKERS_COUNT": str(lookup(cfg, "workers.count")),
    }


def dashboard_url(cfg: Config) -> str:
    scheme = "https" if lookup(cfg, "dashboard.secure") else "http"
    return f"{scheme}://127.0.0.1:{lookup(cfg, 'dashboard.port')}/api/state"


CONTRACT = StackContract(
    name="sample-stack",
    expected_services=expected_services,
    posture=posture,
    dashboard=Dashboard(
        url=dashboard_url,
        token_env_key="DASHBOARD_TOKEN",
        secure_flag=lambda cfg: bool(lookup(cfg, "dashboard.secure")),
    ),
    secrets=Secrets(
        env_keys=("*_TOKEN", "*_PASSWORD"),
        files=("secrets/*.key",),
        config_paths=("node.remote_token",),
    ),
    api_checks=(
        ApiCheck("node synchronized", "node.synchronized", Equals(True), converges=CONVERGE_S),
        ApiCheck(
            "node format matches node.compact", "node.compact", Equals(config("node.compact"))
        ),
        ApiCheck("node mode matches node.mode", "node.mode", Equals(config("node.mode"))),
        ApiCheck("pool tier matches pool.tier", "pool.tier", Equals(config("pool.tier"))),
        ApiCheck("pool ready", "pool.ready", Equals(True), converges=CONVERGE_S),
        ApiCheck("proxy admitting workers", "proxy.admitting", Equals(True), converges=CONVERGE_S),
        ApiCheck(
            "workers online >= --workers",
            "workers.online",
            AtLeast(option("workers")),
            converges=CONVERGE_S,
        ),
        ApiCheck(
            "strict flag matches dashboard.strict", "strict", Equals(config("dashboard.strict"))
        ),
        ApiCheck("cache reported as configured", "cache.enabled", Equals(config("extras.cache"))),
    ),
    counters=(Increasing("shares accumulating", "shares.total", within=30.0),),
)


MATRIX = Matrix(
    axes=(
        Axis("node.mode", ("local", "remote")),
        Axis("node.compact", (False, True)),
        Axis("node.lan_access", (False, True)),
        Axis("pool.tier", ("mini", "main", "nano")),
        Axis("extras.cache", (False, True)),
        Axis("dashboard.secure", (False, True)),
        Axis("dashboard.strict", (False, True)),
    ),
    scenarios=(
        Scenario(
            "local-defaults",
            {
                "node.mode": "local",
                "pool.tier": "mini",
                "node.lan_access": False,
                "extras.cache": False,
                "dashboard.secure": False,
                "dashboard.strict": False,
            },
            note="the configuration most users run",
        ),
        Scenario(
            "main-secure-strict",
            {"pool.tier": "main", "dashboard.secure": True, "dashboard.strict": True},
        ),
        Scenario(
            "nano-cache-lan", {"pool.tier": "nano", "extras.cache": True, "node.lan_access": True}
        ),
        Scenario(
            "remote-node",
            {
                "node.mode": "remote",
                "node.remote_url": Fact("remote_node_url", why=REMOTE_WHY),
                "pool.tier": "main",
                "dashboard.secure": True,
            },
        ),
        Scenario(
            "compact-alt-data",
            {
                "node.compact": True,
                "node.data_dir": Fact("alt_data_dir", why=COMPACT_WHY),
                "pool.tier": "nano",
            },
            note="the destructive axis, only against a spare data dir",
        ),
    ),
    ready_timeout=120.0,
)
