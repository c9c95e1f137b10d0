"""The dashboard under load, measured (not a test). A real daemon (``python -m jobd``) on a
journal of 1,000,000 runs gets 50 page loads at the same instant, once a second; meanwhile one
job due every second measures due slot -> exec latency (``bench/core_bench.py``'s method),
compared with the same daemon idle in the same run. Then 50 clients loading back to back
(saturation), and the 24 h timeline. Also: RSS and start-up to READY with and without
``[http]``. The load comes from this process, on the same cores.

    python bench/web_bench.py [--runs 1000000] [--clients 50] [--seconds 20]

The journal is built once in ``--cache`` (default /tmp/jobd-web-bench-<runs>.db) and copied for
each daemon; pruning is set wide so it keeps every run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import h11

from jobd._enums import RunState, TriggerKind
from jobd.journal._codec import RUN_COLUMNS, encode_run
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import SQLiteJournal

JOBS = [f"job{i:02}" for i in range(18)] + ["extract", "load"]
STATES = [RunState.SUCCEEDED] * 12 + [
    RunState.FAILED,
    RunState.TIMED_OUT,
    RunState.CANCELLED,
    RunState.SKIPPED,
]
TRIGGERS = [TriggerKind.CRON, TriggerKind.EVERY, TriggerKind.MANUAL, TriggerKind.WATCH]


def synthetic(n: int, now: datetime) -> Iterator[RunRecord]:
    """``n`` finished runs over the last 30 days, oldest first; every 10th starts a flow
    extract -> load, which finishes."""
    rng = random.Random(15)
    span = timedelta(days=30) / n
    run_id = 0
    t = now - timedelta(days=30)
    while run_id < n:
        run_id += 1
        t += span
        if run_id % 10 == 0 and run_id < n:
            yield RunRecord(
                run_id=run_id,
                job_id="extract",
                trigger=TriggerKind.CRON,
                state=RunState.SUCCEEDED,
                queued_at=t,
                scheduled_for=t,
                started_at=t,
                finished_at=t + timedelta(seconds=3),
                exit_code=0,
                flow_id=str(run_id),
                outputs={"rows": "42"},
            )
            run_id += 1
            yield RunRecord(
                run_id=run_id,
                job_id="load",
                trigger=TriggerKind.NEEDS,
                state=RunState.SUCCEEDED,
                queued_at=t,
                started_at=t,
                finished_at=t + timedelta(seconds=5),
                exit_code=0,
                flow_id=str(run_id - 1),
            )
            continue
        state = rng.choice(STATES)
        ran = state is not RunState.SKIPPED
        yield RunRecord(
            run_id=run_id,
            job_id=JOBS[run_id % 18],
            trigger=rng.choice(TRIGGERS),
            state=state,
            queued_at=t,
            scheduled_for=t,
            started_at=t if ran else None,
            finished_at=t + timedelta(seconds=rng.uniform(0.01, 30)),
            exit_code=(0 if state is RunState.SUCCEEDED else 1) if ran else None,
            message=None if ran else "overlap = skip: the last run still runs",
        )


def build_journal(path: Path, n: int) -> None:
    async def schema() -> None:
        async with SQLiteJournal(path):
            pass

    anyio.run(schema)
    now = datetime.now(UTC)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        sql = (
            f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
        )
        conn.executemany(sql, (encode_run(r) for r in synthetic(n, now)))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``python -m jobd`` on a copy of the journal; READY read from NOTIFY_SOCKET."""

    def __init__(
        self, root: Path, journal: Path | None, http: bool, tick: bool, source: Path | None = None
    ) -> None:
        self.root = root
        (root / "var").mkdir(parents=True)
        if journal is not None:
            shutil.copy(journal, root / "var" / "jobd.db")
        (root / "jobs.d").mkdir()
        jobs = "".join(f'[jobs.{j}]\ncommand = "true"\n' for j in JOBS if j != "load")
        jobs += '[jobs.load]\nneeds = ["extract"]\ncommand = "true"\n'
        if tick:
            jobs += '[jobs.tick]\nevery = "1s"\ncommand = ["date", "+%s.%N"]\n'
        (root / "jobs.d" / "bench.toml").write_text(jobs)
        self.port = free_port()
        (root / "jobd.toml").write_text(
            textwrap.dedent("""\
            [daemon]
            jobs_dir = "jobs.d"
            state_dir = "var"
            socket = "var/jobd.sock"
            timezone = "UTC"
            retention_runs = 10000000
            retention_days = "3650d"
            """)
            + (f'[http]\nlisten = "127.0.0.1:{self.port}"\n' if http else "")
        )
        notify = root / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(notify))
        self.sock.settimeout(120)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify), "JOBD_LOG_LEVEL": "WARNING"}
        if source is not None:  # another checkout's jobd, e.g. before the dashboard
            env.update(PYTHONPATH=str(source), PYTHONDONTWRITEBYTECODE="1")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")], env=env
        )
        while b"READY=1" not in self.sock.recv(4096):
            pass
        self.startup = time.perf_counter() - t0

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return (
            int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
            / 1024
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.sock.close()

    def tick_latencies(self, since: datetime, until: datetime) -> list[float]:
        """ms from each ``tick`` slot in [since, until) to its process's clock after exec."""
        out = []
        with sqlite3.connect(self.root / "var" / "jobd.db") as conn:
            rows = conn.execute(
                "SELECT scheduled_for, log_path FROM runs WHERE job_id = 'tick'"
                " AND scheduled_for >= ? AND scheduled_for < ?",
                (int(since.timestamp() * 1e6), int(until.timestamp() * 1e6)),
            )
            for slot_us, log in rows:
                if log and Path(log).exists():
                    text = Path(log).read_text().strip()
                    if text[:1].isdigit():
                        out.append((float(text) - slot_us / 1e6) * 1000)
        return out


async def fetch(port: int, target: str) -> int:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        conn = h11.Connection(h11.CLIENT)
        await stream.send(
            conn.send(
                h11.Request(
                    method="GET",
                    target=target,
                    headers=[("host", f"127.0.0.1:{port}"), ("connection", "close")],
                )
            )
        )
        await stream.send(conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    conn.receive_data(b"")
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status


async def load(port: int, pages: list[str], clients: int, seconds: float) -> dict[str, list[float]]:
    """``clients`` loops, each loading the next page as soon as the last one came."""
    times: dict[str, list[float]] = {p: [] for p in pages}
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            page = pages[i % len(pages)]
            i += 1
            t0 = time.perf_counter()
            status = await fetch(port, page)
            assert status == 200, (page, status)
            times[page].append((time.perf_counter() - t0) * 1000)

    async with anyio.create_task_group() as tg:
        for k in range(clients):
            tg.start_soon(client, k)
    return times


async def bursts(
    port: int, pages: list[str], clients: int, seconds: float
) -> dict[str, list[float]]:
    """Once a second, ``clients`` page loads at the same instant (the mix in turn)."""
    times: dict[str, list[float]] = {p: [] for p in pages}
    n = 0

    async def one(page: str) -> None:
        t0 = time.perf_counter()
        status = await fetch(port, page)
        assert status == 200, (page, status)
        times[page].append((time.perf_counter() - t0) * 1000)

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        tick = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(one, pages[n % len(pages)])
                n += 1
        await anyio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    return times


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a source tree of jobd before the dashboard: its start-up and RSS too",
    )
    a = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    cache = a.cache or Path(tempfile.gettempdir()) / f"jobd-web-bench-{a.runs}.db"
    if not cache.exists():
        t0 = time.perf_counter()
        build_journal(cache, a.runs)
        print(f"[journal] built {a.runs:,} runs in {time.perf_counter() - t0:.0f} s: {cache}")
    size = cache.stat().st_size / 2**20
    print(f"[journal] {a.runs:,} runs, {size:.0f} MiB")

    with tempfile.TemporaryDirectory() as tmp:
        costs = {}
        for name, src in (("before the dashboard", a.before), ("no [http]", None)):
            if name.startswith("before") and src is None:
                continue
            runs = []
            for k in range(3):
                plain = Daemon(
                    Path(tmp) / f"plain{k}{bool(src)}", None, http=False, tick=False, source=src
                )
                time.sleep(1)
                runs.append((plain.startup, plain.rss_mb()))
                plain.stop()
            costs[name] = (
                statistics.median(r[0] for r in runs),
                statistics.median(r[1] for r in runs),
            )
        web = Daemon(Path(tmp) / "web", None, http=True, tick=False)
        time.sleep(1)
        with_http = (web.startup, web.rss_mb())
        web.stop()
    print("[cost] empty journal, 20 jobs: start-up to READY, RSS after 1 s (median of 3)")
    for name, (up, mb) in costs.items():
        print(f"  {name:<20} {up:6.2f} s  {mb:6.1f} MB")
    print(f"  [http] on            {with_http[0]:6.2f} s  {with_http[1]:6.1f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(Path(tmp), cache, http=True, tick=True)
        try:
            print(f"[daemon] READY in {d.startup:.2f} s on the {a.runs:,}-run journal")
            time.sleep(5)  # start-up work (retention pass, flow resume) settles
            mid = a.runs // 2
            pages = [
                "/",
                "/runs",
                f"/runs?before={mid}",
                "/runs?job=job07&state=failed",
                "/runs?trigger=manual&state=timed_out",
                f"/runs/{mid}",
                f"/flows/{mid - mid % 10}",
                "/jobs/job03",
                "/jobs/extract",
                "/why/job05",
            ]
            anyio.run(bursts, d.port, pages, a.clients, 1)  # warm: templates compiled once
            t_idle = datetime.now(UTC)
            time.sleep(a.seconds)
            t_load = datetime.now(UTC)
            cpu0 = d.cpu_seconds()
            times = anyio.run(bursts, d.port, pages, a.clients, a.seconds)
            cpu = d.cpu_seconds() - cpu0
            t_end = datetime.now(UTC)
            time.sleep(1)
            sustained = anyio.run(load, d.port, pages, a.clients, 10)
            t_sus = datetime.now(UTC)
            timeline = anyio.run(load, d.port, ["/timeline"], 5, 10)["/timeline"]
            rss = d.rss_mb()
        finally:
            d.stop()
        idle = d.tick_latencies(t_idle, t_load)
        busy = d.tick_latencies(t_load, t_end)
        saturated = d.tick_latencies(t_end + timedelta(seconds=1), t_sus)

    every = [t for ts in times.values() for t in ts]
    print(
        f"[pages] {a.clients} page loads at once, once a second for {a.seconds:.0f} s "
        f"({len(every)} loads); the daemon's RSS after: {rss:.0f} MB"
    )
    print(
        f"  {'all pages':<40} p50 {statistics.median(every):7.1f} ms  "
        f"p95 {pct(every, 0.95):7.1f} ms  max {max(every):7.1f} ms"
    )
    print(
        f"  the daemon's CPU per page load: {cpu / len(every) * 1000:.2f} ms "
        f"(a burst of {a.clients} is {cpu / len(every) * a.clients * 1000:.0f} ms of CPU)"
    )
    for page, ts in times.items():
        print(
            f"  {page:<40} p50 {statistics.median(ts):7.1f} ms  p95 {pct(ts, 0.95):7.1f} ms"
            f"  n {len(ts)}"
        )
    flat = [t for ts in sustained.values() for t in ts]
    print(
        f"  {'saturated: 50 loading back to back, 10 s':<40} p50 {statistics.median(flat):7.1f}"
        f" ms  p95 {pct(flat, 0.95):7.1f} ms  ({len(flat) / 10:.0f} pages/s)"
    )
    print(
        f"  {'/timeline (24 h), 5 back to back, 10 s':<40} p50 "
        f"{statistics.median(timeline):7.1f} ms  p95 {pct(timeline, 0.95):7.1f} ms  "
        f"n {len(timeline)}"
    )
    print("[latency] due slot -> exec of a job every 1 s, same daemon")
    for name, xs in (("idle", idle), (f"{a.clients} at once, 1/s", busy), ("saturated", saturated)):
        if xs:
            print(
                f"  {name:<20} p50 {statistics.median(xs):6.2f} ms  p99 {pct(xs, 0.99):6.2f} ms"
                f"  max {max(xs):6.2f} ms  n {len(xs)}"
            )


if __name__ == "__main__":
    main()
