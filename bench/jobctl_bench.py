"""How fast ``jobctl`` answers, as a user feels it (not a test).

1. ``jobctl status`` as a whole process, p50/p95 over N runs, next to a bare ``python3 -c pass``
   in the same run (the target: jobctl <= 50 ms where ``pass`` takes ~16 ms).
2. 200 clients connected at once, each asking ``status``: the time until all have answers.

The daemon side is the real ``ControlServer`` over the small test ``DaemonAPI``
(tests/control/fakeapi.py), served from a thread.

    python bench/jobctl_bench.py [--runs 30] [--clients 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jobd.control import protocol as p  # noqa: E402
from tests.control.conftest import serve  # noqa: E402

# What an installed console script runs (pip writes this), without runpy's cost of ``-m``.
SCRIPT = "import sys; from jobd.cli.jobctl import main; sys.exit(main())"


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of each run of ``cmd``."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
        )
        wall.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{cmd} failed: {done.stderr.decode()}")
    return wall, cpu


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def report(name: str, wall: list[float], cpu: list[float]) -> None:
    print(
        f"  {name:<34} wall p50 {statistics.median(wall):6.1f} ms  p95 {pct(wall, 0.95):6.1f}"
        f" ms   cpu p50 {statistics.median(cpu):6.1f} ms"
    )


def concurrent(path: str, clients: int) -> float:
    """Seconds from the first connect until all ``clients`` have their ``status`` answer."""
    t0 = time.perf_counter()
    socks = []
    for _ in range(clients):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        socks.append(s)
    for i, s in enumerate(socks):
        s.sendall(p.encode(p.request("status", None, i)))
    for s in socks:
        f = s.makefile("rb")
        assert b'"result"' in f.readline()
        f.close()
        s.close()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--clients", type=int, default=200)
    args = ap.parse_args()
    with serve(max_clients=4096, backlog=4096) as h:
        env = {**os.environ, "PYTHONPATH": str(REPO), "JOBD_SOCKET": str(h.path)}
        env.pop("NO_COLOR", None)
        # as installed: bytecode cached (pip compiles on install)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        print(
            f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
            f"load {os.getloadavg()[0]:.2f}; {args.runs} runs each"
        )
        script = [sys.executable, "-c", SCRIPT, "status"]
        cases = [
            ("python3 -c pass", [sys.executable, "-c", "pass"]),
            ("jobctl status (console script)", script),
            (
                "python -m jobd.cli.jobctl status",
                [sys.executable, "-m", "jobd.cli.jobctl", "status"],
            ),
            # without site: what an environment's .pth files (an editable install's
            # import finder, say) add to every start is left out
            ("python3 -S -c pass", [sys.executable, "-S", "-c", "pass"]),
            ("jobctl status, python3 -S", [sys.executable, "-S", *script[1:]]),
        ]
        p50 = {}
        for name, cmd in cases:
            timed(cmd, 3, env)  # warm the page cache
            wall, cpu = timed(cmd, args.runs, env)
            report(name, wall, cpu)
            p50[name] = statistics.median(wall)
        print(
            f"  jobctl's own cost (p50 over pass): "
            f"{p50['jobctl status (console script)'] - p50['python3 -c pass']:.1f} ms with site, "
            f"{p50['jobctl status, python3 -S'] - p50['python3 -S -c pass']:.1f} ms without"
        )
        rounds = [concurrent(str(h.path), args.clients) for _ in range(5)]
        print(
            f"  {args.clients} concurrent clients, all answered: "
            f"median {statistics.median(rounds) * 1000:.0f} ms, "
            f"worst {max(rounds) * 1000:.0f} ms (5 rounds)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
