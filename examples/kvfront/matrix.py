"""What gate checks on the kvfront stack (examples/kvfront, docs/daemons-stack.md): its
contract and its config matrix.

    invoke gate --local --dir BOX --matrix examples/kvfront/matrix.py --check

Every setting is observed twice where the stack allows it: in the file apply renders (the
derived view) and in the running daemon itself (the raw view: redis-cli, the TLS handshake,
the access log, the ports' real binds). The memory settings are invisible over HTTP, so
redis-cli is their only raw source; its password reaches it through the environment on the
box (REDISCLI_AUTH), never its argv.
"""

from __future__ import annotations

from collections.abc import Callable

from gate.contract import (
    Actions,
    AtLeast,
    AuthGuard,
    CaFile,
    Check,
    Command,
    Config,
    Context,
    Equals,
    Fault,
    File,
    Header,
    Http,
    InUse,
    Matches,
    Port,
    Readiness,
    Ref,
    Secrets,
    Services,
    StackContract,
    Status,
    config,
    lookup,
)
from gate.matrix import Axis, Matrix, Scenario

SETTLE_S = 15.0
"""How long a replica's link or a fresh access-log line may take once status says healthy."""


# --- what a config runs, and where ------------------------------------------------------------


def expected_services(cfg: Config) -> frozenset[str]:
    """The supervisord programs this config runs (kvlib/config.py expected_services)."""
    services = {"redis", "api", "front"}
    if lookup(cfg, "replica.enabled"):
        services.add("replica")
    return frozenset(services)


def replica_on(cfg: Config) -> bool:
    return bool(lookup(cfg, "replica.enabled"))


def front_url(path: str) -> Callable[[Config], str]:
    """The front's URL for `path`; https when front.tls is on."""

    def url(cfg: Config) -> str:
        scheme = "https" if lookup(cfg, "front.tls") else "http"
        return f"{scheme}://127.0.0.1:{lookup(cfg, 'front.port')}{path}"

    return url


def front_tls(cfg: Config) -> CaFile | None:
    """Verify the self-signed front against the certificate apply minted (never skip it)."""
    return CaFile("secrets/front.crt") if lookup(cfg, "front.tls") else None


def redis_cli(args: str) -> Callable[[Config], str]:
    """Raw redis-cli against this box's redis; the password comes from .env via env=."""
    return lambda cfg: f"redis-cli -h 127.0.0.1 -p {lookup(cfg, 'redis.port')} {args}"


# --- expected values derived from the config under test -----------------------------------------


def scheme(ctx: Context) -> str:
    return "https" if lookup(ctx.config, "front.tls") else "http"


def front_base(ctx: Context) -> str:
    return f"{scheme(ctx)}://127.0.0.1:{lookup(ctx.config, 'front.port')}"


def maxmemory_bytes(ctx: Context) -> str:
    """redis reports (and redis.conf holds) maxmemory in bytes, as a string."""
    return str(int(lookup(ctx.config, "redis.maxmemory_mb")) * 1024 * 1024)


def yes_no(path: str) -> Ref:
    """redis' spelling of a boolean config value."""
    return lambda ctx: "yes" if lookup(ctx.config, path) else "no"


def replica_count(ctx: Context) -> int:
    return 1 if lookup(ctx.config, "replica.enabled") else 0


def access_line(ctx: Context) -> str:
    """A line of nginx's access log in the configured format (render.py LOG_FORMAT_JSON, or
    nginx's built-in `combined`). The request may be anything: the last line is often the
    Port probe's TLS hello to a plaintext front (a 400 with an unreadable request line)."""
    if lookup(ctx.config, "front.log_format") == "json":
        return r'^\{"time":"[^"]+","remote":"127\.0\.0\.1",'
    return r'^127\.0\.0\.1 - \S+ \[[^]]+\] "[^"]*" [0-9]{3} '


def access_directive(ctx: Context) -> str:
    name = "kvfront_json" if lookup(ctx.config, "front.log_format") == "json" else "combined"
    return rf"^access_log \S+/logs/front-access\.log {name};$"


def listen_directive(ctx: Context) -> str:
    port = lookup(ctx.config, "front.port")
    return rf"^listen 127\.0\.0\.1:{port}{' ssl' if lookup(ctx.config, 'front.tls') else ''};$"


