"""`make demo`: deploy the sample stack and gate it, on this machine and over SSH.

1. installs two sample-stack boxes under boxes/ (git-ignored): `demo`, the box under
   test, and `demo-remote`, whose node stands in for a remote node endpoint;
2. `invoke gate --local --dir boxes/demo --check`;
3. starts a throwaway OpenSSH sshd on 127.0.0.1 (its own keys, a free port) and writes
   boxes/inventory/demo.toml for it;
4. `invoke gate --host demo --check`, then the whole matrix over SSH with every fact;
5. the destructive phases over SSH behind a verified backup: `--safety-backup --lifecycle
   --fault-injection --auth-fail-closed` (with one scenario of the matrix);
6. brings everything down. Exit code: the first gate run that did not pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOXES = REPO / "boxes"
INSTALL = REPO / "examples" / "stack" / "install.sh"
TIME_SCALE = "0.2"
DESTRUCTIVE = (
    "--safety-backup", "--lifecycle", "--fault-injection", "--auth-fail-closed",
    "--scenario", "local-defaults",
)  # fmt: skip

sys.path.insert(0, str(REPO))
from gate.testing.sshd import Sshd, write_inventory  # noqa: E402


def say(text: str) -> None:
    print(f"\n### {text}", flush=True)


def stackctl(box: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(box / "stackctl"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def deploy(name: str) -> Path:
    """A fresh box: the old one (if any) brought down and removed first."""
    box = BOXES / name
    if (box / "stackctl").exists():
        stackctl(box, "down")
    shutil.rmtree(box, ignore_errors=True)
    subprocess.run(
        [str(INSTALL), str(box), "--time-scale", TIME_SCALE, "--python", sys.executable],
        check=True,
    )
    applied = stackctl(box, "apply", "-y")
    print(applied.stdout.strip())
    if applied.returncode != 0:
        raise SystemExit(f"apply failed on {box}: {applied.stderr.strip()}")
    return box


def wait_healthy(box: Path, timeout: float = 120) -> None:
    """Poll `stackctl status` until exit 0; a real signal, with a deadline."""
    deadline = time.monotonic() + timeout
    while (code := stackctl(box, "status").returncode) != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{box.name} not healthy after {timeout:g}s (status exit {code})")
        time.sleep(0.5)  # sleep-ok: the demo's own poll interval, not gate code
    print(f"{box.name}: healthy")


def gate(*args: str) -> int:
    command = [sys.executable, "-m", "invoke", "gate", *args]
    print("$ invoke gate " + " ".join(args), flush=True)
    return subprocess.run(command, cwd=REPO, check=False).returncode


def main() -> int:
    BOXES.mkdir(exist_ok=True)
    say("deploying the sample stack into boxes/demo and boxes/demo-remote")
    box, remote = deploy("demo"), deploy("demo-remote")
    wait_healthy(box)
    wait_healthy(remote)
    node_port = json.loads((remote / "config.json").read_text())["node"]["rpc_port"]
    alt_data = BOXES / "demo-alt-data"
    shutil.rmtree(alt_data, ignore_errors=True)
    alt_data.mkdir()
    sshd_dir = BOXES / "demo-sshd"
    shutil.rmtree(sshd_dir, ignore_errors=True)
    sshd_dir.mkdir()
    server = Sshd(sshd_dir)
    codes: list[int] = []
    try:
        say("1/4 the box's live state, on the box itself")
        codes.append(gate("--local", "--dir", str(box), "--check"))
        say(f"2/4 the same over SSH to a throwaway sshd on 127.0.0.1:{server.port}")
        server.start()
        inventory = BOXES / "inventory"
        write_inventory(inventory, "demo", dir=str(box), **server.inventory_fields())
        codes.append(gate("--host", "demo", "--inventory", str(inventory), "--check"))
        say("3/4 the config matrix over SSH, then restore and prove")
        codes.append(
            gate(
                "--host", "demo", "--inventory", str(inventory),
                "--fact", f"remote_node_url=http://127.0.0.1:{node_port}",
                "--fact", f"alt_data_dir={alt_data}",
            )
        )  # fmt: skip
        say("4/4 lifecycle, fault injection and auth-fail-closed behind a verified backup")
        codes.append(gate("--host", "demo", "--inventory", str(inventory), *DESTRUCTIVE))
    finally:
        server.stop()
        for each in (box, remote):
            stackctl(each, "down")
    failed = next((c for c in codes if c != 0), 0)
    say(f"demo {'passed' if not failed else 'FAILED'}: gate exit codes {codes}; see results/")
    return failed


if __name__ == "__main__":
    sys.exit(main())
