"""What only the SQLite journal promises: crash durability, locking, group commit, clear errors."""

from __future__ import annotations

import logging
import os
import random
import signal
import sqlite3
import stat
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

import jobd.journal.sqlite
from jobd._enums import RunState
from jobd._exceptions import JournalError
from jobd.journal import SCHEMA_VERSION, RunRecord, SQLiteJournal
from jobd.journal.sqlite import MIGRATIONS

from .child import expected_run
from .conftest import T0, make_run, opened

ROOT = Path(__file__).resolve().parents[2]


async def spawn(mode: str, db_path: Path) -> tuple[Process, BufferedByteReceiveStream]:
    """The child in ``mode`` on ``db_path``, and its stdout to read lines from."""
    process = await anyio.open_process(
        [sys.executable, "-m", "tests.journal.child", mode, str(db_path)], cwd=ROOT
    )
    assert process.stdout is not None
    return process, BufferedByteReceiveStream(process.stdout)


async def read_lines(stdout: BufferedByteReceiveStream, count: int | None = None) -> list[str]:
    """``count`` lines of a child's stdout, or all of them until it closes."""
    lines: list[str] = []
    while count is None or len(lines) < count:
        try:
            lines.append((await stdout.receive_until(b"\n", 1024)).decode())
        except (anyio.EndOfStream, anyio.IncompleteRead):
            break
    return lines


async def stderr_of(process: Process) -> str:
    assert process.stderr is not None
    chunks = [chunk async for chunk in process.stderr]
    return b"".join(chunks).decode(errors="replace")


async def sql(path: Path, statement: str) -> list[tuple[object, ...]]:
    """Run one statement on a plain connection, off the event loop."""

    def run() -> list[tuple[object, ...]]:
        with sqlite3.connect(path) as conn:
            return list(conn.execute(statement))

    with anyio.fail_after(10):
        return await anyio.to_thread.run_sync(run)


async def open_bounded(journal: SQLiteJournal) -> None:
    """Open, for tests that expect it to fail."""
    with anyio.fail_after(10):
        await journal.open()