# --- faults (docs/fault-injection.md): redis down behind webdis and the front ------------------
# `kvctl front-get PATH` prints what a client of the front gets (the code, a 503 included);
# the front itself keeps answering /healthz while the API behind it fails.

FRONT_API = Command("front-api", "{control} front-get /api/PING", output="json")
API_ANSWERS = Check("the API answers 200 through the front", "front-api", "code", Equals(200))
API_PONG = Check("redis answers PONG through the front", "front-api", "body.PING",
                 Equals([True, "PONG"]))  # fmt: skip
FRONT_UP = Check("the front itself still answers", "healthz", "status", Equals("ok"))
REDIS_STATE = "services[?name=='redis'].state | [0]"
REDIS_STOPPED = Fault(
    "redis stopped",
    service="redis",
    inject="stop",
    armed=(API_ANSWERS, API_PONG),
    degraded=(
        Check("the API fails with 503 through the front", "front-api", "code", Equals(503)),
        FRONT_UP,
        Check("redis listed as exited", "status", REDIS_STATE, Equals("exited")),
    ),
    status_exit=1,
    detect_s=15.0,
    hold_s=3.0,
    recover_s=30.0,
)
REDIS_PAUSED = Fault(
    "redis paused",
    service="redis",
    inject="pause",
    armed=(API_ANSWERS, API_PONG),
    degraded=(
        Check("the API times out through the front", "front-api", "error", Matches("timed out")),
        FRONT_UP,
        Check("redis listed as not answering", "status", REDIS_STATE, Equals("unhealthy")),
    ),
    status_exit=1,
    detect_s=15.0,
    hold_s=3.0,
    recover_s=30.0,
)


FIRST_ACCESS_LINE = "[?starts_with(@, 'access_log ')] | [0]"
LISTEN_LINE = "[?starts_with(@, 'listen ')] | [0]"

AUTH_GUARD = AuthGuard(
    secret="REDIS_PASSWORD",
    service="redis",
    refusal=r"refusing to start redis without a password",
)
"""--auth-fail-closed: kvctl refuses to start redis while REDIS_PASSWORD is empty in .env
(kvlib/cli.py GUARDED), exit 1, the refusal in its own output."""

