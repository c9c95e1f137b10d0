"""The journal in SQLite: WAL, ``synchronous=FULL``, one writer task that group-commits.

Callers enqueue their writes and wait; the writer drains everything queued, applies it in one
transaction with ``executemany`` and commits once, then wakes every waiter. Reads go through a
second connection, so they see committed data only and never queue behind a commit.
docs/journal.md describes the schema, durability and locking.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import aiosqlite
import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JournalError, StorageError
from jobd.journal._codec import (
    FINISHED_VALUES,
    RUN_COLUMNS,
    UNFINISHED_VALUES,
    decode_run,
    encode_cursors,
    encode_run,
    from_micros,
    to_micros,
)
from jobd.journal.abc import Journal, ManifestEntry, RunRecord

__all__ = ["SCHEMA_VERSION", "JournalStats", "SQLiteJournal", "os_fault", "storage_fault"]

log = logging.getLogger("jobd.journal")

# Forward migrations: MIGRATIONS[n - 1] takes the schema from version n - 1 to n.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE schema_version (
        version    INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    ) STRICT;
    CREATE TABLE runs (
        run_id        INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id        TEXT NOT NULL,
        trigger       TEXT NOT NULL,
        state         TEXT NOT NULL,
        attempt       INTEGER NOT NULL,
        queued_at     INTEGER NOT NULL,
        scheduled_for INTEGER,
        flow_id       TEXT,
        params        TEXT NOT NULL,
        changed_paths TEXT NOT NULL,
        matrix        TEXT,
        started_at    INTEGER,
        finished_at   INTEGER,
        exit_code     INTEGER,
        pid           INTEGER,
        pid_start     INTEGER,
        outputs       TEXT NOT NULL,
        log_path      TEXT,
        message       TEXT
    ) STRICT;
    CREATE INDEX runs_by_job ON runs (job_id, run_id DESC);
    CREATE INDEX runs_unfinished ON runs (state) WHERE state IN ('queued', 'running');
    CREATE INDEX runs_by_flow ON runs (flow_id) WHERE flow_id IS NOT NULL;
    CREATE TABLE cursors (
        job_id TEXT PRIMARY KEY,
        slot   INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE paused (
        job_id TEXT PRIMARY KEY
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE manifest (
        job_id   TEXT NOT NULL,
        path     TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        size     INTEGER NOT NULL,
        PRIMARY KEY (job_id, path)
    ) STRICT, WITHOUT ROWID;
    """,
    # The dashboard's filters (docs/dashboard.md): each index ends in the rowid (run_id), so
    # "WHERE state = ? AND run_id < ? ORDER BY run_id DESC LIMIT n" walks one index range.
    """
    CREATE INDEX runs_by_state ON runs (state);
    CREATE INDEX runs_by_trigger ON runs (trigger);
    CREATE INDEX runs_by_job_state ON runs (job_id, state);
    CREATE INDEX runs_by_queued ON runs (queued_at);
    """,
    # 3: the time slots a run covers besides its own (folded into it).
    "ALTER TABLE runs ADD COLUMN folded_slots TEXT NOT NULL DEFAULT '[]'",
    # 4: each job's last success in one index lookup, not a scan of every success (start-up).
    "CREATE INDEX runs_last_success ON runs (job_id, finished_at) WHERE state = 'succeeded'",
)
SCHEMA_VERSION = len(MIGRATIONS)
GATHER_TICKS = 4
RETRY_MIN, RETRY_MAX = 0.1, 5.0  # seconds between commit attempts while the storage fails

# SQLite primary result codes that mean the storage failed, not the database
_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 10, 13, 14


def os_fault(exc: OSError) -> str | None:
    if exc.errno == errno.ENOSPC:
        return "the disk is full (No space left on device): free space, then start again"
    if exc.errno == errno.EROFS:
        return "the file system is read-only: make the state directory writable"
    if exc.errno == errno.EACCES:
        return "permission denied: the daemon's user must be able to write the state directory"
    return None


