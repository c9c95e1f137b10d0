"""Every time slot accounted for: with ``catchup = "all"`` each slot gets a run of its own;
elsewhere a slot folded into a queued run is recorded on that run (``folded_slots``). Queued
runs are shown to subscribers only once their transaction has committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

import anyio
import pytest

from jobd._enums import RunState, TriggerKind
from jobd.config.model import DaemonConfig
from jobd.journal.abc import RunRecord, run_key
from jobd.journal.sqlite import SQLiteJournal
from jobd.supervisor.clock import FakeClock

from ..slots import offset_seconds
from .conftest import T0, running, settle

MakeConfig = Callable[..., DaemonConfig]
MINUTE = timedelta(minutes=1)
OFF = timedelta(seconds=offset_seconds("tick", 60))  # every = "1m" runs at :35 of each minute


def at(minute: int) -> datetime:
    return T0 + minute * MINUTE + OFF


async def interrupted(config: DaemonConfig, job_id: str, slot_minute: int) -> None:
    """Leave the journal as a crash would: a run of ``job_id`` journaled as running."""
    async with SQLiteJournal(config.journal_path) as j:
        await j.put_runs(
            [
                RunRecord(
                    run_id=j.new_run_id(),
                    job_id=job_id,
                    trigger=TriggerKind.EVERY,
                    state=RunState.RUNNING,
                    queued_at=at(slot_minute),
                    scheduled_for=at(slot_minute),
                    started_at=at(slot_minute),
                )
            ],
            cursors={job_id: at(slot_minute)},
        )


async def all_runs(config: DaemonConfig, job_id: str) -> list[RunRecord]:
    async with SQLiteJournal(config.journal_path) as j:
        return sorted(await j.list_runs(job_id=job_id, limit=None), key=lambda r: r.run_id)


async def test_catchup_all_gives_every_missed_slot_its_own_run(make_config: MakeConfig) -> None:
    """The default overlap (queue): the interrupted run is re-queued, and each of the ten
    missed slots still gets a run of its own, started one after another."""
    config = make_config("""
        [jobs.tick]
        every = "1m"
        catchup = "all"
        command = "echo $JOBD_SCHEDULED_FOR >> ran"
        """)
    await interrupted(config, "tick", 1)
    clock = FakeClock(at(11) + timedelta(seconds=1))
    async with running(config, clock=clock) as d:
        await settle(d)
    runs = await all_runs(config, "tick")
    # Written by hand: slots 1 (the interrupted run) and 2..11 (missed while down).
    expected = [at(m) for m in range(1, 12)]
    assert [r.scheduled_for for r in runs] == expected
    assert all(r.state is RunState.SUCCEEDED and not r.folded_slots for r in runs)
    assert [r.trigger for r in runs] == [TriggerKind.RECOVERY] + [TriggerKind.CATCHUP] * 10
    lines = (config.jobs_dir / "ran").read_text().split()
    assert len(lines) == 11


async def test_folded_slot_is_recorded_on_the_run_it_folded_into(make_config: MakeConfig) -> None:
    """catchup = "latest", overlap = "queue": the newest missed slot folds into the
    re-queued interrupted run, which names it in its record, its JSON, ``why`` and its
    environment."""
    config = make_config("""
        [jobs.tick]
        every = "1m"
        catchup = "latest"
        command = "echo folded=$JOBD_FOLDED_SLOTS"
        """)
    await interrupted(config, "tick", 1)
    clock = FakeClock(at(5) + timedelta(seconds=1))
    async with running(config, clock=clock) as d:
        await settle(d)
        why = await d.why("tick")
    [run] = await all_runs(config, "tick")
    assert run.trigger is TriggerKind.RECOVERY and run.state is RunState.SUCCEEDED
    assert run.scheduled_for == at(1)
    assert run.folded_slots == (at(5),)
    assert run.to_json()["folded_slots"] == ["2026-03-02T12:05:35+00:00"]
    assert any(
        "also covers 1 folded slot(s): 2026-03-02T12:05:35+00:00" in line for line in why["lines"]
    )
    assert "folded=2026-03-02T12:05:35+00:00" in (await anyio.Path(run.log_path or "").read_text())


async def test_live_slot_folds_into_a_waiting_run(make_config: MakeConfig) -> None:
    """overlap = "queue", catchup = "latest": a slot that falls while one run runs and
    another waits folds into the waiting one, and says so."""
    config = make_config("""
        [jobs.tick]
        every = "1m"
        catchup = "latest"
        command = "sleep 0.3"
        """)
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        await settle(d)
        for m in (0, 1, 2):  # slot 0 runs, slot 1 waits, slot 2 folds into slot 1's run
            clock.set(at(m))
            with anyio.fail_after(5):
                while d.cursors.get("tick") != at(m):  # noqa: ASYNC110 (no event for it)
                    await anyio.sleep(0.01)
        await settle(d)
    runs = await all_runs(config, "tick")
    assert [(r.scheduled_for, r.folded_slots) for r in runs] == [(at(0), ()), (at(1), (at(2),))]


async def test_queued_run_is_published_only_after_its_commit(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.hello]
        command = "true"
        """)
    async with running(config) as d:
        async with d.subscribe() as events:
            seen_queued: list[bool] = []

            async def watch() -> None:
                async for run in events:
                    if run.state is RunState.QUEUED:
                        db = sqlite3.connect(f"file:{config.journal_path}?mode=ro", uri=True)
                        try:
                            row = db.execute(
                                "SELECT state FROM runs WHERE run_id = ?", (run.run_id,)
                            ).fetchone()
                        finally:
                            db.close()
                        seen_queued.append(row is not None)
                    if len(seen_queued) == 5:
                        return

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                for _ in range(5):
                    await d.run_job("hello", {})
        await settle(d)
    assert seen_queued == [True] * 5


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (
            {"scheduled_for": T0},
            {"scheduled_for": T0, "run_id": 9, "attempt": 3, "trigger": TriggerKind.RECOVERY},
            True,
        ),
        ({"scheduled_for": T0}, {"scheduled_for": T0 + MINUTE}, False),
        ({"scheduled_for": T0}, {"scheduled_for": T0, "job_id": "other"}, False),
        (
            {"flow_id": "7", "matrix": {"os": "linux"}},
            {"flow_id": "7", "matrix": {"os": "bsd"}},
            False,
        ),
        (
            {"flow_id": "7", "matrix": {"os": "linux"}},
            {"flow_id": "7", "matrix": {"os": "linux"}, "run_id": 8},
            True,
        ),
        ({}, {"attempt": 2, "trigger": TriggerKind.RECOVERY}, True),
        ({}, {"run_id": 2}, False),
    ],
)
def test_run_key(a: dict[str, object], b: dict[str, object], same: bool) -> None:
    base = RunRecord(
        run_id=1, job_id="job", trigger=TriggerKind.EVERY, state=RunState.QUEUED, queued_at=T0
    )
    ka, kb = run_key(base.evolve(**a)), run_key(base.evolve(**b))
    assert (ka == kb) is same
    assert len(ka) == 32 and int(ka, 16) >= 0