CONTRACT = StackContract(
    name="kvfront",
    control="./kvctl",
    expected_services=expected_services,
    status=Status(command="status --json"),
    services=Services(
        probe="status",
        at="services",
        name="name",
        state="state",
        running="running",
        absent=("missing",),
        pid="pid",
        started=None,
    ),
    probes=(
        # HTTP, through the front (nginx): the public health check and the token-guarded admin
        # API (gate also asks it without the token, and with a wrong one: both must be 401).
        Http("healthz", url=front_url("/healthz"), tls=front_tls),
        Http(
            "admin",
            url=front_url("/admin/status"),
            auth=Header("ADMIN_TOKEN", name="Authorization", template="Bearer {}"),
            tls=front_tls,
        ),
        # webdis behind nginx, and redis behind webdis: the whole read path.
        Http("api-ping", url=front_url("/api/PING"), tls=front_tls),
        # The settings nothing serves over HTTP: redis-cli is their only raw source.
        # kvctl's own verb reads .env itself; `-3 --json` makes CONFIG GET a JSON object, and
        # `--` keeps kvctl's parser from taking redis-cli's options (`--json` alone: exit 2).
        Command(
            "redis-config",
            "{control} redis-cli -- -3 --json"
            " CONFIG GET maxmemory-policy maxmemory appendonly bind",
            output="json",
        ),
        # The same redis, asked with the stock redis-cli: the password through its
        # environment (REDISCLI_AUTH, from .env on the box), the port from the config.
        Command(
            "redis-replication",
            redis_cli("INFO replication"),
            output="lines",
            env={"REDISCLI_AUTH": "REDIS_PASSWORD"},
        ),
        # The replica, when there is one: kvctl's verb again, with --replica.
        Command(
            "replica-replication",
            "{control} redis-cli --replica INFO replication",
            output="lines",
            applies=replica_on,
        ),
        # The last access-log line: the format nginx really writes (kvctl status itself
        # requests /healthz through the front, so the line is fresh).
        Command("access-log", "{control} logs access -n 1", output="lines"),
        # What apply rendered (the derived view; secrets masked by the probe).
        File("redis-conf", "conf/redis.conf", format="keyvalue"),
        File("nginx-conf", "conf/nginx.conf", format="lines"),
        # Where the daemons are really bound (the kernel's listeners, whatever a file says),
        # and whether the front speaks TLS. A TLS hello to plaintext redis would wait out
        # the probe's whole handshake timeout: no handshake there.
        FRONT_API,
        Port("front-port", port=lambda cfg: int(lookup(cfg, "front.port"))),
        Port("api-port", port=lambda cfg: int(lookup(cfg, "api.port"))),
        Port("redis-port", port=lambda cfg: int(lookup(cfg, "redis.port")), handshake=False),
        Port(
            "replica-port",
            port=lambda cfg: int(lookup(cfg, "replica.port")),
            handshake=False,
            applies=replica_on,
        ),
    ),
    checks=(
        # status
        Check("overall healthy", "status", "overall", Equals("healthy")),
        Check("no reasons", "status", "reasons", Equals([])),
        Check(
            "front url follows front.tls and front.port", "status", "front.url", Equals(front_base)
        ),
        Check(
            "replica listed as replica.enabled says",
            "status",
            "length(services[?name=='replica'])",
            Equals(replica_count),
        ),
        # the front
        Check("ok", "healthz", "status", Equals("ok")),
        Check("scheme follows front.tls", "healthz", "scheme", Equals(scheme)),
        Check("served by nginx", "admin", "server", Equals("nginx")),
        Check("scheme follows front.tls", "admin", "scheme", Equals(scheme)),
        Check("counts this connection", "admin", "connections.active", AtLeast(1)),
        Check("redis answers PONG through webdis", "api-ping", "PING", Equals([True, "PONG"])),
        Check("bound to loopback only", "api-port", "listening", Equals(["127.0.0.1"])),
        Check("plain HTTP behind the front", "api-port", "tls", Equals(False)),
        # the front's raw transport
        Check("speaks TLS as front.tls says", "front-port", "tls", Equals(config("front.tls"))),
        Check("bound to loopback only", "front-port", "listening", Equals(["127.0.0.1"])),
        # redis, raw
        Check(
            "maxmemory-policy matches redis.maxmemory_policy",
            "redis-config",
            '"maxmemory-policy"',
            Equals(config("redis.maxmemory_policy")),
        ),
        Check(
            "maxmemory matches redis.maxmemory_mb",
            "redis-config",
            "maxmemory",
            Equals(maxmemory_bytes),
        ),
        Check(
            "appendonly matches redis.appendonly",
            "redis-config",
            "appendonly",
            Equals(yes_no("redis.appendonly")),
        ),
        Check("primary", "redis-replication", "contains(@, 'role:master')", Equals(True)),
        Check(
            "connected replicas as replica.enabled says",
            "redis-replication",
            "[?starts_with(@, 'connected_slaves:')] | [0]",
            Equals(lambda ctx: f"connected_slaves:{replica_count(ctx)}"),
            converges=SETTLE_S,
        ),
        Check("bound to loopback only", "redis-config", "bind", Equals("127.0.0.1")),
        Check("bound to loopback only", "redis-port", "listening", Equals(["127.0.0.1"])),
        Check(
            "bound to loopback only",
            "replica-port",
            "listening",
            Equals(["127.0.0.1"]),
            applies=replica_on,
        ),
        Check(
            "a replica",
            "replica-replication",
            "contains(@, 'role:slave')",
            Equals(True),
            applies=replica_on,
        ),
        Check(
            "link to the primary up",
            "replica-replication",
            "contains(@, 'master_link_status:up')",
            Equals(True),
            applies=replica_on,
            converges=SETTLE_S,
        ),
        # nginx's access log, raw
        Check(
            "last line in front.log_format",
            "access-log",
            "[-1]",
            Matches(access_line),
            converges=SETTLE_S,
        ),
        # rendered files (derived)
        Check(
            "maxmemory-policy rendered",
            "redis-conf",
            '"maxmemory-policy"',
            Equals(config("redis.maxmemory_policy")),
        ),
        Check("maxmemory rendered", "redis-conf", "maxmemory", Equals(maxmemory_bytes)),
        Check(
            "appendonly rendered", "redis-conf", "appendonly", Equals(yes_no("redis.appendonly"))
        ),
        Check("bound to loopback", "redis-conf", "bind", Equals("127.0.0.1")),
        Check(
            "access_log format rendered", "nginx-conf", FIRST_ACCESS_LINE, Matches(access_directive)
        ),
        Check("listen rendered", "nginx-conf", LISTEN_LINE, Matches(listen_directive)),
    ),
    secrets=Secrets(
        env_keys=("REDIS_PASSWORD", "ADMIN_TOKEN"),
        files=("secrets/*.key",),
        in_use=(
            InUse(secret="REDIS_PASSWORD", file="conf/redis.conf"),
            InUse(secret="REDIS_PASSWORD", file="conf/webdis.json"),
            InUse(secret="ADMIN_TOKEN", file="conf/admin_token.map"),
            # conf/replica.conf holds it too (requirepass, masterauth) while replica.enabled
            InUse(secret="REDIS_PASSWORD", file="conf/replica.conf", applies=replica_on),
        ),
    ),
    # --readiness: every daemon on loopback, kvctl backup's archives (config.json, .env and
    # secrets/, never the redis data) in backups/, and the stock redis-cli the raw probe runs.
    readiness=Readiness(
        loopback_ports=("front-port", "api-port", "redis-port", "replica-port"),
        backup_dir="backups",
        data_paths=("secrets",),
        tools=("redis-cli",),
    ),
    auth_guard=AUTH_GUARD,
    actions=Actions(
        apply="apply -y",
        no_change_marker="No configuration changes detected",
        version="version",
        restart="restart",
        stop="stop {service}",
        start="start {service}",
        kill="kill -s {signal} {service}",
        remove="rm {service}",
        up="up",
        down="down",
        backup="backup",
        restore="restore {archive}",
        logs="logs {service} -n 200",
        diagnostics=(
            ("status.txt", "status"),
            ("supervisord.log", "logs supervisord -n 200"),
            ("access.log", "logs access -n 50"),
        ),
    ),
    faults=(REDIS_STOPPED, REDIS_PAUSED),
    failover=REDIS_STOPPED,
)