async def test_committed_runs_survive_sigkill(db_path: Path) -> None:
    """A child prints each run id once ``put_runs`` returned, and is SIGKILLed at a random
    point; every run it reported must be there after reopening, intact."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    with anyio.fail_after(60):  # a bound for a loaded machine; it takes ~5 s
        for attempt in range(10):
            process, stdout = await spawn("crash", db_path)
            try:
                assert await read_lines(stdout, 1) == ["open"]
                lines = await read_lines(stdout, rng.randrange(1, 300))
                await anyio.sleep(rng.random() * 0.02)
            finally:
                process.kill()
            lines += await read_lines(stdout)  # printed before the kill, so promised too
            await process.wait()
            where = f"seed {seed}, round {attempt}"
            assert process.returncode == -signal.SIGKILL, f"{where}: {await stderr_of(process)}"
            async with opened(SQLiteJournal(db_path)) as journal:
                ids = set()
                for line in lines:
                    word, run_id = line.split()
                    ids.add(int(run_id))
                    got = await journal.get_run(int(run_id))
                    done = expected_run(int(run_id), RunState.SUCCEEDED)
                    if word == "done":
                        assert got == done, where
                    else:
                        running = expected_run(int(run_id), RunState.RUNNING)
                        assert got in (running, running.evolve(message="progress"), done), where
                assert ids, where
                assert journal.new_run_id() > max(ids), where
                cursors = await journal.cursors()
                assert {f"job{i % 5}" for i in ids} <= set(cursors), where


async def test_second_daemon_is_refused(db_path: Path) -> None:
    with anyio.fail_after(10):
        process, stdout = await spawn("hold", db_path)
        try:
            assert await read_lines(stdout, 1) == ["open"]
            with pytest.raises(JournalError) as caught:
                await open_bounded(SQLiteJournal(db_path))
            assert str(caught.value) == (
                f"journal {db_path} is in use by another jobd (pid {process.pid})"
            )
        finally:
            assert process.stdin is not None
            await process.stdin.aclose()  # the holder closes its journal and exits
            await process.wait()
        assert process.returncode == 0
        async with opened(SQLiteJournal(db_path)) as journal:
            await journal.put_runs([make_run(1)])
        assert (await anyio.Path(f"{db_path}.lock").read_text()).strip() == str(os.getpid())


async def test_second_opener_in_process_is_refused(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path)):
        with pytest.raises(JournalError, match=f"in use by another jobd \\(pid {os.getpid()}\\)"):
            await open_bounded(SQLiteJournal(db_path))


async def test_concurrent_puts_share_commits(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path)) as journal:
        assert isinstance(journal, SQLiteJournal)
        runs = [make_run(journal.new_run_id(), f"j{i % 10}") for i in range(1000)]
        async with anyio.create_task_group() as tg:
            for run in runs:
                tg.start_soon(journal.put_runs, [run])
        stats = journal.stats
        assert stats.writes == 1000 and stats.runs_written == 1000
        assert stats.commits <= 10, stats
        assert len(await journal.list_runs(limit=None)) == 1000


async def test_prune_deletes_in_batches(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention deletes PRUNE_BATCH runs per commit, by age then by count, and finds every
    victim across batch boundaries, ties in queued_at included."""
    monkeypatch.setattr(jobd.journal.sqlite, "PRUNE_BATCH", 3)

    def done(run_id: int, job: str, finished: timedelta, **changes: Any) -> RunRecord:
        log = None if run_id == 2 else f"logs/{run_id}.log"
        return make_run(
            run_id,
            job,
            state=RunState.SUCCEEDED,
            finished_at=T0 + finished,
            log_path=log,
            **changes,
        )

    hour = timedelta(hours=1)
    runs = [
        *(done(i, "a", i * hour) for i in range(1, 11)),  # finished T0+1h .. T0+10h
        make_run(11, "a", state=RunState.RUNNING),
        *(done(i, "b", 100 * hour) for i in range(12, 17)),
        make_run(17, "b", state=RunState.SKIPPED),  # finished, with no finished_at
        *(done(i, "c", hour, queued_at=T0) for i in range(20, 27)),  # one queued_at for all
    ]
    async with opened(SQLiteJournal(db_path)) as journal:
        assert isinstance(journal, SQLiteJournal)
        await journal.put_runs(runs)
        commits = journal.stats.commits
        pruned = await journal.prune(before=T0 + 5 * hour + timedelta(minutes=30), keep_per_job=3)
        # By age: 20-26 (queued first), then 1-5; by count: 6 and 7 of "a" (8-10 kept; 11
        # is not finished), 12-14 of "b" (17, 16 and 15 kept).
        assert pruned == [f"logs/{i}.log" for i in (20, 21, 22, 23, 24, 25, 26, 1, 3, 4, 5)] + [
            f"logs/{i}.log" for i in (6, 7, 12, 13, 14)
        ]
        left = [r.run_id for r in await journal.list_runs(limit=None)]
        assert left == [17, 16, 15, 11, 10, 9, 8]
        # One commit to settle the writes queued before, then 4 + 1 + 1 batches of <= 3.
        assert journal.stats.commits - commits == 7
        assert await journal.prune(before=T0, keep_per_job=3) == []


async def test_lazy_write_rides_along_and_flushes(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path, flush_interval=0.05)) as journal:
        assert isinstance(journal, SQLiteJournal)
        await journal.put_runs([make_run(1)], durable=False)
        await journal.put_runs([make_run(2)])
        assert journal.stats.commits == 1
        assert await journal.get_run(1) is not None
        # Alone, a lazy write is committed within flush_interval.
        await journal.put_runs([make_run(3)], durable=False)
        while await journal.get_run(3) is None:  # noqa: ASYNC110 (no event marks a commit)
            await anyio.sleep(0.01)
        assert journal.stats.commits == 2
        # And close commits one still waiting.
        await journal.put_runs([make_run(4, state=RunState.RUNNING)], durable=False)
    async with opened(SQLiteJournal(db_path)) as journal:
        assert [r.run_id for r in await journal.list_runs()] == [4, 3, 2, 1]