def storage_fault(exc: sqlite3.Error, path: Path) -> str | None:
    """What failed if ``exc`` is a storage fault rather than damage to the journal: the disk
    is full, the file system is read-only, or an I/O error; None otherwise."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code not in (_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN):
        return None
    where = path.parent
    try:
        st = os.statvfs(where)
    except OSError:
        st = None
    if st is not None and st.f_flag & os.ST_RDONLY:
        return f"the file system holding {where} is read-only ({exc})"
    if code == _SQLITE_FULL or (st is not None and st.f_bavail * st.f_frsize < 64 * 1024):
        free = st.f_bavail * st.f_frsize if st is not None else 0
        return f"the disk holding {where} is full ({free} bytes free; {exc})"
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN) and not os.access(where, os.W_OK):
        return f"{where} is not writable by this user ({exc})"
    if code == _SQLITE_IOERR:
        return f"I/O error on {where} ({exc}): check the disk (dmesg)"
    return None


_COLS = ", ".join(RUN_COLUMNS)
_UPSERT_RUN = (
    f"INSERT INTO runs ({_COLS}) VALUES ({', '.join('?' * len(RUN_COLUMNS))}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
)
_UPSERT_CURSOR = (
    "INSERT INTO cursors (job_id, slot) VALUES (?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET slot = excluded.slot"
)
_UNFINISHED_SQL = ", ".join(f"'{s}'" for s in UNFINISHED_VALUES)
_FINISHED_SQL = ", ".join(f"'{s}'" for s in FINISHED_VALUES)
# Retention deletes in batches of PRUNE_BATCH runs, each one durable write sharing the group
# commit: a prune of millions of runs never holds the writer (nor the loop) for long. Victims are
# found on the reader, by index walks: by age along runs_by_queued (a run finishes after it is
# queued), by count along runs_by_job from each job's (keep + 1)-th newest finished run.
PRUNE_BATCH = 1000
_PRUNE_JOBS = """
    WITH RECURSIVE j(id) AS (
        SELECT (SELECT min(job_id) FROM runs)
        UNION ALL SELECT (SELECT min(job_id) FROM runs WHERE job_id > j.id) FROM j
        WHERE j.id IS NOT NULL)
    SELECT id FROM j WHERE id IS NOT NULL
"""
_PRUNE_BY_AGE = f"""
    SELECT run_id, log_path, queued_at FROM runs INDEXED BY runs_by_queued
    WHERE queued_at < ?1 AND (queued_at, run_id) > (?2, ?3)
      AND finished_at < ?1 AND state IN ({_FINISHED_SQL})
    ORDER BY queued_at, run_id LIMIT ?4
"""
_PRUNE_ANY_BEYOND = (
    "SELECT run_id FROM runs INDEXED BY runs_by_job WHERE job_id = ?"
    " ORDER BY run_id DESC LIMIT 1 OFFSET ?"
)
_PRUNE_FINISHED_BEYOND = (
    "SELECT run_id FROM runs INDEXED BY runs_by_job"
    f" WHERE job_id = ? AND state IN ({_FINISHED_SQL}) ORDER BY run_id DESC LIMIT 1 OFFSET ?"
)
_PRUNE_BY_COUNT = f"""
    SELECT run_id, log_path FROM runs INDEXED BY runs_by_job
    WHERE job_id = ? AND run_id > ? AND run_id <= ? AND state IN ({_FINISHED_SQL})
    ORDER BY run_id LIMIT ?
"""
_PRUNE_DELETE = f"DELETE FROM runs WHERE run_id = ? AND state IN ({_FINISHED_SQL})"


# Each job's newest finished_at among its successes: a skip-scan over runs_last_success, one
# lookup per job however many runs it has.
_SUCCESSES = "runs INDEXED BY runs_last_success WHERE state = 'succeeded'"
_LAST_SUCCESSES = f"""
    WITH RECURSIVE j(id) AS (
        SELECT (SELECT min(job_id) FROM {_SUCCESSES})
        UNION ALL SELECT (SELECT min(job_id) FROM {_SUCCESSES} AND job_id > j.id) FROM j
        WHERE j.id IS NOT NULL)
    SELECT id, (SELECT max(finished_at) FROM {_SUCCESSES} AND job_id = j.id) FROM j
    WHERE id IS NOT NULL
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStats:
    """Counters of the writer since ``open``: ``commits`` transactions committed, ``writes``
    write calls committed, ``runs_written`` run rows upserted, ``write_errors`` write calls that
    failed, ``last_error`` the message of the newest failure."""

    commits: int = 0
    writes: int = 0
    runs_written: int = 0
    write_errors: int = 0
    last_error: str | None = None


