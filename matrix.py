"""What gate checks on the sample stack (examples/stack): its contract and its config matrix.

This is the file a team writes for its own stack (docs/writing-a-matrix.md). gate/ knows
nothing of the names below.
"""

from __future__ import annotations

from collections.abc import Callable

from gate.contract import (
    STATUS,
    Actions,
    AtLeast,
    AuthGuard,
    Check,
    Config,
    Context,
    Equals,
    Expectation,
    Fault,
    File,
    Header,
    Http,
    Increasing,
    InsecureLoopback,
    Port,
    Readiness,
    Ref,
    Secrets,
    Services,
    StackContract,
    Status,
    config,
    fact,
    lookup,
)
from gate.e2e import BranchDeploy
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


def _flag(key: str) -> Ref:
    """The .env spelling of a boolean config value."""
    return lambda ctx: "true" if lookup(ctx.config, key) else "false"


def node_bind(ctx: Context) -> list[str]:
    """Where the node's RPC port must really be bound: everywhere only with lan_access."""
    return ["0.0.0.0"] if lookup(ctx.config, "node.lan_access") else ["127.0.0.1"]


def dashboard_url(cfg: Config) -> str:
    scheme = "https" if lookup(cfg, "dashboard.secure") else "http"
    return f"{scheme}://127.0.0.1:{lookup(cfg, 'dashboard.port')}/api/state"


def _api(name: str, expression: str, expect: Expectation, converges: float | None = None) -> Check:
    return Check(name, "api", expression, expect, converges=converges)


def _env(key: str, value: object) -> Check:
    """A setting apply renders into .env (the derived view; the API and ports show the real)."""
    return Check(f"{key} rendered from config", "env", key, Equals(value))


# --- faults (docs/fault-injection.md): what the stack must do while a service is down -------
# The proxy polls the node and stops admitting workers once the node has been unreachable
# for longer than its debounce (proxy.debounce_s x stack.time_scale, 10 s by default), and
# readmits as soon as the node answers; status exits 1 while anything is down.

ADMITTING = _api("proxy admitting workers", "proxy.admitting", Equals(True))
WORKERS_ONLINE = _api(
    "workers online >= fact workers", "workers.online", AtLeast(fact("workers", int))
)
NOT_ADMITTING = _api("proxy not admitting workers", "proxy.admitting", Equals(False))
NONE_ONLINE = _api("no worker online", "workers.online", Equals(0))
FAULT_DETECT_S = 30.0
"""The debounce (10 s at time_scale 1) plus a few status reads."""
FAULT_HOLD_S = 3.0
FAULT_RECOVER_S = 60.0


Applies = Callable[[Config], bool]


def _always(_cfg: Config) -> bool:
    return True


def _node_local(cfg: Config) -> bool:
    return lookup(cfg, "node.mode") == "local"


def _fault(
    name: str, service: str, inject: str, *degraded: Check, applies: Applies = _always
) -> Fault:
    """A fault of this stack: armed when the proxy admits and workers are online; status
    exit 1 while degraded; the shared deadlines."""
    return Fault(
        name,
        service=service,
        inject=inject,
        armed=(ADMITTING, WORKERS_ONLINE),
        degraded=degraded,
        status_exit=1,
        detect_s=FAULT_DETECT_S,
        hold_s=FAULT_HOLD_S,
        recover_s=FAULT_RECOVER_S,
        applies=applies,
    )


NODE_STOPPED = _fault(
    "node stopped", "node", "stop", NOT_ADMITTING, NONE_ONLINE, applies=_node_local
)
NODE_PAUSED = _fault(
    "node paused",
    "node",
    "pause",
    NOT_ADMITTING,
    NONE_ONLINE,
    Check("node reported not answering", STATUS, "services.node.state", Equals("unhealthy")),
    applies=_node_local,
)
WORKER_REMOVED = _fault(
    "worker-2 removed",
    "worker-2",
    "remove",
    Check("worker-2 listed as missing", STATUS, '"services"."worker-2".state', Equals("missing")),
    _api("proxy still admitting the other workers", "proxy.admitting", Equals(True)),
)
FAULTS = (NODE_STOPPED, NODE_PAUSED, WORKER_REMOVED)
FAILOVER = NODE_STOPPED
"""--lifecycle's failover: node stopped -> status 1 -> proxy stops admitting -> node started
-> readmitted -> status 0."""


AUTH_GUARD = AuthGuard(
    secret="PROXY_AUTH_TOKEN",
    service="proxy",
    refusal=r"refusing to start an unauthenticated proxy control API",
)
"""--auth-fail-closed: the proxy exits 1 at start with an empty token (stacklib/services/
proxy.py) and `stackctl start` reports it (exit 1); the refusal is in the proxy's log."""

