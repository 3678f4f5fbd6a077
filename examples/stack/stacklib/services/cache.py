"""The optional cache (`extras.cache`): `GET /health`; the dashboard reports on it."""

from __future__ import annotations

import time

from stacklib import SERVICE_VERSIONS
from stacklib.net import log, serve
from stacklib.ready import announce
from stacklib.services.common import start


def main() -> None:
    rt = start("cache")
    began = time.monotonic()

    def health(req: object) -> tuple[int, dict[str, object]]:
        uptime = round(time.monotonic() - began, 1)
        return 200, {"ok": True, "uptime_s": uptime, "version": SERVICE_VERSIONS["cache"]}

    serve("127.0.0.1", int(rt.settings["port"]), {("GET", "/health"): health})
    log("cache", f"listening on 127.0.0.1:{rt.settings['port']}")
    announce(rt.box, rt.name)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
