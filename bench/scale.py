"""jobd at scale, measured (not a test). Prints figures, each repeated ``--repeat`` times:

1. ``--jobs`` loaded jobs (half cron, half ``every``): start-up to READY, RSS, idle CPU (the
   daemon as a process, ``core_bench.many_jobs``); and the time to plan a restart after a day
   down with ``catchup = "latest"`` (``plan_due`` for every job, cursors a day old).
2. a journal of ``--runs`` finished runs over ``--run-jobs`` jobs, written straight into SQLite
   with the journal's own schema (``MIGRATIONS``) and row encoding (``encode_run``) and kept
   in ``/tmp/jobd-scale-<runs>/`` for the next time: the daemon's start-up to READY on it;
   ``jobctl runs JOB`` and ``jobctl why JOB`` p50 as whole processes, against ``jobctl status``
   in the same run; a retention prune (on a copy), once with nothing to delete and once
   deleting the oldest ``--prune-fraction`` of the runs: its time, the longest event-loop stall
   while it runs (a 1 ms ticker in the same loop) and the slowest durable write made meanwhile.

    python bench/scale.py [--jobs 100000] [--runs 10000000] [--run-jobs 1000] [--idle 30]
                          [--repeat 3] [--only jobs|runs]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
from core_bench import many_jobs, pct, write_config  # bench/ is the script's directory

from jobd._enums import Catchup, RunState, TriggerKind
from jobd.config.loader import load_config, load_jobs
from jobd.journal import RunRecord
from jobd.journal._codec import RUN_COLUMNS, encode_run, to_micros
from jobd.journal.sqlite import MIGRATIONS, SQLiteJournal
from jobd.triggers.catchup import plan_due

SPAN = timedelta(days=30)  # the built journal's runs are spread over this span, ending now
JOBCTL = [str(Path(sys.executable).with_name("jobctl"))]


def job_text(i: int) -> str:
    """Job ``i`` of the restart plan: half cron daily, half ``every`` hour/day/week, so that a
    day down leaves slots to plan (``core_bench.many_jobs``, measured idle, has none due)."""
    trig = (
        f'cron = "{i % 60} {i % 24} * * *"'
        if i % 2
        else f'every = "{["hour", "day", "week"][i % 3]}"'
    )
    return f'[jobs.job{i}]\n{trig}\ncommand = ["/bin/true"]\ncatchup = "latest"\n'


def plan_restart(n: int) -> tuple[float, int]:
    """Seconds to plan every job's missed slots after a day down with ``catchup = "latest"``,
    and the catch-up runs planned (one per job whose trigger fell due in that day)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = ["".join(job_text(i) for i in range(f, min(n, f + 100))) for f in range(0, n, 100)]
        cfg = write_config(root, files[0], 8)
        for f, text in enumerate(files[1:], 1):
            (root / "jobs.d" / f"f{f:04}.toml").write_text(text)
        jobs = list(load_jobs(load_config(cfg)).jobs.values())
    assert len(jobs) == n and all(j.catchup is Catchup.LATEST for j in jobs)
    now = datetime.now(UTC)
    cursor = now - timedelta(days=1)
    t0 = time.perf_counter()
    runs = 0
    for job in jobs:
        plan = plan_due(
            job.time_triggers,
            cursor=cursor,
            now=now,
            catchup=job.catchup,
            start_deadline=job.start_deadline,
            at_start=True,
        )
        runs += len(plan.runs)
    return time.perf_counter() - t0, runs


# -- the big journal --------------------------------------------------------------------------