@dataclass(slots=True, eq=False)
class _Write:
    """One write call, waiting in the queue for the writer."""

    durable: bool
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    cursors: list[tuple[str, int]] = field(default_factory=list)
    paused: tuple[str, bool] | None = None
    manifest: tuple[str, list[tuple[str, str, int, int]]] | None = None
    prune: list[int] = field(default_factory=list)  # finished runs to delete
    error: JournalError | None = None


class SQLiteJournal(Journal):
    """The daemon's journal: one SQLite file (``jobd.db``) in WAL mode, ``synchronous=FULL``.

    Use it as ``async with SQLiteJournal(path) as journal:``; ``open`` and ``close`` must run
    in the same task, since the journal's writer lives in a task group entered by ``open``.
    A second opener of the same file, in this process or another, gets ``JournalError``.
    ``flush_interval`` bounds how long a ``durable=False`` write waits for a durable one to
    share its commit.
    """

    MIGRATIONS: ClassVar[tuple[str, ...]] = MIGRATIONS

    def __init__(
        self, path: Path, *, busy_timeout: float = 5.0, flush_interval: float = 0.5
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.busy_timeout = busy_timeout
        self.flush_interval = flush_interval
        self._open = False
        self._stack: AsyncExitStack | None = None
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._next_id = 1
        self._pending: list[_Write] = []
        self._committed = anyio.Event()  # set once the writes now pending are settled
        self._wake = anyio.Event()
        self._urgent = anyio.Event()
        self._closing = False
        self._writer_running = False
        self._writer_done = anyio.Event()
        self._stats = JournalStats()
        # Told after each commit: its seconds and whether it succeeded (the daemon's metrics).
        self.on_commit: Callable[[float, bool], None] | None = None
        self._fault: str | None = None
        self._no_retry = False

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r}, open={self._open})"

    @property
    def stats(self) -> JournalStats:
        """A snapshot of the writer's counters."""
        return self._stats

    # -- open / close -----------------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self._fault

    def stop_retrying(self) -> None:
        self._no_retry = True

    async def open(self) -> None:
        if self._open:
            raise JournalError(f"journal {self.path} is already open")
        async with AsyncExitStack() as stack:
            with anyio.CancelScope(shield=True):  # a lock taken is never left behind
                lock_fd = await anyio.to_thread.run_sync(self._lock)
                stack.callback(_unlock, lock_fd)
            self._writer = await self._connect(stack, writer=True)
            await self._check_size(self._writer)
            await self._migrate(self._writer)
            self._next_id = await self._first_free_id(self._writer)
            self._reader = await self._connect(stack, writer=False)
            self._pending, self._closing, self._stats = [], False, JournalStats()
            self._committed = anyio.Event()
            self._wake, self._urgent = anyio.Event(), anyio.Event()
            self._writer_done = anyio.Event()
            # Entered last, left first: close() stops the writer before the connections go.
            tg = await stack.enter_async_context(anyio.create_task_group())
            await tg.start(self._run_writer)
            self._stack = stack.pop_all()
        self._open = True
        log.debug(
            "journal %s open (schema %d, next run id %d)", self.path, SCHEMA_VERSION, self._next_id
        )

    async def close(self) -> None:
        """Commit everything queued (a write in flight is never dropped), stop the writer,
        checkpoint the WAL and release the file and its lock."""
        if self._stack is None:
            return
        self._open = False
        with anyio.CancelScope(shield=True):
            self._closing = True
            self._wake.set()
            self._urgent.set()
            await self._writer_done.wait()
            if self._writer is not None:
                try:
                    # Fold the WAL into the main file so it is left small and self-contained.
                    await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("journal %s: checkpoint at close failed: %s", self.path, exc)
        stack, self._stack = self._stack, None
        self._writer = self._reader = None
        await stack.aclose()

    def _lock(self) -> int:
        """Take the one-daemon-per-journal lock (runs in a worker thread: file I/O)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise self._os_error(f"cannot create lock file {self.lock_path}", exc) from exc
        try:
            _flock_unless_held(fd)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise JournalError(
                    f"journal {self.path} is in use by another jobd (pid {holder})"
                ) from None
            raise JournalError(
                f"journal {self.path}: cannot lock {self.lock_path}: {exc.strerror}"
            ) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            if not self.path.exists():
                _create_durably(self.path)
            elif self.path.is_file() and self.path.stat().st_size == 0:
                raise JournalError(
                    f"journal {self.path} exists but is empty (0 bytes): it was truncated or "
                    "emptied, and jobd never leaves it so. Restore it from a backup (see "
                    "docs/journal.md), or move it aside to start a new, empty journal"
                )
        except OSError as exc:
            os.close(fd)
            raise self._os_error("cannot create it", exc) from exc
        except JournalError:
            os.close(fd)
            raise
        return fd

    async def _connect(self, stack: AsyncExitStack, *, writer: bool) -> aiosqlite.Connection:
        conn = aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn
        except sqlite3.Error as exc:
            # A failed connect stops aiosqlite's worker thread without waiting for it; the
            # thread then posts to this loop, which may be closed by then. Wait for it here.
            await anyio.to_thread.run_sync(conn._thread.join, 5.0)
            raise await self._unusable(exc) from exc
        stack.push_async_callback(_disconnect, conn)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if writer:
                async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                    row = await cur.fetchone()
                if row is None or str(row[0]).lower() != "wal":
                    log.warning(
                        "journal %s: WAL mode unavailable, using %s",
                        self.path,
                        row[0] if row else "?",
                    )
                # FULL: under WAL, NORMAL skips the fsync at commit (docs/journal.md).
                await conn.execute("PRAGMA synchronous = FULL")
                await conn.execute("PRAGMA foreign_keys = ON")
            else:
                await conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise await self._unusable(exc) from exc
        return conn

    def _os_error(self, what: str, exc: OSError) -> JournalError:
        fault = os_fault(exc)
        if fault is not None:
            return StorageError(f"journal {self.path}: {what}: {fault}")
        return JournalError(f"journal {self.path}: {what}: {exc.strerror}")

    async def _unusable(self, exc: BaseException) -> JournalError:
        if isinstance(exc, sqlite3.Error):
            fault = await anyio.to_thread.run_sync(storage_fault, exc, self.path)
            if fault is not None:
                return StorageError(f"journal {self.path}: cannot be opened: {fault}")
        return JournalError(
            f"journal {self.path} is not a usable SQLite database: {exc}. The file is damaged: "
            f"restore it from a backup, or see what is left with 'jobd journal check' "
            "(docs/journal.md)"
        )

    async def _check_size(self, conn: aiosqlite.Connection) -> None:
        """A main file shorter than the pages it claims, with no WAL to hold the rest, was
        truncated: say so now rather than fail on the first read of a missing page."""
        try:
            rows = list(await conn.execute_fetchall("PRAGMA page_count"))
            size_rows = list(await conn.execute_fetchall("PRAGMA page_size"))
        except sqlite3.Error as exc:
            raise await self._unusable(exc) from exc
        claimed = int(rows[0][0]) * int(size_rows[0][0])
        actual, wal = await anyio.to_thread.run_sync(_sizes, self.path)
        if actual < claimed and not wal:
            raise JournalError(
                f"journal {self.path} is truncated ({actual} bytes of the {claimed} it "
                "claims). Restore it from a backup, or see what is left with 'jobd journal "
                "check' (docs/journal.md)"
            )

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        migrations = self.MIGRATIONS
        try:
            tables = {
                row[0]
                for row in await conn.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            if "schema_version" in tables:
                rows = list(await conn.execute_fetchall("SELECT max(version) FROM schema_version"))
                version = int(rows[0][0] or 0)
            elif tables - {"sqlite_sequence"}:
                raise JournalError(
                    f"journal {self.path} is a SQLite database but not a jobd "
                    f"journal (tables: {', '.join(sorted(tables))})"
                )
            else:
                version = 0
        except sqlite3.Error as exc:
            raise await self._unusable(exc) from exc
        if version > len(migrations):
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this jobd "
                f"understands ({len(migrations)}); run a newer jobd or move the file aside"
            )
        for target in range(version + 1, len(migrations) + 1):
            log.info("journal %s: migrating schema to version %d", self.path, target)
            try:
                await conn.executescript(
                    f"BEGIN IMMEDIATE; {migrations[target - 1]};"
                    f" INSERT INTO schema_version (version) VALUES ({target}); COMMIT;"
                )
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await conn.execute("ROLLBACK")
                raise JournalError(
                    f"journal {self.path}: migration to schema version {target} failed: {exc}"
                ) from exc

    async def _first_free_id(self, conn: aiosqlite.Connection) -> int:
        # sqlite_sequence keeps the largest run id ever stored, even after pruning deleted it.
        try:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0),"
                    " coalesce((SELECT max(run_id) FROM runs), 0))"
                )
            )
        except sqlite3.Error as exc:
            raise await self._unusable(exc) from exc
        return int(rows[0][0]) + 1

    # -- the writer -------------------------------------------------------------------------

    async def _enqueue(self, write: _Write) -> None:
        if not self._open or not self._writer_running:
            raise JournalError(f"journal {self.path} is not open")
        self._pending.append(write)
        committed = self._committed  # one event per batch: cheaper than one per write
        self._wake.set()
        if write.durable:
            self._urgent.set()
            await committed.wait()
            if write.error is not None:
                raise write.error

    async def _run_writer(self, *, task_status: TaskStatus[None]) -> None:
        # Shielded whole: cancelling the daemon must not strand a waiter that shielded its own
        # final-state write. Only close() stops this loop, after it has drained the queue.
        with anyio.CancelScope(shield=True):
            self._writer_running = True
            task_status.started()
            try:
                while True:
                    await self._wake.wait()
                    # A few loop ticks let writes that follow from this one join its commit
                    # (a trigger's run starting right away writes "running" next).
                    for _ in range(GATHER_TICKS):
                        await anyio.lowlevel.checkpoint()
                    if not self._urgent.is_set():
                        # Only lazy writes: give a durable one a while to come and share a commit.
                        with anyio.move_on_after(self.flush_interval):
                            await self._urgent.wait()
                    self._wake, self._urgent = anyio.Event(), anyio.Event()
                    batch, self._pending = self._pending, []
                    committed, self._committed = self._committed, anyio.Event()
                    try:
                        if batch:
                            began, errors = time.perf_counter(), self._stats.write_errors
                            await self._commit(batch)
                            if self.on_commit is not None:
                                self.on_commit(
                                    time.perf_counter() - began, self._stats.write_errors == errors
                                )
                    except BaseException as exc:  # a bug: fail the waiters, then surface it
                        self._fail(batch, exc)
                        raise
                    finally:
                        committed.set()
                    if self._closing and not self._pending:
                        return
            finally:
                self._writer_running = False
                self._fail(self._pending, JournalError(f"journal {self.path} is closed"))
                self._pending = []
                self._committed.set()
                self._writer_done.set()

    async def _commit(self, batch: list[_Write]) -> None:
        assert self._writer is not None
        delay = RETRY_MIN
        while True:
            try:
                await self._apply(self._writer, batch)
            except sqlite3.OperationalError as exc:
                fault = await anyio.to_thread.run_sync(storage_fault, exc, self.path)
                if fault is None or self._closing or self._no_retry:
                    self._fail(batch, exc)
                    return
                # The store cannot take writes for now (disk full, say): the writes wait and
                # are retried, so nothing awaited is lost and the daemon stays up.
                if self._fault is None:
                    log.error(
                        "journal %s: cannot write: %s; writes wait and are retried until "
                        "that is fixed (nothing already journaled is lost)",
                        self.path,
                        fault,
                    )
                self._fault = fault
                await anyio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except (sqlite3.Error, ValueError, OverflowError):
                await self._commit_apart(batch)
                return
            if self._fault is not None:
                log.warning(
                    "journal %s: writes go through again (%s is over)", self.path, self._fault
                )
                self._fault = None
            return

    async def _commit_apart(self, batch: list[_Write]) -> None:
        assert self._writer is not None
        try:
            await self._apply(self._writer, batch)
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            if isinstance(exc, sqlite3.OperationalError) or len(batch) == 1:
                # Locked, I/O error, disk full: the store itself failed, every write with it.
                self._fail(batch, exc)
                return
            # Something in one write: commit each alone, so one bad write fails by itself.
            for write in batch:
                try:
                    await self._apply(self._writer, [write])
                except (sqlite3.Error, ValueError, OverflowError) as one:
                    self._fail([write], one)

    async def _apply(self, conn: aiosqlite.Connection, batch: list[_Write]) -> None:
        """Apply the writes in one transaction. Kinds commute, so each is merged over the
        batch (the later write of a key wins) and written with one ``executemany``.

        The whole transaction is one call into the connection's thread, not one per
        statement: each hop costs the event loop a wake-up (~0.1-0.3 ms) on the way to exec."""
        runs: dict[int, tuple[Any, ...]] = {}
        cursors: dict[str, int] = {}
        paused: dict[str, bool] = {}
        manifests: dict[str, list[tuple[str, str, int, int]]] = {}
        for write in batch:
            runs.update((row[0], row) for row in write.runs)
            cursors.update(write.cursors)
            if write.paused is not None:
                paused[write.paused[0]] = write.paused[1]
            if write.manifest is not None:
                manifests[write.manifest[0]] = write.manifest[1]
        pruned = [run_id for write in batch for run_id in write.prune]

        def transact() -> None:
            # aiosqlite runs this in the connection's own thread (``_execute``: it has no
            # public way to run a function there, and has kept this one since 0.17)
            _transact(conn._conn, runs, cursors, paused, manifests, pruned, self.path)

        await conn._execute(transact)  # type: ignore[no-untyped-call]
        self._stats = replace(
            self._stats,
            commits=self._stats.commits + 1,
            writes=self._stats.writes + len(batch),
            runs_written=self._stats.runs_written + len(runs),
        )

    def _fail(self, batch: Sequence[_Write], exc: BaseException) -> None:
        if not batch:
            return
        message = f"journal {self.path}: write failed: {exc}"
        lost = 0
        for write in batch:
            error = JournalError(message)
            error.__cause__ = exc
            write.error = error
            lost += not write.durable
        if lost:
            # Nobody awaits a lazy write; the log and the stats are where its loss shows.
            log.error("%s (%d unawaited write(s) lost)", message, lost)
        self._stats = replace(
            self._stats, write_errors=self._stats.write_errors + len(batch), last_error=message
        )

    # -- Journal ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise JournalError(f"journal {self.path} is not open")

    def new_run_id(self) -> int:
        self._check_open()
        run_id = self._next_id
        self._next_id += 1
        return run_id

    async def put_runs(
        self,
        runs: list[RunRecord],
        *,
        cursors: Mapping[str, datetime] | None = None,
        durable: bool = True,
    ) -> None:
        write = _Write(
            durable=durable, runs=[encode_run(r) for r in runs], cursors=encode_cursors(cursors)
        )
        if not write.runs and not write.cursors:
            self._check_open()
            return
        self._next_id = max([self._next_id, *(row[0] + 1 for row in write.runs)])
        await self._enqueue(write)

    async def set_paused(self, job_id: str, paused: bool) -> None:
        await self._enqueue(_Write(durable=True, paused=(job_id, paused)))

    async def set_manifest(self, job_id: str, entries: Mapping[str, ManifestEntry]) -> None:
        rows = [(job_id, e.path, e.mtime_ns, e.size) for e in entries.values()]
        await self._enqueue(_Write(durable=True, manifest=(job_id, rows)))

    async def prune(self, *, before: datetime, keep_per_job: int) -> list[str]:
        if keep_per_job < 0:
            raise ValueError(f"keep_per_job must be >= 0, got {keep_per_job}")
        cutoff = to_micros(before, "before")
        await self._enqueue(_Write(durable=True))  # the reader sees every run queued before
        # Each batch is committed before the next read, so no run is found twice.
        logs: list[str] = []
        queued_at, run_id = -(2**63), 0
        while rows := await self._read(_PRUNE_BY_AGE, (cutoff, queued_at, run_id, PRUNE_BATCH)):
            await self._delete_runs(rows, logs)
            queued_at, run_id = rows[-1][2], rows[-1][0]
        for (job_id,) in await self._read(_PRUNE_JOBS):
            if keep_per_job and not await self._read(_PRUNE_ANY_BEYOND, (job_id, keep_per_job)):
                continue  # this job has no more runs than it keeps: the common case
            beyond = await self._read(_PRUNE_FINISHED_BEYOND, (job_id, keep_per_job))
            if not beyond:
                continue
            after = 0
            while rows := await self._read(
                _PRUNE_BY_COUNT, (job_id, after, beyond[0][0], PRUNE_BATCH)
            ):
                await self._delete_runs(rows, logs)
                after = rows[-1][0]
        return logs

    async def _delete_runs(self, rows: Sequence[sqlite3.Row], logs: list[str]) -> None:
        """Delete one batch of finished runs found by ``prune``, in one durable write; then
        leave the writer to other writes for as long again, so they rarely wait behind one."""
        began = time.perf_counter()
        await self._enqueue(_Write(durable=True, prune=[row[0] for row in rows]))
        logs.extend(row[1] for row in rows if row[1] is not None)
        await anyio.sleep(time.perf_counter() - began)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if not self._open or self._reader is None:
            raise JournalError(f"journal {self.path} is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise JournalError(f"journal {self.path}: read failed: {exc}") from exc

    async def get_run(self, run_id: int) -> RunRecord | None:
        rows = await self._read(f"SELECT {_COLS} FROM runs WHERE run_id = ?", (run_id,))
        return decode_run(rows[0]) if rows else None

    async def list_runs(
        self,
        *,
        job_id: str | None = None,
        states: frozenset[RunState] | None = None,
        flow_id: str | None = None,
        limit: int | None = 50,
        trigger: TriggerKind | None = None,
        before: int | None = None,
        queued_since: datetime | None = None,
    ) -> list[RunRecord]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        where: list[str] = []
        params: list[Any] = []
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(sorted(str(s) for s in states))
        if flow_id is not None:
            where.append("flow_id = ?")
            params.append(flow_id)
        if trigger is not None:
            where.append("trigger = ?")
            params.append(str(trigger))
        if before is not None:
            where.append("run_id < ?")
            params.append(before)
        if queued_since is not None:
            where.append("queued_at >= ?")
            params.append(to_micros(queued_since, "queued_since"))
        sql = f"SELECT {_COLS} FROM runs"
        if queued_since is not None:
            # Else SQLite walks every run newest first to skip the sort; a window is few.
            sql += " INDEXED BY runs_by_queued"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY run_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [decode_run(row) for row in await self._read(sql, params)]

    async def unfinished_runs(self) -> list[RunRecord]:
        rows = await self._read(
            f"SELECT {_COLS} FROM runs WHERE state IN ({_UNFINISHED_SQL}) ORDER BY run_id"
        )
        return [decode_run(row) for row in rows]

    async def latest_finished(self, job_id: str) -> RunRecord | None:
        rows = await self._read(
            f"SELECT {_COLS} FROM runs WHERE job_id = ? AND state IN ({_FINISHED_SQL})"
            " ORDER BY run_id DESC LIMIT 1",
            (job_id,),
        )
        return decode_run(rows[0]) if rows else None

    async def latest_finished_of(self, job_ids: Iterable[str]) -> dict[str, RunRecord]:
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        # One read: a lookup in runs_by_job for each job.
        rows = await self._read(
            f"SELECT {_COLS} FROM runs WHERE run_id IN (SELECT (SELECT run_id FROM runs AS r"
            f" WHERE r.job_id = j.value AND r.state IN ({_FINISHED_SQL})"
            " ORDER BY r.run_id DESC LIMIT 1) FROM json_each(?) AS j)",
            (json.dumps(ids),),
        )
        return {run.job_id: run for run in map(decode_run, rows)}

    async def last_successes(self) -> dict[str, datetime]:
        rows = await self._read(_LAST_SUCCESSES)
        return {job_id: from_micros(at) for job_id, at in rows if at is not None}

    async def cursors(self) -> dict[str, datetime]:
        rows = await self._read("SELECT job_id, slot FROM cursors")
        return {job_id: from_micros(slot) for job_id, slot in rows}

    async def paused(self) -> set[str]:
        return {row[0] for row in await self._read("SELECT job_id FROM paused")}

    async def manifest(self, job_id: str) -> dict[str, ManifestEntry]:
        rows = await self._read(
            "SELECT path, mtime_ns, size FROM manifest WHERE job_id = ?", (job_id,)
        )
        return {
            path: ManifestEntry(path=path, mtime_ns=mtime_ns, size=size)
            for path, mtime_ns, size in rows
        }


def _transact(
    db: sqlite3.Connection,
    runs: Mapping[int, tuple[Any, ...]],
    cursors: Mapping[str, int],
    paused: Mapping[str, bool],
    manifests: Mapping[str, list[tuple[str, str, int, int]]],
    pruned: Sequence[int],
    path: Path,
) -> None:
    """One transaction, in the writer connection's thread; rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if runs:
            db.executemany(_UPSERT_RUN, runs.values())
        if cursors:
            db.executemany(_UPSERT_CURSOR, cursors.items())
        if paused:
            db.executemany(
                "INSERT OR IGNORE INTO paused (job_id) VALUES (?)",
                [(j,) for j, p in paused.items() if p],
            )
            db.executemany(
                "DELETE FROM paused WHERE job_id = ?", [(j,) for j, p in paused.items() if not p]
            )
        if manifests:
            db.executemany("DELETE FROM manifest WHERE job_id = ?", [(j,) for j in manifests])
            db.executemany(
                "INSERT INTO manifest (job_id, path, mtime_ns, size) VALUES (?, ?, ?, ?)",
                [row for rows in manifests.values() for row in rows],
            )
        if pruned:  # a batch of finished runs found by ``prune``
            db.executemany(_PRUNE_DELETE, [(run_id,) for run_id in pruned])
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("journal %s: rollback failed: %s", path, exc)
        raise


