"""A worker: submits a share to the proxy every interval and touches a heartbeat file, so
status can tell a live worker from a stopped (SIGSTOP) one."""

from __future__ import annotations

import time

from stacklib.net import FetchError, fetch_json, log
from stacklib.ready import announce
from stacklib.services.common import start
from stacklib.services.proxy import share_interval


def main() -> None:
    rt = start("worker")
    token = rt.env.get("PROXY_AUTH_TOKEN", "")
    heartbeat = rt.box / "run" / f"{rt.name}.heartbeat"
    url = rt.settings["proxy_url"] + "/share"
    accepted: bool | None = None
    while True:
        try:
            fetch_json(url, token, body={"worker": rt.name})
            ok = True
        except FetchError as exc:
            ok = False
            reason = str(exc)
        if ok != accepted:
            log(rt.name, "shares accepted" if ok else f"shares refused: {reason}")
            if ok:
                announce(rt.box, rt.name)
            accepted = ok
        heartbeat.touch()
        time.sleep(share_interval(rt))


if __name__ == "__main__":
    main()
