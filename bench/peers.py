"""jobd beside APScheduler 3 (in memory), the same workloads in one sitting (not a test).

APScheduler runs in a virtualenv of its own (``--venv``, created with pip on first use), each
job with ``subprocess.run`` in a 32-thread pool, its job store in memory: it journals nothing,
where jobd fsyncs every run into its journal before and after it. Each workload runs
``--repeat`` times, jobd then APScheduler; the figures are printed with their ratio
(jobd / APScheduler: below 1 is better for times, sizes and CPU, above 1 for rates).

1. one job every second for ``--slots`` slots: due slot -> exec p50/p99 (``date +%s.%N`` as
   the job, so the time is read after exec);
2. ``--burst`` ``/bin/true`` jobs due at once: runs/s;
3. ``--jobs`` jobs loaded, none due (half cron once a year, half weekly): start-up to ready, RSS,
   CPU over ``--idle`` seconds idle.

jobd's side is ``core_bench.py``'s ``slot_latency``, ``daemon_throughput`` and ``many_jobs``.

    python bench/peers.py [--slots 30] [--burst 1000] [--jobs 10000] [--idle 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from core_bench import daemon_throughput, many_jobs, pct, slot_latency

from jobd.executors.local import LocalExecutor

APSCHEDULER = "APScheduler>=3.10,<4"
PARALLEL = 32

# Run by the virtualenv's python: ``peer.py MODE N [IDLE]``; prints one JSON line, or (mode
# "idle") "READY" once its jobs are scheduled, then sleeps until killed.
PEER = r"""
import json, subprocess, sys, threading, time
from datetime import datetime, timedelta, timezone
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler

mode, n = sys.argv[1], int(sys.argv[2])
sched = BackgroundScheduler(
    executors={"default": ThreadPoolExecutor(__PARALLEL__)},
    jobstores={"default": MemoryJobStore()},
    job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1000},
    timezone=timezone.utc,
)
lock, done, out = threading.Lock(), threading.Event(), []

def record(value):
    with lock:
        out.append(value)
        if len(out) >= n:
            done.set()

def date_job():
    p = subprocess.run(["date", "+%s.%N"], capture_output=True, check=True)
    t = float(p.stdout)
    record((t - int(t)) * 1000)  # the slots fall on whole seconds

def true_job():
    subprocess.run(["/bin/true"], check=True)
    record(time.time())

def noop():
    pass

if mode == "latency":
    first = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    sched.add_job(date_job, "interval", seconds=1, start_date=first)
    sched.start()
    done.wait()
    print(json.dumps(out[:n]))
elif mode == "burst":
    due = datetime.now(timezone.utc) + timedelta(seconds=2)
    for _ in range(n):
        sched.add_job(true_job, "date", run_date=due)
    sched.start()
    done.wait()
    print(json.dumps(n / (max(out) - due.timestamp())))
else:
    far = datetime.now(timezone.utc) + timedelta(days=180)  # as core_bench.many_jobs
    for i in range(n):
        if i % 2:
            sched.add_job(noop, "cron", minute=i % 60, hour=i % 24, day=far.day, month=far.month)
        else:
            sched.add_job(noop, "interval", weeks=1)
    sched.start()
    print("READY", flush=True)
    time.sleep(3600)
sched.shutdown(wait=True)
""".replace("__PARALLEL__", str(PARALLEL))


def peer_env(venv: Path) -> Path:
    """The virtualenv's python, with APScheduler 3 installed (once)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", APSCHEDULER],
            check=True,
        )
    return python


def peer_run(python: Path, script: Path, mode: str, n: int) -> object:
    p = subprocess.run(
        [str(python), str(script), mode, str(n)],
        capture_output=True,
        check=True,
        text=True,
        timeout=600,
    )
    return json.loads(p.stdout.splitlines()[-1])


def peer_idle(python: Path, script: Path, n: int, idle: float) -> tuple[float, float, float]:
    """Start-up to ready (s), RSS (MB), idle CPU (% of a core), as ``many_jobs`` measures."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), str(script), "idle", str(n)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("APScheduler did not start")
        startup = time.perf_counter() - t0
        time.sleep(1)  # as many_jobs: let start-up work settle
        rss = rss_mb(proc.pid)
        c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(idle)
        idle_pct = (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0) * 100
    finally:
        proc.kill()
        proc.wait(30)
    return startup, rss, idle_pct


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]) / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "   --"


def main(argv: list[str] | None = None) -> None:
    LocalExecutor.adopt_orphans()  # jobd's side runs as ``jobd daemon`` does
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--slots", type=int, default=30, help="one-second slots sampled")
    ap.add_argument("--burst", type=int, default=1000, help="jobs due at once")
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs loaded")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "jobd-peers-apscheduler3",
        help="APScheduler's virtualenv (made on first use)",
    )
    ap.add_argument("--only", choices=("latency", "burst", "idle"))
    a = ap.parse_args(argv)
    python = peer_env(a.venv)
    version = subprocess.run(
        [str(python), "-c", "import apscheduler; print(apscheduler.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load:.1f};"
        f" APScheduler {version} (memory store, {PARALLEL} threads, subprocess.run)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "peer.py"
        script.write_text(PEER)
        if a.only in (None, "latency"):
            print(f"[one job every second, {a.slots} slots] due slot -> exec, ms")
            for _ in range(a.repeat):
                ours = anyio.run(slot_latency, a.slots, 1)
                theirs = peer_run(python, script, "latency", a.slots)
                assert isinstance(theirs, list)
                j50, j99 = statistics.median(ours), pct(ours, 0.99)
                p50, p99 = statistics.median(theirs), pct(theirs, 0.99)
                print(
                    f"  jobd p50 {j50:6.2f} p99 {j99:6.2f}   APScheduler p50 {p50:6.2f}"
                    f" p99 {p99:6.2f}   ratio p50 {ratio(j50, p50)} p99 {ratio(j99, p99)}"
                )
        if a.only in (None, "burst"):
            print(f"[{a.burst} /bin/true due at once] runs/s")
            for _ in range(a.repeat):
                ours_rate, ok = anyio.run(daemon_throughput, a.burst, PARALLEL)
                theirs_rate = peer_run(python, script, "burst", a.burst)
                assert isinstance(theirs_rate, float)
                print(
                    f"  jobd {ours_rate:7.0f} ({ok} succeeded)   APScheduler {theirs_rate:7.0f}"
                    f"   ratio {ratio(ours_rate, theirs_rate)}"
                )
        if a.only in (None, "idle"):
            print(f"[{a.jobs} jobs loaded, none due] start-up to ready, RSS, idle CPU")
            for _ in range(a.repeat):
                s1, r1, c1 = many_jobs(a.jobs, a.idle)
                s2, r2, c2 = peer_idle(python, script, a.jobs, a.idle)
                print(
                    f"  jobd {s1:5.2f} s {r1:5.1f} MB {c1:5.2f} %   APScheduler {s2:5.2f} s"
                    f" {r2:5.1f} MB {c2:5.2f} %   ratio {ratio(s1, s2)} {ratio(r1, r2)}"
                    f" {ratio(c1, c2)}"
                )


if __name__ == "__main__":
    main()
