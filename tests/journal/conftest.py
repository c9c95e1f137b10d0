"""Journal fixtures: one factory fixture runs the contract suite against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from blockbuster import blockbuster_ctx

from jobd._enums import RunState, TriggerKind
from jobd.journal import Journal, MemoryJournal, RunRecord, SQLiteJournal

JournalFactory = Callable[[], Journal]
T0 = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_blocking_in_loop() -> Iterator[None]:
    """Fail any blocking call made from the event loop by jobd or these tests."""
    with blockbuster_ctx(["jobd", "tests"]):
        yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobd.db"


@pytest.fixture(params=["memory", "sqlite"])
def make_journal(request: pytest.FixtureRequest, db_path: Path) -> JournalFactory:
    """A factory for the journal under test. Calling it again stands for a daemon restart:
    the same file for SQLite, the same (closed and reopened) instance for memory."""
    if request.param == "memory":
        memory = MemoryJournal()
        return lambda: memory
    return lambda: SQLiteJournal(db_path)


@asynccontextmanager
async def opened(journal: Journal) -> AsyncIterator[Journal]:
    """The journal, open, with every wait inside bounded."""
    with anyio.fail_after(10):
        async with journal:
            yield journal


def make_run(run_id: int, job_id: str = "job", **changes: Any) -> RunRecord:
    """A run queued ``run_id`` minutes after T0; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "run_id": run_id,
        "job_id": job_id,
        "trigger": TriggerKind.MANUAL,
        "state": RunState.QUEUED,
        "queued_at": T0 + timedelta(minutes=run_id),
    }
    fields.update(changes)
    return RunRecord(**fields)