def build_journal(db: Path, runs: int, jobs: int) -> None:
    """``runs`` finished runs, round robin over ``jobs`` jobs, queued evenly over the last
    ``SPAN``; every 20th failed. Written with the journal's schema and encoding."""
    now = datetime.now(UTC)
    start = to_micros(now - SPAN, "start")
    step = to_micros(now, "now") - start
    template = encode_run(
        RunRecord(
            run_id=1,
            job_id="job0",
            trigger=TriggerKind.CRON,
            state=RunState.SUCCEEDED,
            queued_at=now,
            scheduled_for=now,
            started_at=now,
            finished_at=now,
            exit_code=0,
            pid=1000,
            pid_start=1,
            log_path="/var/lib/jobd/logs/job0/1.log",
        )
    )
    col = {c: i for i, c in enumerate(RUN_COLUMNS)}

    def rows() -> Iterator[tuple[object, ...]]:
        row = list(template)
        for i in range(1, runs + 1):
            job = f"job{i % jobs:04}"
            at = start + step * i // runs
            failed = i % 20 == 0
            row[col["run_id"]] = i
            row[col["job_id"]] = job
            row[col["state"]] = "failed" if failed else "succeeded"
            row[col["exit_code"]] = 1 if failed else 0
            row[col["queued_at"]] = row[col["scheduled_for"]] = at
            row[col["started_at"]] = at + 1_000
            row[col["finished_at"]] = at + 500_000
            row[col["pid"]] = 1000 + i % 30000
            row[col["log_path"]] = f"/var/lib/jobd/logs/{job}/{i}.log"
            yield tuple(row)

    tmp = db.with_name(db.name + ".building")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    for version, script in enumerate(MIGRATIONS, 1):
        conn.executescript(
            f"BEGIN; {script}; INSERT INTO schema_version (version) VALUES ({version}); COMMIT;"
        )
    sql = (
        f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
    )
    it = rows()
    conn.execute("BEGIN")
    while chunk := [row for _, row in zip(range(200_000), it, strict=False)]:
        conn.executemany(sql, chunk)
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    tmp.rename(db)


def big_journal(runs: int, jobs: int) -> Path:
    """The daemon's root for a ``runs``-run journal, built once and kept."""
    root = Path(tempfile.gettempdir()) / f"jobd-scale-{runs}-{jobs}"
    db = root / "var" / "jobd.db"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_journal(db, runs, jobs)
        size = db.stat().st_size / 2**20
        print(f"  (built {db}: {runs:,} runs in {time.perf_counter() - t0:.0f} s, {size:,.0f} MB)")
    configure(root, jobs)
    return root


def configure(root: Path, jobs: int) -> None:
    """``jobs`` yearly jobs, and retention that finds nothing old enough to prune: the daemon
    leaves the journal as it found it."""
    text = "".join(
        f'[jobs.job{j:04}]\ncron = "0 0 1 1 *"\ncommand = ["/bin/true"]\n' for j in range(jobs)
    )
    cfg = write_config(root, text, 8)
    cfg.write_text(cfg.read_text() + 'retention_days = "3650d"\nretention_runs = 100000000\n')


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], socket.socket, float]:
    """The daemon on ``root``'s config, its notify socket, and its seconds to READY."""
    sock_path = root / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(300)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "JOBD_LOG_LEVEL": "WARNING"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")], env=env
    )
    while b"READY=1" not in sock.recv(4096):
        pass
    return proc, sock, time.perf_counter() - t0