def _sizes(path: Path) -> tuple[int, int]:
    """The sizes of the journal's main file and of its WAL (0 when there is none)."""
    try:
        wal = os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        wal = 0
    return os.stat(path).st_size, wal


def _flock_unless_held(fd: int, *, patience: float = 3.0) -> None:
    """Take the lock; while the pid written in the file is gone, keep trying for ``patience``.

    A daemon killed with SIGKILL may leave its lock held for a moment by a child forked but not
    yet exec'd (the descriptor is close-on-exec); a live holder is refused at once."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                raise
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            if not text.isdigit() or _pid_alive(int(text)):
                raise
            time.sleep(0.05)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create_durably(path: Path) -> None:
    """Create the database file whole and make its directory entry durable: it is built
    under a temporary name and renamed, so ``jobd.db`` is never left empty (an empty one
    means damage, docs/journal.md); SQLite syncs the directory for its WAL, not this file."""
    tmp = path.with_name(path.name + ".new")
    # Runs may carry secrets in params and outputs; the WAL files inherit this mode.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode = WAL")  # writes the header: page 1
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, sqlite3.Error):
            raise OSError(errno.EIO, str(exc)) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def _disconnect(conn: aiosqlite.Connection) -> None:
    with anyio.CancelScope(shield=True):
        await conn.close()


def _unlock(fd: int) -> None:
    # Closing the descriptor drops the flock; the file stays, so lockers never race on it.
    os.close(fd)
