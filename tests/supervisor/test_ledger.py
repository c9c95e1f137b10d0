"""The ledger: a run record reaches subscribers only after the journal committed it, and in
the order it was written; and a whole daemon publishes nothing ahead of its commit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JournalError
from jobd.config.model import DaemonConfig
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import SQLiteJournal
from jobd.supervisor.daemon import Daemon
from jobd.supervisor.ledger import Ledger

from .conftest import settle

MakeConfig = Callable[..., DaemonConfig]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class SlowJournal(SQLiteJournal):
    """A real SQLite journal whose writes take ``delay`` before they start, and which
    records what each returned write committed."""

    def __init__(self, path: Path, delays: Mapping[int, float] | None = None) -> None:
        super().__init__(path)
        self.delays = dict(delays or {})
        self.committed: list[tuple[int, RunState]] = []
        self.refuse: set[int] = set()  # run ids whose write fails, as a full disk would

    async def put_runs(
        self,
        runs: list[RunRecord],
        *,
        cursors: Mapping[str, datetime] | None = None,
        durable: bool = True,
    ) -> None:
        await anyio.sleep(max((self.delays.get(r.run_id, 0.02) for r in runs), default=0.0))
        if any(r.run_id in self.refuse for r in runs):
            raise JournalError("database or disk is full")
        await super().put_runs(runs, cursors=cursors, durable=durable)
        self.committed += [(r.run_id, r.state) for r in runs]


def run(run_id: int, state: RunState = RunState.QUEUED) -> RunRecord:
    return RunRecord(
        run_id=run_id, job_id="j", trigger=TriggerKind.MANUAL, state=state, queued_at=T0
    )


async def test_a_record_is_published_only_after_its_commit(tmp_path: Path) -> None:
    journal = SlowJournal(tmp_path / "j.db")
    seen: list[tuple[int, RunState, bool]] = []
    with anyio.fail_after(10):
        async with journal:
            ledger = Ledger(journal)
            async with ledger.subscribe() as events, anyio.create_task_group() as tg:

                async def watch() -> None:
                    async for r in events:
                        seen.append((r.run_id, r.state, (r.run_id, r.state) in journal.committed))
                        if len(seen) == 2:
                            return

                tg.start_soon(watch)
                await ledger.write([run(1)])
                await ledger.write([run(1, RunState.RUNNING)])
            assert await journal.get_run(1) == run(1, RunState.RUNNING)
    assert seen == [(1, RunState.QUEUED, True), (1, RunState.RUNNING, True)]


async def test_records_are_published_in_write_order(tmp_path: Path) -> None:
    # The first write's commit returns later than the second's: the second waits for it.
    journal = SlowJournal(tmp_path / "j.db", delays={1: 0.2, 2: 0.0})
    order: list[int] = []
    with anyio.fail_after(10):
        async with journal:
            ledger = Ledger(journal)
            async with ledger.subscribe() as events:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(ledger.write, [run(1)])
                    await anyio.sleep(0.05)
                    await ledger.write([run(2)])
                    assert journal.committed == [(2, RunState.QUEUED)]
                    assert events.statistics().current_buffer_used == 0  # 2 waits for 1
                order = [events.receive_nowait().run_id for _ in range(2)]
    assert order == [1, 2]


async def test_a_failed_write_publishes_nothing_and_blocks_no_one(tmp_path: Path) -> None:
    journal = SlowJournal(tmp_path / "j.db")
    with anyio.fail_after(10):
        async with journal:
            ledger = Ledger(journal)
            async with ledger.subscribe() as events:
                journal.refuse.add(1)
                with pytest.raises(JournalError):
                    await ledger.write([run(1)])
                await ledger.write([run(2)])
                assert [events.receive_nowait().run_id] == [2]


async def test_the_daemon_publishes_no_run_state_before_it_is_committed(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("""
        [jobs.a]
        command = "true"
        """)
    journal = SlowJournal(config.journal_path)
    d = Daemon(config, journal=journal, control=False, watch_jobs_dir=False, handle_signals=False)
    seen: list[tuple[RunState, bool]] = []
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(10):
            await tg.start(d.run)
        async with d.subscribe() as events:
            await d.run_job("a", {})
            await settle(d)
            while (r := _next(events)) is not None:
                seen.append((r.state, (r.run_id, r.state) in journal.committed))
        d.stop()
    assert [s for s, _ in seen] == [
        RunState.QUEUED,
        RunState.RUNNING,
        RunState.RUNNING,
        RunState.SUCCEEDED,
    ]  # the second running: its pid
    assert all(ok for _, ok in seen), seen


def _next(events: MemoryObjectReceiveStream[RunRecord]) -> RunRecord | None:
    try:
        return events.receive_nowait()
    except anyio.WouldBlock:
        return None