def p50_of(argv: list[str], n: int) -> float:
    """Median wall time in ms of ``argv`` as a whole process, run ``n`` times."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@dataclass(slots=True)
class Probe:
    """The longest event-loop stall (a 1 ms ticker) and the latencies of durable one-run
    writes made every 50 ms, both in ms, over one phase."""

    stall: float = 0.0
    ticks: int = 0
    late: int = 0  # ticks late by more than 10 ms
    writes: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        writes = (
            f"durable writes p50 {pct(self.writes, 0.5):5.1f} max {max(self.writes):6.1f} ms"
            if self.writes
            else "no durable write ended"
        )
        return (
            f"longest loop stall {self.stall:5.1f} ms ({self.late} of {self.ticks} ticks"
            f" > 10 ms), {writes}"
        )


async def prune_probe(
    db: Path, before: datetime, keep: int, *, quiet: float = 2.0
) -> tuple[float, int, Probe, Probe]:
    """Prune ``db``: seconds, runs deleted, and the probe over ``quiet`` seconds before the
    prune (the floor on this machine now) and while it ran."""
    probe = quiet_probe = Probe()
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await anyio.sleep(0.001)
            late = (time.perf_counter() - t0 - 0.001) * 1000
            probe.stall = max(probe.stall, late)
            probe.ticks += 1
            probe.late += late > 10

    async def writer(journal: SQLiteJournal) -> None:
        while not done.is_set():
            now = datetime.now(UTC)
            run = RunRecord(
                run_id=journal.new_run_id(),
                job_id="probe",
                trigger=TriggerKind.MANUAL,
                state=RunState.RUNNING,
                queued_at=now,
            )
            t0 = time.perf_counter()
            await journal.put_runs([run])
            probe.writes.append((time.perf_counter() - t0) * 1000)
            await anyio.sleep(0.05)

    async with SQLiteJournal(db) as journal:
        before_count = await count(journal)
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(writer, journal)
            await anyio.sleep(quiet)
            probe = Probe()
            t0 = time.perf_counter()
            await journal.prune(before=before, keep_per_job=keep)
            elapsed = time.perf_counter() - t0
            done.set()
        deleted = before_count - await count(journal)
    return elapsed, deleted, quiet_probe, probe


async def count(journal: SQLiteJournal) -> int:
    rows = await journal._read("SELECT count(*) FROM runs WHERE job_id != 'probe'")
    return int(rows[0][0])


def runs_figures(
    runs: int, jobs: int, repeat: int, samples: int, fraction: float, quiet: float
) -> None:
    root = big_journal(runs, jobs)
    print(f"[journal] {runs:,} finished runs over {jobs:,} jobs")
    empty = root / "empty"  # the same jobs on an empty journal: the baseline
    configure(empty, jobs)
    for _ in range(repeat):
        proc, notify, base = start_daemon(empty)
        proc.terminate()
        proc.wait(60)
        notify.close()
        proc, notify, startup = start_daemon(root)
        try:
            sock = str(root / "var" / "jobd.sock")
            first = p50_of([*JOBCTL, "--socket", sock, "runs", "job0007"], 1)
            status = p50_of([*JOBCTL, "--socket", sock, "status"], samples)
            runs_ms = p50_of([*JOBCTL, "--socket", sock, "runs", "job0007"], samples)
            why = p50_of([*JOBCTL, "--socket", sock, "why", "job0007"], samples)
        finally:
            proc.terminate()
            proc.wait(60)
            notify.close()
        print(
            f"  start-up to READY {startup:5.2f} s (empty journal {base:5.2f} s); the first"
            f" jobctl runs JOB after READY {first:6.1f} ms"
        )
        print(
            f"    jobctl p50: status {status:5.1f} ms, runs JOB {runs_ms:5.1f} ms"
            f" ({runs_ms / status:.2f}x status), why JOB {why:5.1f} ms ({why / status:.2f}x)"
        )
    db = root / "var" / "jobd.db"
    now = datetime.now(UTC)
    cases: list[tuple[str, datetime, int]] = [
        ("nothing to delete", now - SPAN - timedelta(days=1), runs),
        (f"oldest {fraction:.0%} deleted", now - SPAN * (1 - fraction), runs),
    ]
    for name, before, keep in cases:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(dir=root) as tmp:
                copy = Path(tmp) / "jobd.db"
                shutil.copyfile(db, copy)
                with sqlite3.connect(copy) as conn:  # every built run is finished
                    cut = to_micros(before, "before")
                    (due,) = conn.execute(
                        "SELECT count(*) FROM runs WHERE finished_at < ?", (cut,)
                    ).fetchone()
                elapsed, deleted, floor, busy = anyio.run(
                    functools.partial(prune_probe, copy, before, keep, quiet=quiet)
                )
                if deleted != due:
                    raise SystemExit(f"prune deleted {deleted:,} runs where {due:,} were due")
            print(f"  prune, {name:<20} {elapsed:7.2f} s {deleted:>10,} runs deleted")
            print(f"    while it ran:        {busy}")
            print(f"    the {quiet:.0f} s before it:   {floor}")


def jobs_figures(n: int, idle: float, repeat: int) -> None:
    print(f"[jobs] {n:,} loaded jobs")
    for _ in range(repeat):
        startup, rss, idle_pct = many_jobs(n, idle)
        plan, planned = plan_restart(n)
        print(
            f"  start-up to READY {startup:6.2f} s  RSS {rss:6.1f} MB  idle CPU over {idle:.0f} s"
            f" {idle_pct:5.2f} %  plan a restart after a day down {plan:6.2f} s"
            f" ({planned:,} catch-up runs)"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=10_000_000)
    ap.add_argument("--run-jobs", type=int, default=1000, help="jobs the journal's runs belong to")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU sampled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=20, help="jobctl calls per p50")
    ap.add_argument("--prune-fraction", type=float, default=0.1)
    ap.add_argument("--quiet", type=float, default=2.0, help="seconds probed before a prune")
    ap.add_argument("--only", choices=("jobs", "runs"))
    a = ap.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load:.1f}")
    if a.only != "runs":
        jobs_figures(a.jobs, a.idle, a.repeat)
    if a.only != "jobs":
        runs_figures(a.runs, a.run_jobs, a.repeat, a.samples, a.prune_fraction, a.quiet)


if __name__ == "__main__":
    main()
