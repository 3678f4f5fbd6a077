"""The Debian binaries kvfront runs, and their versions."""

from __future__ import annotations

import re
import shutil
import subprocess

# binary -> Debian package that ships it
BINARIES = {
    "nginx": "nginx",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "webdis": "webdis",
    "openssl": "openssl",
}
SEARCH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=SEARCH)


def require(*names: str) -> dict[str, str]:
    """Absolute paths; RuntimeError naming the packages to install when any is missing."""
    found = {n: which(n) for n in names}
    missing = [n for n, p in found.items() if not p]
    if missing:
        pkgs = " ".join(sorted({BINARIES[n] for n in missing}))
        raise RuntimeError(f"missing {', '.join(missing)} (apt-get install {pkgs})")
    return {n: p for n, p in found.items() if p}


def versions() -> dict[str, str]:
    """Each daemon's version as it reports it (webdis has no version flag: dpkg says)."""
    return {
        "nginx": _run(["nginx", "-v"], r"nginx/(\S+)"),
        "redis-server": _run(["redis-server", "--version"], r"v=(\S+)"),
        "webdis": _dpkg("webdis"),
    }


def _run(argv: list[str], pattern: str) -> str:
    path = which(argv[0])
    if not path:
        return "missing"
    proc = subprocess.run([path, *argv[1:]], capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    match = re.search(pattern, proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


def _dpkg(package: str) -> str:
    dpkg = which("dpkg-query")
    if not dpkg or not which(package):
        return "missing"
    proc = subprocess.run([dpkg, "-W", "-f", "${Version}", package], capture_output=True,
                          text=True, timeout=10, stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    return proc.stdout.strip() or "unknown"
