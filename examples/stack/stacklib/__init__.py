"""The sample stack's code: config rendering, supervisord control and the services.

Kept to the standard library plus `supervisor` so a box runs on any python that can import it.
"""

VERSION = "1.4.0"

# Bumped per service when its behaviour changes; `stackctl version` reports them.
SERVICE_VERSIONS = {
    "node": "0.9.3",
    "pool": "2.1.0",
    "proxy": "1.2.4",
    "dashboard": "1.4.0",
    "worker": "0.3.1",
    "cache": "0.1.2",
}
