"""Group commit against its baselines: ``python bench/journal_bench.py [--sizes 1000,10000]``.

For each size N it times N concurrent durable ``put_runs`` calls of one run each on a fresh
SQLiteJournal, and, on fresh files with the same pragmas (WAL, synchronous=FULL), the same rows
written by plain sqlite3: all in one transaction with ``executemany`` (the ceiling), and one
transaction per row (what a journal without group commit pays). Rows/s and ratios are printed,
with the rate at which the same harness merely spawns N tasks that do nothing: the floor that
Python and anyio put under any per-call design, whatever the store.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobd._enums import RunState, TriggerKind
from jobd.journal import RunRecord, SQLiteJournal
from jobd.journal._codec import encode_run
from jobd.journal.sqlite import _UPSERT_RUN, MIGRATIONS

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PER_ROW_CAP = 2000  # one fsync per row is slow; its rate is measured on at most this many


def make_runs(count: int) -> list[RunRecord]:
    return [
        RunRecord(
            run_id=i,
            job_id=f"job{i % 50}",
            trigger=TriggerKind.EVERY,
            state=RunState.RUNNING,
            queued_at=T0 + timedelta(seconds=i),
            scheduled_for=T0 + timedelta(seconds=i),
            params={"n": str(i)},
            started_at=T0 + timedelta(seconds=i),
            pid=10_000 + i,
            pid_start=i,
            log_path=f"logs/{i}.log",
        )
        for i in range(1, count + 1)
    ]


async def journal_rate(path: Path, runs: list[RunRecord]) -> tuple[float, int]:
    async with SQLiteJournal(path) as journal:
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for run in runs:
                tg.start_soon(journal.put_runs, [run])
        elapsed = time.perf_counter() - start
        return len(runs) / elapsed, journal.stats.commits


async def spawn_rate(count: int) -> float:
    async def nothing() -> None:
        await anyio.lowlevel.checkpoint()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(nothing)
    return count / (time.perf_counter() - start)


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(MIGRATIONS[0])
    return conn


def raw_batch_rate(path: Path, rows: list[tuple[object, ...]]) -> float:
    conn = raw_connection(path)
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_UPSERT_RUN, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def raw_per_row_rate(path: Path, rows: list[tuple[object, ...]]) -> float:
    conn = raw_connection(path)
    rows = rows[:PER_ROW_CAP]
    start = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_UPSERT_RUN, row)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated run counts")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to put the files (default: a temporary directory; use a "
        "directory on the disk the daemon's state_dir will live on)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = Path(tmp)
        print(f"sqlite {sqlite3.sqlite_version}, files in {base}")
        print(
            f"{'N':>7} {'journal rows/s':>15} {'commits':>8} {'executemany rows/s':>19} "
            f"{'per-row tx rows/s':>18} {'vs executemany':>15} {'vs per-row':>11} "
            f"{'no-op tasks/s':>14}"
        )
        for n in sizes:
            runs = make_runs(n)
            rows = [encode_run(r) for r in runs]
            journal, commits = anyio.run(journal_rate, base / f"journal-{n}.db", runs)
            batch = raw_batch_rate(base / f"batch-{n}.db", rows)
            per_row = raw_per_row_rate(base / f"per-row-{n}.db", rows)
            floor = anyio.run(spawn_rate, n)
            print(
                f"{n:>7} {journal:>15,.0f} {commits:>8} {batch:>19,.0f} {per_row:>18,.0f} "
                f"{journal / batch:>14.2f}x {journal / per_row:>10.1f}x {floor:>14,.0f}"
            )


if __name__ == "__main__":
    main()
