"""`make demo`, second part: deploy the kvfront stack (real nginx, webdis, redis) and gate it.

1. installs a kvfront box into boxes/kvfront (git-ignored), applies it, waits healthy;
2. `invoke gate --local --dir boxes/kvfront --matrix examples/kvfront/matrix.py --check`;
3. starts a throwaway OpenSSH sshd on 127.0.0.1 and writes boxes/inventory/kvfront.toml;
4. the whole kvfront matrix over SSH, then restore and prove;
5. the destructive phases over SSH behind a verified backup (with one scenario);
6. brings everything down. Exit code: the first gate run that did not pass.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOXES = REPO / "boxes"
BOX = BOXES / "kvfront"
INSTALL = REPO / "examples" / "kvfront" / "install.sh"
CONTRACT = "examples/kvfront/matrix.py"
DESTRUCTIVE = (
    "--safety-backup", "--lifecycle", "--fault-injection", "--auth-fail-closed",
    "--scenario", "aof-replica",
)  # fmt: skip

sys.path.insert(0, str(REPO))
from gate.testing.sshd import Sshd, write_inventory  # noqa: E402


def say(text: str) -> None:
    print(f"\n### {text}", flush=True)


def kvctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BOX / "kvctl"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def deploy() -> None:
    """A fresh box: the old one (if any) brought down and removed first."""
    if (BOX / "kvctl").exists():
        kvctl("down")
    shutil.rmtree(BOX, ignore_errors=True)
    subprocess.run([str(INSTALL), str(BOX), "--python", sys.executable], check=True)
    applied = kvctl("apply", "-y")
    print(applied.stdout.strip())
    if applied.returncode != 0:
        raise SystemExit(f"apply failed on {BOX}: {applied.stderr.strip()}")


def wait_healthy(timeout: float = 60) -> None:
    """Poll `kvctl status` until exit 0; a real signal, with a deadline."""
    deadline = time.monotonic() + timeout
    while (code := kvctl("status").returncode) != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{BOX.name} not healthy after {timeout:g}s (status exit {code})")
        time.sleep(0.2)  # sleep-ok: the demo's own poll interval, not gate code
    print(f"{BOX.name}: healthy")


def gate(*args: str) -> int:
    command = [sys.executable, "-m", "invoke", "gate", *args, "--matrix", CONTRACT]
    print("$ invoke gate " + " ".join(command[4:]), flush=True)
    return subprocess.run(command, cwd=REPO, check=False).returncode


def main() -> int:
    BOXES.mkdir(exist_ok=True)
    say("deploying the kvfront stack (nginx, webdis, redis) into boxes/kvfront")
    deploy()
    wait_healthy()
    sshd_dir = BOXES / "kvfront-sshd"
    shutil.rmtree(sshd_dir, ignore_errors=True)
    sshd_dir.mkdir()
    server = Sshd(sshd_dir)
    codes: list[int] = []
    try:
        say("1/3 kvfront: the box's live state, on the box itself")
        codes.append(gate("--local", "--dir", str(BOX), "--check"))
        say(f"2/3 kvfront: the config matrix over SSH (127.0.0.1:{server.port}), then restore")
        server.start()
        inventory = BOXES / "inventory"
        write_inventory(inventory, "kvfront", dir=str(BOX), **server.inventory_fields())
        codes.append(gate("--host", "kvfront", "--inventory", str(inventory)))
        say("3/3 kvfront: lifecycle, fault injection and auth-fail-closed behind a verified backup")
        codes.append(gate("--host", "kvfront", "--inventory", str(inventory), *DESTRUCTIVE))
    finally:
        server.stop()
        kvctl("down")
    failed = next((c for c in codes if c != 0), 0)
    say(f"kvfront demo {'passed' if not failed else 'FAILED'}: gate exit codes {codes}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
