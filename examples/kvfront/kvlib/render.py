"""Render each daemon's own config file from config.json and the secrets.

Every file is returned as text keyed by its path relative to the box; the box path itself
is checked at install (letters, digits and `._/+-` only), so it needs no quoting here.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
from pathlib import Path
from typing import Any

from kvlib.secrets import CERT, KEY

HEADER = "rendered by kvctl apply from config.json; edit config.json instead"
# What the public /api/ may ask redis through webdis (read-only; INFO and CONFIG stay out, so
# memory settings are visible only to redis-cli).
API_COMMANDS = ("PING", "GET", "EXISTS", "TTL", "TYPE", "STRLEN", "DBSIZE")
# Redis' own default save points: a SIGTERM (stop, recreate) also saves, so data survives.
SAVE = "save 3600 1 300 100 60 10000"
LOG_FORMAT_JSON = (
    "log_format kvfront_json escape=json "
    '\'{"time":"$time_iso8601","remote":"$remote_addr","method":"$request_method",'
    '"uri":"$uri","status":$status,"bytes":$body_bytes_sent,'
    '"request_time":$request_time}\';'
)
ADMIN_JSON = (
    '{"server":"nginx","version":"$nginx_version","worker_pid":$pid,'
    '"connections":{"active":$connections_active,"reading":$connections_reading,'
    '"writing":$connections_writing,"waiting":$connections_waiting},'
    '"scheme":"$scheme","time":"$time_iso8601"}\\n'
)


def files_for(box: Path, cfg: dict[str, Any], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """service -> {relative path: text} for every service this config runs."""
    out = {"redis": {"conf/redis.conf": redis_conf(box, cfg, env)}}
    if cfg["replica"]["enabled"]:
        out["replica"] = {"conf/replica.conf": replica_conf(box, cfg, env)}
    out["api"] = {"conf/webdis.json": webdis_json(cfg, env)}
    out["front"] = {
        "conf/nginx.conf": nginx_conf(box, cfg),
        "conf/admin_token.map": f'"Bearer {env["ADMIN_TOKEN"]}" 1;\n',
    }
    return out


def redis_conf(box: Path, cfg: dict[str, Any], env: dict[str, str]) -> str:
    r = cfg["redis"]
    return "\n".join([
        f"# {HEADER}",
        *_redis_common(box / "data" / "redis", r["port"]),
        f"appendonly {'yes' if r['appendonly'] else 'no'}",
        f"maxmemory {r['maxmemory_mb'] * 1024 * 1024}",
        f"maxmemory-policy {r['maxmemory_policy']}",
        # A replica that connects is served at once (Redis 7 otherwise waits 5 s for others).
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
        f"requirepass {env['REDIS_PASSWORD']}",
        "",
    ])  # fmt: skip


def replica_conf(box: Path, cfg: dict[str, Any], env: dict[str, str]) -> str:
    """A read-only replica of the primary; like every replica it ignores maxmemory."""
    return "\n".join([
        f"# {HEADER}",
        *_redis_common(box / "data" / "replica", cfg["replica"]["port"]),
        "appendonly no",
        f"replicaof 127.0.0.1 {cfg['redis']['port']}",
        "replica-read-only yes",
        f"masterauth {env['REDIS_PASSWORD']}",
        f"requirepass {env['REDIS_PASSWORD']}",
        "",
    ])  # fmt: skip


def _redis_common(data: Path, port: int) -> list[str]:
    return [
        "bind 127.0.0.1",
        "protected-mode yes",
        f"port {port}",
        "daemonize no",
        'logfile ""',
        # The config file's path in the title lets a sweep find the box's daemons by cmdline.
        'proc-title-template "{title} {listen-addr} {server-mode} {config-file}"',
        f"dir {data}",
        "dbfilename dump.rdb",
        SAVE,
    ]


def webdis_json(cfg: dict[str, Any], env: dict[str, str]) -> str:
    doc = {
        "redis_host": "127.0.0.1",
        "redis_port": cfg["redis"]["port"],
        "redis_auth": env["REDIS_PASSWORD"],
        "http_host": "127.0.0.1",
        "http_port": cfg["api"]["port"],
        "threads": 2,
        "daemonize": False,
        "database": 0,
        "acl": [{"disabled": ["*"]}, {"enabled": list(API_COMMANDS)}],
        "verbosity": 3,
        "logfile": "/dev/stdout",
    }
    return json.dumps(doc, indent=2) + "\n"


def nginx_conf(box: Path, cfg: dict[str, Any]) -> str:
    f = cfg["front"]
    run, logs, conf = box / "run", box / "logs", box / "conf"
    listen = f"listen 127.0.0.1:{f['port']}{' ssl' if f['tls'] else ''};"
    tls = []
    if f["tls"]:
        tls = [
            f"    ssl_certificate {box / 'secrets' / CERT};",
            f"    ssl_certificate_key {box / 'secrets' / KEY};",
            "    ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    access = "kvfront_json" if f["log_format"] == "json" else "combined"
    return "\n".join([
        f"# {HEADER}",
        "daemon off;",
        "master_process on;",
        "worker_processes 1;",
        f"pid {run / 'nginx.pid'};",
        "error_log stderr notice;",
        *_user(),
        "events { worker_connections 256; }",
        "http {",
        *(f"  {kind}_temp_path {run / 'nginx' / kind};"
          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        "  default_type application/json;",
        "  server_tokens off;",
        # Request bodies stay in memory and responses are not buffered to disk: workers
        # never need to write under the box.
        "  client_max_body_size 16k;",
        "  client_body_buffer_size 16k;",
        "  proxy_buffering off;",
        f"  {LOG_FORMAT_JSON}",
        f"  access_log {logs / 'front-access.log'} {access};",
        "  map_hash_bucket_size 512;  # room for a 256-character token",
        "  map $http_authorization $kvfront_admin {",
        "    default 0;",
        f"    include {conf / 'admin_token.map'};",
        "  }",
        "  upstream kvfront_api {",
        f"    server 127.0.0.1:{cfg['api']['port']};",
        "    keepalive 4;",
        "  }",
        "  server {",
        f"    {listen}",
        *tls,
        "    error_page 403 = @forbidden;",
        "    location @forbidden { return 403 '{\"error\":\"forbidden\"}\\n'; }",
        "    location = /healthz { return 200 '{\"status\":\"ok\",\"scheme\":\"$scheme\"}\\n'; }",
        "    location = /admin/status {",
        "      if ($kvfront_admin = 0) {",
        "        add_header WWW-Authenticate 'Bearer realm=\"kvfront\"' always;",
        "        return 401 '{\"error\":\"unauthorized\"}\\n';",
        "      }",
        f"      return 200 '{ADMIN_JSON}';",
        "    }",
        "    location /api/ {",
        "      limit_except GET { deny all; }",
        "      proxy_pass http://kvfront_api/;",
        "      proxy_intercept_errors on;  # webdis' bodiless 403 becomes the JSON one",
        "      proxy_http_version 1.1;",
        '      proxy_set_header Connection "";',
        "    }",
        "    location / { return 404 '{\"error\":\"not found\"}\\n'; }",
        "  }",
        "}",
        "",
    ])  # fmt: skip


def _user() -> list[str]:
    """As root, workers drop to nobody (they touch no file); otherwise nginx keeps the user."""
    if os.geteuid() != 0:
        return []
    try:
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
    except KeyError:
        return []
    return [f"user nobody {group};"]
