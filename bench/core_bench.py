"""The durable core, measured (not a test). Prints figures and ratios against baselines
measured in the same run:

1. 1,000 ``/bin/true`` runs due at once: journaled runs/s through the whole daemon (bus,
   intake, journal with fsync, dispatch, spawn, result) vs. spawning the same processes bare
   with the same concurrency.
2. due slot -> exec latency p50/p99 (``date +%s.%N`` as the job, so the time is read after
   exec) vs. the same spawn bare.
3. 10,000 loaded jobs: start-up to READY, RSS, and CPU used while idle.

    python bench/core_bench.py [--runs 1000] [--parallel 32] [--idle 30] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from jobd._enums import TriggerKind
from jobd.config.loader import load_config
from jobd.executors.contain import delegated_cgroup
from jobd.executors.local import LocalExecutor
from jobd.executors.process import process_start_ticks
from jobd.supervisor.daemon import Daemon
from jobd.supervisor.events import Trigger

_CHUNK = 64 * 1024


def write_config(root: Path, jobs: str, parallel: int) -> Path:
    (root / "jobs.d").mkdir(parents=True, exist_ok=True)
    (root / "jobs.d" / "bench.toml").write_text(jobs)
    cfg = root / "jobd.toml"
    cfg.write_text(
        textwrap.dedent(f"""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        max_parallel = {parallel}
        timezone = "UTC"
        """)
    )
    return cfg


def bare_posix_spawn(n: int, parallel: int) -> float:
    """Runs/s with ``os.posix_spawn`` (new session) and a pidfd wait: the floor."""
    t0 = time.perf_counter()
    alive: list[int] = []
    env = dict(os.environ)
    for _ in range(n):
        if len(alive) >= parallel:
            fd = alive.pop(0)
            select.select([fd], [], [])
            os.waitid(os.P_PIDFD, fd, os.WEXITED)
            os.close(fd)
        pid = os.posix_spawn("/bin/true", ["/bin/true"], env, setsid=True)
        alive.append(os.pidfd_open(pid))
    for fd in alive:
        os.waitid(os.P_PIDFD, fd, os.WEXITED)
        os.close(fd)
    return n / (time.perf_counter() - t0)


def bare_with_the_work(n: int, parallel: int) -> float:
    """Runs/s of ``bare_posix_spawn`` plus the system work jobd does for each run, in straight
    Python with no event loop: the output pipe, the ``JOBD_OUTPUT`` file made and removed, the
    start ticks read, a cgroup leaf entered and removed (where this process may make one), and
    the run's rows in SQLite (WAL, ``synchronous = FULL``), group-committed: each round is one
    fsync'd commit holding the results of the runs just reaped and the "running" rows of the
    runs about to start. What is left between this and jobd is the daemon's own Python."""
    base = delegated_cgroup()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "j.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, state TEXT, pid INT, code INT)")
        alive: dict[int, tuple[int, int, str, Path | None]] = {}  # pidfd -> run id, pipe, ...
        done: list[tuple[str, int | None, int | None, int]] = []
        t0 = time.perf_counter()
        started = 0
        while started < n or alive:
            wave = range(started, min(n, started + parallel - len(alive)))
            started += len(wave)
            with db:  # the results of the last round, and this round's "running" rows
                db.executemany(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                    [
                        *((i, "running", None, None) for i in wave),
                        *((i, s, p, c) for s, p, c, i in done),
                    ],
                )
            done = []
            for rid in wave:
                out = f"{tmp}/{rid}.out"
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
                os.fchmod(fd, 0o640)
                os.close(fd)
                r, w = os.pipe()
                dup = [(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
                pid = os.posix_spawn("/bin/true", ["/bin/true"], env, setsid=True, file_actions=dup)
                os.close(w)
                leaf = None if base is None else base / f"jobd-bench-{os.getpid()}-{rid}"
                if leaf is not None:
                    os.mkdir(leaf)
                    with contextlib.suppress(ProcessLookupError):
                        (leaf / "cgroup.procs").write_text(str(pid))
                process_start_ticks(pid)
                alive[os.pidfd_open(pid)] = (rid, r, out, leaf)
            ready, _, _ = select.select(list(alive), [], [])
            for fd in ready:
                rid, r, out, leaf = alive.pop(fd)
                status = os.waitid(os.P_PIDFD, fd, os.WEXITED)
                os.close(fd)
                os.read(r, _CHUNK)
                os.close(r)
                while leaf is not None:
                    try:
                        os.rmdir(leaf)
                        leaf = None
                    except OSError as exc:  # its last process has only just gone
                        if exc.errno != errno.EBUSY:
                            raise
                os.unlink(out)
                done.append(
                    (
                        "done",
                        status.si_pid if status else None,
                        status.si_status if status else None,
                        rid,
                    )
                )
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                [(i, s, p, c) for s, p, c, i in done],
            )
        rate = n / (time.perf_counter() - t0)
        db.close()
    return rate


def bare_spawn(n: int, parallel: int) -> float:
    """Runs/s spawning /bin/true with up to ``parallel`` alive at once."""
    t0 = time.perf_counter()
    alive: list[subprocess.Popen[bytes]] = []
    for _ in range(n):
        if len(alive) >= parallel:
            alive.pop(0).wait()
        alive.append(
            subprocess.Popen(
                ["/bin/true"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    for p in alive:
        p.wait()
    return n / (time.perf_counter() - t0)


async def daemon_throughput(n: int, parallel: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            write_config(
                Path(tmp),
                textwrap.dedent("""\
            [jobs.t]
            command = ["/bin/true"]
            overlap = "allow"
            """),
                parallel,
            )
        )
        d = Daemon(config, control=False, watch_jobs_dir=False, handle_signals=False)
        async with anyio.create_task_group() as tg:
            await tg.start(d.run)
            t0 = time.perf_counter()
            for _ in range(n):
                await d._post(Trigger(job_id="t", kind=TriggerKind.MANUAL))
            await d.wait_idle()
            elapsed = time.perf_counter() - t0
            runs = await d.journal.list_runs(limit=None)
            ok = sum(1 for r in runs if r.state.value == "succeeded")
            d.stop()
        return n / elapsed, ok


async def slot_latency(seconds: int, jobs: int) -> list[float]:
    """Latency from each slot to the job's own clock reading right after exec, in ms."""
    with tempfile.TemporaryDirectory() as tmp:
        text = "".join(
            f'[jobs.j{i}]\nevery = "1s"\ncommand = ["date", "+%s.%N"]\n' for i in range(jobs)
        )
        config = load_config(write_config(Path(tmp), text, max(16, jobs)))
        d = Daemon(config, control=False, watch_jobs_dir=False, handle_signals=False)
        async with anyio.create_task_group() as tg:
            await tg.start(d.run)
            await anyio.sleep(seconds)
            d.stop()
        out: list[float] = []
        async with d.journal:
            runs = await d.journal.list_runs(limit=None)
        for r in runs:
            if r.scheduled_for is None or r.log_path is None:
                continue
            for line in (await anyio.Path(r.log_path).read_text()).splitlines():
                if line[:1].isdigit():
                    t = datetime.fromtimestamp(float(line), UTC)
                    out.append((t - r.scheduled_for) / timedelta(milliseconds=1))
        return out


IDLE_GAP = 0.5  # seconds idle before each isolated spawn: a slot finds the machine idle


def bare_latency(n: int, gap: float = 0.0) -> list[float]:
    """The spawn of ``date`` to its clock reading, ``n`` times; with ``gap``, each after that
    long idle, as a slot comes (on a VM whose idle CPUs sleep deeply, the spawn and the new
    process's start cost more then than back to back)."""
    out = []
    for _ in range(n):
        time.sleep(gap)
        t0 = time.time()
        p = subprocess.run(
            ["date", "+%s.%N"], capture_output=True, check=True, start_new_session=True
        )
        out.append((float(p.stdout) - t0) * 1000)
    return out


def bare_latency_burst(bursts: int, jobs: int, gap: float = 0.0) -> list[float]:
    """The floor for ``jobs`` due on one instant: spawned back to back from one thread, each
    job's clock reading after exec, from the instant the first spawn began; each burst after
    ``gap`` seconds idle."""
    out = []
    for _ in range(bursts):
        time.sleep(gap)
        t0 = time.time()
        procs = [
            subprocess.Popen(
                ["date", "+%s.%N"], stdout=subprocess.PIPE, close_fds=True, start_new_session=True
            )
            for _ in range(jobs)
        ]
        for p in procs:
            stdout, _ = p.communicate()
            out.append((float(stdout) - t0) * 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


FAR = datetime.now(UTC) + timedelta(days=180)  # no job of ``many_jobs`` is due before it


def many_jobs(n: int, idle: float) -> tuple[float, float, float]:
    """Start-up to READY (s), RSS (MB), idle CPU (% of a core) for ``n`` loaded jobs, none
    due while measured: half cron once a year (on a day ~180 days away), half weekly
    (``every = "week"``: one of 5,000 falls every ~2 minutes, so rarely in the window; the
    runs made in it are counted and printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        jobs = []
        for i in range(n):
            trig = (
                f'cron = "{i % 60} {i % 24} {FAR.day} {FAR.month} *"' if i % 2 else 'every = "week"'
            )
            jobs.append(f'[jobs.job{i}]\n{trig}\ncommand = ["/bin/true"]\n')
        cfg = write_config(root, "", 8)
        (root / "jobs.d" / "bench.toml").unlink()  # empty: its jobs are in the files below
        for f in range(n // 100):
            (root / "jobs.d" / f"f{f:03}.toml").write_text("".join(jobs[f * 100 : (f + 1) * 100]))
        sock_path = str(root / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": sock_path, "JOBD_LOG_LEVEL": "WARNING"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "jobd", "--config", str(cfg)], env=env)
        while b"READY=1" not in sock.recv(4096):
            pass
        startup = time.perf_counter() - t0
        time.sleep(1)  # let start-up work settle
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = (
            int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
            / 1024
        )

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        c0, w0 = cpu(), time.perf_counter()
        time.sleep(idle)
        idle_pct = (cpu() - c0) / (time.perf_counter() - w0) * 100
        proc.terminate()
        proc.wait(30)
        sock.close()
        with sqlite3.connect(root / "var" / "jobd.db") as db:
            (ran,) = db.execute("SELECT count(*) FROM runs").fetchone()
        if ran:
            print(f"  ({ran} weekly runs fell due while measured: the idle figure includes them)")
        return startup, rss, idle_pct


def main() -> None:
    # A child subreaper, as ``jobd daemon`` is: without, the embedded daemon's executor scans
    # every process's environment after every run (as one embedded in a test does).
    LocalExecutor.adopt_orphans()
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=20, help="latency: how long to sample")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument(
        "--only",
        choices=("throughput", "latency", "scale"),
        action="append",
        help="run only these parts (repeatable); all by default",
    )
    a = ap.parse_args()
    parts = set(a.only or ("throughput", "latency", "scale"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")

    if "throughput" in parts:
        throughput(a.runs, a.parallel)
    if "latency" in parts:
        latency(a.seconds)
    if "scale" in parts:
        scale(a.jobs, a.idle)


def throughput(runs: int, parallel: int) -> None:
    bare = bare_spawn(runs, parallel)
    floor = bare_posix_spawn(runs, parallel)
    work = bare_with_the_work(runs, parallel)
    rate, ok = anyio.run(daemon_throughput, runs, parallel)
    print(f"[throughput] {runs} /bin/true due at once, max_parallel {parallel}")
    print(f"  bare Popen           {bare:8.0f} runs/s")
    print(f"  bare posix_spawn     {floor:8.0f} runs/s")
    print(f"  + jobd's system work {work:8.0f} runs/s  ({work / floor:.2f}x posix_spawn)")
    print(
        f"  jobd, journaled      {rate:8.0f} runs/s  ({ok} succeeded)  "
        f"ratio {rate / bare:.2f}x Popen, {rate / floor:.2f}x posix_spawn, "
        f"{rate / work:.2f}x the system work"
    )


def latency(seconds: int) -> None:
    lat = anyio.run(slot_latency, seconds, 1)
    burst = anyio.run(slot_latency, 10, 20)
    floor = bare_latency(200)
    floor_idle = bare_latency(20, IDLE_GAP)
    floor_burst = bare_latency_burst(20, 20)
    floor_burst_idle = bare_latency_burst(5, 20, IDLE_GAP)
    print(
        f"[latency] due slot -> exec: one job every 1s for {seconds}s; and 20 jobs whose "
        'slots fall on the same instant (every = "1s" puts all at .000)'
    )
    for name, xs in (
        ("bare spawn floor", floor),
        (f"  the same, {IDLE_GAP:g}s idle", floor_idle),
        ("jobd, one job", lat),
        ("bare floor, 20 at once", floor_burst),
        (f"  the same, {IDLE_GAP:g}s idle", floor_burst_idle),
        ("jobd, 20 at once", burst),
    ):
        if xs:
            print(
                f"  {name:<24} p50 {statistics.median(xs):6.2f} ms  p99 {pct(xs, 0.99):6.2f} ms"
                f"  max {max(xs):6.2f} ms  (n={len(xs)})"
            )


def idle_floor(idle: float) -> float:
    """% of a core used by a bare asyncio loop that wakes once a second, as the daemon's loop
    monitor does: what one wake-up a second costs on this machine."""
    code = (
        "import asyncio\nasync def m():\n    while True: await asyncio.sleep(1)\nasyncio.run(m())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(1)
        stat = Path(f"/proc/{proc.pid}/stat")

        def cpu() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        c0, w0 = cpu(), time.perf_counter()
        time.sleep(idle)
        return (cpu() - c0) / (time.perf_counter() - w0) * 100
    finally:
        proc.kill()
        proc.wait()


def scale(jobs: int, idle_s: float) -> None:
    startup, rss, idle = many_jobs(jobs, idle_s)
    floor = idle_floor(idle_s)
    print(f"[scale] {jobs} loaded jobs")
    print(f"  start-up to READY    {startup:6.2f} s")
    print(f"  RSS                  {rss:6.1f} MB")
    print(f"  idle CPU over {idle_s:.0f}s   {idle:6.2f} % of a core")
    print(f"  bare asyncio loop waking once a second, same {idle_s:.0f}s: {floor:.2f} % of a core")


if __name__ == "__main__":
    main()
