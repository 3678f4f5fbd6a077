"""kvfront: nginx in front of webdis and redis-server (plus an optional redis replica).

Real daemons from Debian packages, run under one supervisord per box and driven by `kvctl`.
"""

VERSION = "1.0.0"
# Every service kvfront can run, in start order (also the order of `status` and of reports).
SERVICES = ("redis", "replica", "api", "front")