# --- the matrix ------------------------------------------------------------------------------
# `touches`: the daemons a change of the axis recreates (kvlib/apply.py recreates a daemon
# exactly when a file it reads at start changed): nginx.conf -> front; redis.conf -> redis;
# replica.enabled adds or removes the replica alone. Every other daemon keeps its pid.

MATRIX = Matrix(
    axes=(
        Axis("front.tls", (False, True), touches=("front",)),
        Axis("front.log_format", ("json", "combined"), touches=("front",)),
        Axis(
            "redis.maxmemory_policy",
            ("noeviction", "allkeys-lru", "volatile-ttl"),
            touches=("redis",),
        ),
        Axis("redis.maxmemory_mb", (64, 0, 256), touches=("redis",)),
        Axis("redis.appendonly", (False, True), touches=("redis",)),
        Axis("replica.enabled", (False, True), touches=("replica",)),
    ),
    scenarios=(
        Scenario(
            "tls-combined-lru",
            {
                "front.tls": True,
                "front.log_format": "combined",
                "redis.maxmemory_policy": "allkeys-lru",
                "redis.maxmemory_mb": 256,
                "redis.appendonly": False,
                "replica.enabled": False,
            },
            note="the front and redis recreated together; the api keeps its pid",
        ),
        Scenario(
            "aof-replica",
            {
                "front.tls": False,
                "front.log_format": "json",
                "redis.maxmemory_policy": "volatile-ttl",
                "redis.maxmemory_mb": 0,
                "redis.appendonly": True,
                "replica.enabled": True,
            },
            note="appendonly turned on (apply seeds the AOF) with a replica following",
        ),
        Scenario(
            "tls-replica",
            {
                "front.tls": True,
                "front.log_format": "json",
                "redis.maxmemory_policy": "noeviction",
                "redis.maxmemory_mb": 64,
                "redis.appendonly": False,
                "replica.enabled": True,
            },
            note="install's redis settings behind a TLS front, with a replica",
        ),
    ),
    ready_timeout=60.0,
)