async def test_close_commits_a_write_in_flight(db_path: Path) -> None:
    journal = SQLiteJournal(db_path)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            async with journal:
                tg.start_soon(journal.put_runs, [make_run(1)])
                await anyio.lowlevel.checkpoint()  # queued; its commit may be under way
            with pytest.raises(JournalError, match="not open"):
                await journal.put_runs([make_run(2)])
        async with opened(SQLiteJournal(db_path)) as reopened:
            assert [r.run_id for r in await reopened.list_runs()] == [1]


async def test_cancelled_daemon_keeps_shielded_final_write(db_path: Path) -> None:
    """Cancelling everything around the journal must neither lose a write already queued
    nor strand a caller that shielded its final-state write."""
    written = anyio.Event()
    with anyio.fail_after(10):
        with anyio.CancelScope() as outer:
            async with SQLiteJournal(db_path) as cancelled:

                async def final_write() -> None:
                    with anyio.CancelScope(shield=True):
                        await cancelled.put_runs([make_run(1, state=RunState.SUCCEEDED)])
                        written.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(final_write)
                    tg.start_soon(cancelled.put_runs, [make_run(2)])
                    await cancelled.put_runs([make_run(3)], durable=False)
                    outer.cancel()
        assert outer.cancelled_caught
        assert written.is_set()
        async with opened(SQLiteJournal(db_path)) as journal:
            assert [r.run_id for r in await journal.list_runs()] == [3, 2, 1]


async def test_write_error_reaches_waiters_and_store_recovers(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(SQLiteJournal(db_path, busy_timeout=0.05)) as journal:
        assert isinstance(journal, SQLiteJournal)
        blocker = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        try:
            await anyio.to_thread.run_sync(blocker.execute, "BEGIN IMMEDIATE")
            await journal.put_runs([make_run(1)], durable=False)
            with pytest.raises(
                JournalError, match=f"journal {db_path}: write failed: database is locked"
            ):
                await journal.put_runs([make_run(2)])
            await anyio.to_thread.run_sync(blocker.execute, "ROLLBACK")
        finally:
            await anyio.to_thread.run_sync(blocker.close)
        stats = journal.stats
        assert (stats.write_errors, stats.commits) == (2, 0)
        assert stats.last_error is not None and "database is locked" in stats.last_error
        assert "1 unawaited write(s) lost" in caplog.text
        assert [r.levelno for r in caplog.records if r.name == "jobd.journal"] == [logging.ERROR]
        await journal.put_runs([make_run(3)])
        assert [r.run_id for r in await journal.list_runs()] == [3]


async def test_bad_write_fails_alone(db_path: Path) -> None:
    """A write the store rejects fails by itself; writes sharing its batch still commit."""
    async with opened(SQLiteJournal(db_path)) as journal:
        bad = make_run(2).evolve(job_id=None)  # NOT NULL in the schema; the type says str

        async def expect_error() -> None:
            with pytest.raises(JournalError, match=r"NOT NULL constraint failed: runs\.job_id"):
                await journal.put_runs([bad])

        async with anyio.create_task_group() as tg:
            tg.start_soon(journal.put_runs, [make_run(1)])
            tg.start_soon(expect_error)
            tg.start_soon(journal.put_runs, [make_run(3)])
        assert [r.run_id for r in await journal.list_runs()] == [3, 1]


async def test_settings_and_file_mode(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path)) as journal:
        assert isinstance(journal, SQLiteJournal) and journal._writer is not None
        pragmas = {}
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
            async with journal._writer.execute(f"PRAGMA {name}") as cursor:
                row = await cursor.fetchone()
                assert row is not None
                pragmas[name] = row[0]
        assert pragmas == {
            "journal_mode": "wal",
            "synchronous": 2,
            "busy_timeout": 5000,
            "foreign_keys": 1,
        }
        mode = (await anyio.Path(db_path).stat()).st_mode
        assert stat.S_IMODE(mode) == 0o600
        await journal.put_runs([make_run(1)])
        assert (await anyio.Path(f"{db_path}-wal").stat()).st_size > 0
    # Close folds the WAL into the main file (and SQLite then removes it).
    assert not await anyio.Path(f"{db_path}-wal").exists()
    assert await sql(db_path, "SELECT version FROM schema_version ORDER BY version") == [
        (v,) for v in range(1, SCHEMA_VERSION + 1)
    ]  # one row per migration applied


