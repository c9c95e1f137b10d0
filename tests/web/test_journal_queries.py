"""The dashboard's run queries walk an index, whatever the filters: no full scan and no sort
of the whole table, so a page costs the same over millions of runs (SQLite's own plan)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobd._enums import RunState, TriggerKind
from jobd.journal.sqlite import SQLiteJournal

T = datetime(2026, 12, 5, tzinfo=UTC)
FILTERS: list[dict[str, object]] = [
    {},
    {"before": 1000},
    {"job_id": "a", "before": 1000},
    {"states": frozenset({RunState.FAILED}), "before": 1000},
    {"trigger": TriggerKind.CRON, "before": 1000},
    {"flow_id": "17"},
    {"job_id": "a", "states": frozenset({RunState.FAILED}), "before": 1000},
    {"queued_since": T},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(sorted(f)) or "none")
async def test_run_queries_use_an_index(tmp_path: Path, filters: dict[str, object]) -> None:
    seen: list[str] = []
    async with SQLiteJournal(tmp_path / "jobd.db") as journal:
        assert journal._reader is not None
        await journal._reader.set_trace_callback(seen.append)
        await journal.list_runs(limit=51, **filters)  # type: ignore[arg-type]
        await journal._reader.set_trace_callback(None)  # type: ignore[arg-type]
    sql = next(s for s in seen if s.startswith("SELECT"))
    with sqlite3.connect(tmp_path / "jobd.db") as conn:
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    if filters:
        assert any("USING" in step for step in plan), plan  # an index or the rowid
        assert not any(step == "SCAN runs" for step in plan), plan
    else:  # the table in rowid order, newest first: LIMIT stops it after one page
        assert plan == ["SCAN runs"]
    if "queued_since" in filters:  # only the window's runs get sorted
        assert plan == [
            "SEARCH runs USING INDEX runs_by_queued (queued_at>?)",
            "USE TEMP B-TREE FOR ORDER BY",
        ]
    else:  # newest first straight off the index
        assert not any("TEMP B-TREE" in step for step in plan), plan
