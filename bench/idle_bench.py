"""Idle, reload and ``jobctl`` start-up, measured on a real daemon (not a test).

1. Idle CPU: the daemon with N loaded jobs (1 and 10,000 by default) and nothing due, CPU
   ticks from ``/proc/<pid>/stat`` over ``--idle`` seconds, as % of one core.
2. Reload latency: a job file written -> the daemon's ``READY=1`` after its reload (read from
   its ``$NOTIFY_SOCKET``, so nothing polls), p50/max over ``--reloads`` writes.
3. Shutdown: SIGTERM -> exit.
4. ``jobctl status`` as the README installs it (the venv's console script), whole process,
   against the running daemon, p50/p95 over ``--runs``, next to ``python3 -S -c pass`` and
   ``python3 -c pass`` measured in the same sitting.
5. The daemon's own longest loop stall, as ``jobctl status --json`` reports it.

    python bench/idle_bench.py [--idle 30] [--jobs 1,10000] [--reloads 15] [--runs 30]
                               [--venv DIR]...   # also DIR/bin/jobctl, e.g. a plain install
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def write_jobs(jobs_dir: Path, n: int) -> None:
    jobs = []
    for i in range(n):
        # nothing due for a day or more: an idle daemon
        trig = f'cron = "{i % 60} {i % 24} 1 1 *"' if i % 2 else 'every = "week"'
        jobs.append(f'[jobs.job{i}]\n{trig}\ncommand = ["/bin/true"]\n')
    for f in range(0, n, 100):
        (jobs_dir / f"f{f // 100:03}.toml").write_text("".join(jobs[f : f + 100]))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


class Daemon:
    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        (root / "jobs.d").mkdir(parents=True)
        write_jobs(root / "jobs.d", n)
        cfg = root / "jobd.toml"
        cfg.write_text(
            textwrap.dedent("""\
            [daemon]
            jobs_dir = "jobs.d"
            state_dir = "var"
            socket = "var/jobd.sock"
            timezone = "UTC"
            """)
        )
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(root / "notify.sock"))
        self.sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": str(root / "notify.sock")}
        env["JOBD_LOG_LEVEL"] = "WARNING"
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([str(BIN / "jobd"), "--config", str(cfg)], env=env)
        self.wait_ready()
        self.startup = time.perf_counter() - t0
        self.socket = str(root / "var" / "jobd.sock")

    def wait_ready(self) -> None:
        while b"READY=1" not in self.sock.recv(4096):
            pass

    def cpu(self) -> tuple[float, dict[str, int]]:
        """CPU seconds of all the daemon's threads (schedstat: nanoseconds, where the ticks
        of /proc/<pid>/stat count 10 ms each), and how often each thread (by name) was woken
        (voluntary context switches)."""
        ns = 0
        switches: dict[str, int] = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                ns += int((task / "schedstat").read_text().split()[0])
                status = (task / "status").read_text()
            except OSError:
                continue  # a thread that just ended
            line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt"))
            name = f"{status.splitlines()[0].split(None, 1)[1]}/{task.name}"
            switches[name] = int(line.split()[1])
        return ns / 1e9, switches

    def ticks(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def idle_cpu(self, seconds: float) -> tuple[float, float, float, str]:
        """% of a core (schedstat), % of a core (stat ticks), wake-ups a second, and which
        threads woke."""
        (c0, s0), t0, w0 = self.cpu(), self.ticks(), time.perf_counter()
        time.sleep(seconds)
        (c1, s1), t1, w1 = self.cpu(), self.ticks(), time.perf_counter()
        wall = w1 - w0
        woke = {k: v - s0.get(k, 0) for k, v in s1.items()}
        by = ", ".join(f"{k} {v / wall:.1f}/s" for k, v in sorted(woke.items()) if v)
        return (c1 - c0) / wall * 100, (t1 - t0) / wall * 100, sum(woke.values()) / wall, by

    def reloads(self, count: int) -> list[float]:
        out = []
        for i in range(count):
            f = self.root / "jobs.d" / "zz-extra.toml"
            t0 = time.perf_counter()
            f.write_text(f'[jobs.extra]\nevery = "week"\ncommand = ["/bin/echo", "{i}"]\n')
            self.wait_ready()
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.3)
        return out

    def status(self) -> dict[str, object]:
        env = {**os.environ, "JOBD_SOCKET": self.socket}
        done = subprocess.run(
            [str(BIN / "jobctl"), "--json", "status"], env=env, capture_output=True, check=True
        )
        result: dict[str, object] = json.loads(done.stdout)
        return result

    def stop(self) -> float:
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.sock.close()
        return time.perf_counter() - t0


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> list[float]:
    for _ in range(3):  # warm the page cache
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    wall = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
        wall.append((time.perf_counter() - t0) * 1000)
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--jobs", default="1,10000")
    ap.add_argument("--reloads", type=int, default=15)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument(
        "--venv",
        action="append",
        default=[],
        help="also time the jobctl of this virtualenv (say, a non-editable install)",
    )
    a = ap.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f} (a shared machine: figures wander)"
    )
    for n in (int(x) for x in a.jobs.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            d = Daemon(Path(tmp), n)
            print(f"{n} jobs: start-up to READY {d.startup:.2f} s")
            time.sleep(2)  # let start-up work settle
            cpu, ticks, wakes, by = d.idle_cpu(a.idle)
            print(
                f"  idle over {a.idle:.0f} s: CPU {cpu:6.3f} % of a core"
                f" (stat ticks {ticks:.3f} %),"
                f" {wakes:.1f} wake-ups/s ({by or 'none'})"
            )
            if n <= 100 and a.reloads:
                r = d.reloads(a.reloads)
                print(
                    f"  job file written -> reloaded  p50 {statistics.median(r):6.1f} ms"
                    f"  max {max(r):6.1f} ms"
                )
            if n <= 100 and a.runs:
                env = {**os.environ, "JOBD_SOCKET": d.socket}
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                for venv in [BIN, *(Path(v) / "bin" for v in a.venv)]:
                    print(f"  in {venv.parent}:")
                    py = str(venv / "python3")
                    for name, cmd in (
                        ("python3 -S -c pass", [py, "-S", "-c", "pass"]),
                        ("python3 -c pass", [py, "-c", "pass"]),
                        ("jobctl status (console script)", [str(venv / "jobctl"), "status"]),
                    ):
                        w = timed(cmd, a.runs, env)
                        print(
                            f"    {name:<32} p50 {statistics.median(w):6.1f} ms"
                            f"  p95 {pct(w, 0.95):6.1f} ms"
                        )
            st = d.status()
            stall = {k: v for k, v in st.items() if "stall" in k}
            if stall:
                print(f"  loop stall (jobctl status): {stall}")
            print(f"  SIGTERM -> exit {d.stop() * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
