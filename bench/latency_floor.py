"""Where one persistent-channel command's time goes: the floor under each layer.

    .venv/bin/python -m bench.latency_floor [--n 300]

Times, on this machine and a throwaway loopback sshd, the same `true` through each layer
of gate's persistent channel, innermost first, so the differences say what each adds:

    spawn /bin/sh -c true   posix_spawn (setsid) + wait on its pidfd, nothing else
    far end, in process     gate.shellhost.run_command: the same plus pipes and the pump
    ssh round trip          one small write and its echo through paramiko, sshd and `cat`
    channel.run             gate.channel.PersistentChannel.run: one framed command
    SSHTarget.run           what the gate calls: the above plus classification

Figures, never assertions (docs/performance.md, "Per-command latency").
"""

from __future__ import annotations

import argparse
import os
import select
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.command_latency import gate_target
from bench.stats import median_ms, p95_ms
from gate import shellhost
from gate.channel import PersistentChannel
from gate.testing.sshd import Sshd

SHELL = ["/bin/sh", "-c", "true"]


def bare_spawn() -> None:
    pid = os.posix_spawn(SHELL[0], SHELL, os.environ, setsid=True)
    exit_fd = os.pidfd_open(pid)
    select.select([exit_fd], [], [])
    os.close(exit_fd)
    os.waitpid(pid, 0)


def far_end() -> None:
    shellhost.run_command("true", 30.0, None)


def timed(layers: dict[str, Callable[[], object]], n: int, rounds: int = 10) -> list[str]:
    """Each layer's median and p95 over `n` calls, the layers taking turns in `rounds`
    rounds (the first round of each is warm-up): a slow spell of the machine then falls on
    every layer alike, not on whichever ran at that moment."""
    samples: dict[str, list[float]] = {name: [] for name in layers}
    for round_ in range(rounds + 1):
        for name, call in layers.items():
            for _ in range(max(1, n // rounds)):
                started = time.perf_counter()
                call()
                if round_:
                    samples[name].append(time.perf_counter() - started)
    return [
        f"{name:24s} median {median_ms(times):.3f} ms  p95 {p95_ms(times):.3f} ms"
        for name, times in samples.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="timed runs per layer")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory(prefix="gate-floor-") as tmp:
        sshd = Sshd(Path(tmp))
        sshd.start()
        try:
            with gate_target(sshd, persistent=True) as target:
                echo = target.transport.open_session()
                echo.exec_command("cat")
                channel = PersistentChannel(target.transport)

                def round_trip() -> None:
                    echo.sendall(b"x\n")
                    echo.recv(16)

                lines = timed(
                    {
                        "spawn /bin/sh -c true": bare_spawn,
                        "far end, in process": far_end,
                        "ssh round trip": round_trip,
                        "channel.run": lambda: channel.run("true", timeout=30, stdin=""),
                        "SSHTarget.run": lambda: target.run("true", timeout=30),
                    },
                    n,
                )
                echo.close()
                channel.close()
        finally:
            sshd.stop()
    print(f"{n} runs per layer; load average at the end: {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