@pytest.mark.parametrize(
    "content", [b"not a database at all\n" * 200, b"SQLite format 3\0" + b"\xff" * 4000]
)
async def test_corrupt_file_is_a_clear_error(db_path: Path, content: bytes) -> None:
    await anyio.Path(db_path.parent).mkdir(parents=True)
    await anyio.Path(db_path).write_bytes(content)
    for _ in range(2):  # a failed open leaves nothing held
        with pytest.raises(
            JournalError, match=f"^journal {db_path} is not a usable SQLite database: "
        ):
            await open_bounded(SQLiteJournal(db_path))


async def test_directory_in_the_way_is_a_clear_error(db_path: Path) -> None:
    await anyio.Path(db_path).mkdir(parents=True)
    with pytest.raises(JournalError, match=f"^journal {db_path} is not a usable SQLite"):
        await open_bounded(SQLiteJournal(db_path))


async def test_foreign_database_is_refused(db_path: Path) -> None:
    await anyio.Path(db_path.parent).mkdir(parents=True)
    await sql(db_path, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(
        JournalError,
        match=f"journal {db_path} is a SQLite database but not a "
        "jobd journal \\(tables: invoices\\)",
    ):
        await open_bounded(SQLiteJournal(db_path))


async def test_newer_schema_is_refused(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path)):
        pass
    await sql(db_path, "INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(
        JournalError,
        match=f"journal {db_path} has schema version 99, newer "
        f"than this jobd understands \\({SCHEMA_VERSION}\\)",
    ):
        await open_bounded(SQLiteJournal(db_path))


class _NextVersion(SQLiteJournal):
    MIGRATIONS: ClassVar[tuple[str, ...]] = (
        *MIGRATIONS,
        "ALTER TABLE runs ADD COLUMN host TEXT; UPDATE runs SET host = 'here';",
    )


async def test_forward_migration_keeps_data(db_path: Path) -> None:
    async with opened(SQLiteJournal(db_path)) as journal:
        await journal.put_runs([make_run(1)])
        await journal.set_paused("a", True)
    async with opened(_NextVersion(db_path)) as journal:
        assert await journal.get_run(1) == make_run(1)
        assert await journal.paused() == {"a"}
    assert await sql(db_path, "SELECT version FROM schema_version ORDER BY version") == [
        (v,) for v in range(1, SCHEMA_VERSION + 2)
    ]
    assert await sql(db_path, "SELECT host FROM runs") == [("here",)]
    with pytest.raises(JournalError, match=f"has schema version {SCHEMA_VERSION + 1}"):
        await open_bounded(SQLiteJournal(db_path))


async def test_failed_migration_changes_nothing(db_path: Path) -> None:
    class Broken(SQLiteJournal):
        MIGRATIONS: ClassVar[tuple[str, ...]] = (*MIGRATIONS, "CREATE TABLE x (a INTEGER); BOGUS;")

    async with opened(SQLiteJournal(db_path)) as journal:
        await journal.put_runs([make_run(1)])
    with pytest.raises(
        JournalError, match=f"migration to schema version {SCHEMA_VERSION + 1} failed"
    ):
        await open_bounded(Broken(db_path))
    async with opened(SQLiteJournal(db_path)) as journal:
        assert await journal.get_run(1) == make_run(1)
    assert await sql(db_path, "SELECT name FROM sqlite_master WHERE name = 'x'") == []