CONTRACT = StackContract(
    name="sample-stack",
    control="./stackctl",
    expected_services=expected_services,
    facts={"workers": "2"},
    probes=(
        Http(
            "api",
            url=dashboard_url,
            auth=Header("DASHBOARD_TOKEN"),
            tls=lambda cfg: InsecureLoopback() if lookup(cfg, "dashboard.secure") else None,
        ),
        Port("dashboard-port", port=lambda cfg: lookup(cfg, "dashboard.port")),
        Port(
            "node-rpc",
            port=lambda cfg: lookup(cfg, "node.rpc_port"),
            applies=lambda cfg: lookup(cfg, "node.mode") == "local",
        ),
        File("env", ".env", format="env"),
    ),
    checks=(
        _api("node synchronized", "node.synchronized", Equals(True), converges=CONVERGE_S),
        _api("node format matches node.compact", "node.compact", Equals(config("node.compact"))),
        _api("node mode matches node.mode", "node.mode", Equals(config("node.mode"))),
        _api("pool tier matches pool.tier", "pool.tier", Equals(config("pool.tier"))),
        _api("pool ready", "pool.ready", Equals(True), converges=CONVERGE_S),
        _api("proxy admitting workers", "proxy.admitting", Equals(True), converges=CONVERGE_S),
        _api(
            "workers online >= fact workers",
            "workers.online",
            AtLeast(fact("workers", int)),
            converges=CONVERGE_S,
        ),
        _api("strict flag matches dashboard.strict", "strict", Equals(config("dashboard.strict"))),
        _api("cache reported as configured", "cache.enabled", Equals(config("extras.cache"))),
        Check(
            "dashboard speaks TLS as dashboard.secure says",
            "dashboard-port",
            "tls",
            Equals(config("dashboard.secure")),
        ),
        Check(
            "node RPC bound as node.lan_access says",
            "node-rpc",
            "listening",
            Equals(node_bind),
            applies=lambda cfg: lookup(cfg, "node.mode") == "local",
        ),
        _env("NODE_MODE", config("node.mode")),
        _env("POOL_TIER", config("pool.tier")),
        _env("EXTRAS_CACHE", _flag("extras.cache")),
        _env("DASHBOARD_SECURE", _flag("dashboard.secure")),
        _env("DASHBOARD_STRICT", _flag("dashboard.strict")),
        _env("NODE_COMPACT", _flag("node.compact")),
    ),
    counters=(Increasing("shares accumulating", "api", "shares.total", within=30.0),),
    secrets=Secrets(
        env_keys=("*_TOKEN", "*_PASSWORD"),
        files=("secrets/*.key",),
        config_paths=("node.remote_token",),
    ),
    actions=Actions(
        apply="apply -y",
        version="version --json",
        restart="restart",
        stop="stop {service}",
        start="start {service}",
        kill="kill -s {signal} {service}",
        remove="rm {service}",
        up="up",
        down="down",
        backup="backup",
        restore="restore {archive}",
        logs="logs {service} -n {lines}",
        diagnostics=(("status.txt", "status"), ("doctor.txt", "doctor")),
    ),
    status=Status(wait="status --json --wait {timeout}"),  # readiness without polling
    services=Services(at="services", started="started"),
    auth_guard=AUTH_GUARD,
    readiness=Readiness(
        loopback_ports=("dashboard-port", "node-rpc"), backup_dir="backups", data_paths=("secrets",)
    ),
    faults=FAULTS,
    failover=FAILOVER,
)


MATRIX = Matrix(
    axes=(
        # in remote mode every service but the node reads the remote token at start
        # (stacklib/apply.py settings_hash): switching the mode recreates them all
        Axis("node.mode", ("local", "remote"), touches=("*",)),
        Axis("node.compact", (False, True), touches=("node",)),
        Axis("node.lan_access", (False, True), touches=("node",)),
        Axis("pool.tier", ("mini", "main", "nano"), touches=("pool",)),
        Axis("extras.cache", (False, True), touches=("cache", "dashboard")),
        Axis("dashboard.secure", (False, True), touches=("dashboard",)),
        Axis("dashboard.strict", (False, True), touches=("dashboard",)),
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
                "node.remote_url": Fact(
                    "remote_node_url",
                    why=REMOTE_WHY,
                    touches=("pool", "proxy", "dashboard"),
                ),
                "pool.tier": "main",
                "dashboard.secure": True,
            },
        ),
        Scenario(
            "compact-alt-data",
            {
                "node.compact": True,
                "node.data_dir": Fact("alt_data_dir", why=COMPACT_WHY, touches=("node",)),
                "pool.tier": "nano",
            },
            note="the destructive axis, only against a spare data dir",
        ),
    ),
    ready_timeout=120.0,
)

E2E = BranchDeploy(
    # stackctl is generated at install time and names the interpreter (one that has
    # supervisor) the box runs; the branch's own install.sh is then run with it
    seed=("stackctl",),
    install="./install.sh . --python \"$(sed -n 's/^exec \\([^ ]*\\) -c .*/\\1/p' stackctl)\"",
)
"""`invoke e2e BRANCH` (docs/e2e.md): how a checkout of this stack's repository (install.sh
and stacklib/ at its top) is made runnable beside the canonical one."""
