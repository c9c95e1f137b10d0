"""The journal contract, run against every backend through ``make_journal``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import anyio
import pytest

from jobd._enums import FINISHED_STATES, RunState, TriggerKind
from jobd._exceptions import JournalError
from jobd.journal import ManifestEntry, RunRecord

from .conftest import T0, JournalFactory, make_run, opened

BERLIN_SUMMER = timezone(timedelta(hours=2))


def full_run(run_id: int = 7) -> RunRecord:
    """A run with every field set, datetimes in a non-UTC zone."""
    return RunRecord(
        run_id=run_id,
        job_id="etl.load-1",
        trigger=TriggerKind.WATCH,
        state=RunState.FAILED,
        queued_at=datetime(2025, 3, 30, 3, 0, 0, 123456, tzinfo=BERLIN_SUMMER),
        attempt=3,
        scheduled_for=datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
        flow_id="flow-9",
        params={"name": "värde", "empty": ""},
        changed_paths=("inbox/a b.csv", "inbox/ü.csv"),
        matrix={"python": "3.12", "os": ["linux", "bsd"], "n": 3, "flag": True, "opt": None},
        started_at=datetime(2025, 3, 30, 1, 0, 1, tzinfo=UTC),
        finished_at=datetime(2025, 3, 30, 1, 2, 3, 999999, tzinfo=UTC),
        exit_code=-9,
        pid=4242,
        pid_start=2**40,
        outputs={"rows": "12", "path": "/tmp/x"},
        log_path="/var/lib/jobd/logs/7.log",
        message="killed by signal 9\nsecond line",
    )


async def test_every_field_round_trips(make_journal: JournalFactory) -> None:
    run = full_run()
    async with opened(make_journal()) as journal:
        await journal.put_runs([run])
        got = await journal.get_run(run.run_id)
    assert got == run
    assert got is not None
    for stamp in (got.queued_at, got.scheduled_for, got.started_at, got.finished_at):
        assert stamp is not None and stamp.utcoffset() == timedelta(0)
    assert isinstance(got.changed_paths, tuple)
    async with opened(make_journal()) as journal:
        assert await journal.get_run(run.run_id) == run


async def test_defaults_round_trip(make_journal: JournalFactory) -> None:
    run = make_run(1)
    async with opened(make_journal()) as journal:
        await journal.put_runs([run])
        assert await journal.get_run(1) == run
        assert await journal.get_run(2) is None


async def test_put_replaces_by_run_id(make_journal: JournalFactory) -> None:
    queued = make_run(1, params={"a": "1"})
    done = queued.evolve(
        state=RunState.SUCCEEDED, exit_code=0, params={}, finished_at=T0 + timedelta(hours=1)
    )
    async with opened(make_journal()) as journal:
        await journal.put_runs([queued])
        await journal.put_runs([done])
        assert await journal.list_runs(limit=None) == [done]


async def test_later_write_in_one_call_wins(make_journal: JournalFactory) -> None:
    first = make_run(1)
    async with opened(make_journal()) as journal:
        await journal.put_runs([first, first.evolve(state=RunState.RUNNING)])
        got = await journal.get_run(1)
    assert got is not None and got.state is RunState.RUNNING


async def test_list_runs_newest_first_with_filters(make_journal: JournalFactory) -> None:
    runs = [
        make_run(1, "a", state=RunState.SUCCEEDED, flow_id="f1"),
        make_run(2, "b", state=RunState.FAILED, flow_id="f1"),
        make_run(3, "a", state=RunState.RUNNING),
        make_run(4, "b", state=RunState.SUCCEEDED, flow_id="f2"),
        make_run(5, "a", state=RunState.QUEUED, flow_id="f2"),
    ]
    async with opened(make_journal()) as journal:
        await journal.put_runs(runs[::-1])  # insertion order must not matter

        async def ids(**kw: object) -> list[int]:
            return [r.run_id for r in await journal.list_runs(**kw)]  # type: ignore[arg-type]

        assert await ids() == [5, 4, 3, 2, 1]
        assert await ids(limit=2) == [5, 4]
        assert await ids(limit=0) == []
        assert await ids(limit=None) == [5, 4, 3, 2, 1]
        assert await ids(job_id="a") == [5, 3, 1]
        assert await ids(job_id="a", limit=1) == [5]
        assert await ids(job_id="nope") == []
        assert await ids(states=frozenset({RunState.SUCCEEDED})) == [4, 1]
        assert await ids(states=FINISHED_STATES, job_id="b") == [4, 2]
        assert await ids(states=frozenset()) == []
        assert await ids(flow_id="f1") == [2, 1]
        assert await ids(flow_id="f2", job_id="b") == [4]
        assert await ids(flow_id="f2", states=frozenset({RunState.QUEUED})) == [5]
        with pytest.raises(ValueError, match="limit"):
            await journal.list_runs(limit=-1)
        assert await journal.list_runs(limit=1) == [runs[4]]


async def test_default_limit_is_50(make_journal: JournalFactory) -> None:
    async with opened(make_journal()) as journal:
        await journal.put_runs([make_run(i) for i in range(1, 61)])
        listed = await journal.list_runs()
    assert [r.run_id for r in listed] == list(range(60, 10, -1))


async def test_unfinished_runs_oldest_first(make_journal: JournalFactory) -> None:
    runs = [make_run(i, state=state) for i, state in enumerate(RunState, start=1)]
    async with opened(make_journal()) as journal:
        await journal.put_runs(runs[::-1])
        unfinished = await journal.unfinished_runs()
        assert [(r.run_id, r.state) for r in unfinished] == [
            (1, RunState.QUEUED),
            (2, RunState.RUNNING),
        ]
        await journal.put_runs([runs[0].evolve(state=RunState.CANCELLED)])
        assert [r.run_id for r in await journal.unfinished_runs()] == [2]
    async with opened(make_journal()) as journal:
        assert [r.run_id for r in await journal.unfinished_runs()] == [2]


async def test_latest_finished(make_journal: JournalFactory) -> None:
    async with opened(make_journal()) as journal:
        assert await journal.latest_finished("a") is None
        await journal.put_runs(
            [
                make_run(1, "a", state=RunState.FAILED),
                make_run(2, "a", state=RunState.SKIPPED),
                make_run(3, "b", state=RunState.SUCCEEDED),
                make_run(4, "a", state=RunState.RUNNING),
                make_run(5, "a", state=RunState.QUEUED),
            ]
        )
        latest = await journal.latest_finished("a")
        assert latest is not None and latest.run_id == 2
        assert latest.state is RunState.SKIPPED
        b = await journal.latest_finished("b")
        assert b is not None and b.run_id == 3


async def test_last_successes(make_journal: JournalFactory) -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    async with opened(make_journal()) as journal:
        assert await journal.last_successes() == {}
        await journal.put_runs(
            [
                make_run(1, "a", state=RunState.SUCCEEDED, finished_at=at(10)),
                make_run(2, "a", state=RunState.SUCCEEDED, finished_at=at(30)),
                make_run(3, "a", state=RunState.FAILED, finished_at=at(40)),
                # a later run id that finished earlier: the newest finish counts
                make_run(4, "a", state=RunState.SUCCEEDED, finished_at=at(20)),
                make_run(5, "b", state=RunState.FAILED, finished_at=at(5)),
                make_run(
                    6,
                    "c",
                    state=RunState.SUCCEEDED,
                    finished_at=datetime(2025, 3, 30, 3, 0, tzinfo=BERLIN_SUMMER),
                ),
            ]
        )
        assert await journal.last_successes() == {
            "a": at(30),
            "c": datetime(2025, 3, 30, 1, 0, tzinfo=UTC),
        }


async def test_cursors_are_set_with_runs(make_journal: JournalFactory) -> None:
    slot = datetime(2025, 3, 30, 2, 0, tzinfo=BERLIN_SUMMER)
    async with opened(make_journal()) as journal:
        assert await journal.cursors() == {}
        await journal.put_runs([make_run(1, "a")], cursors={"a": slot, "b": T0})
        assert await journal.cursors() == {"a": slot, "b": T0}
        assert await journal.get_run(1) is not None
        await journal.put_runs([], cursors={"a": slot + timedelta(hours=1)})
        await journal.put_runs([])
    async with opened(make_journal()) as journal:
        cursors = await journal.cursors()
    assert cursors == {"a": slot + timedelta(hours=1), "b": T0}
    assert all(c.utcoffset() == timedelta(0) for c in cursors.values())


async def test_bad_call_writes_nothing(make_journal: JournalFactory) -> None:
    """A call applies whole or not at all: one bad record rejects the call."""
    naive = datetime(2025, 1, 1)
    async with opened(make_journal()) as journal:
        with pytest.raises(ValueError, match="run 2: started_at must be an aware datetime"):
            await journal.put_runs(
                [make_run(1), make_run(2, started_at=naive)], cursors={"job": T0}
            )
        with pytest.raises(ValueError, match="cursor of job 'x' must be an aware"):
            await journal.put_runs([make_run(3)], cursors={"x": naive})
        with pytest.raises(ValueError, match="matrix cannot be stored as JSON"):
            await journal.put_runs([make_run(4, matrix={"x": {1, 2}})])
        with pytest.raises(ValueError, match="does not fit in 64 bits"):
            await journal.put_runs([make_run(5, pid_start=2**64)])
        assert await journal.list_runs(limit=None) == []
        assert await journal.cursors() == {}


async def test_paused_survives_reopen(make_journal: JournalFactory) -> None:
    async with opened(make_journal()) as journal:
        assert await journal.paused() == set()
        await journal.set_paused("a", True)
        await journal.set_paused("a", True)
        await journal.set_paused("b", True)
        await journal.set_paused("c", False)
        assert await journal.paused() == {"a", "b"}
    async with opened(make_journal()) as journal:
        assert await journal.paused() == {"a", "b"}
        await journal.set_paused("a", False)
    async with opened(make_journal()) as journal:
        assert await journal.paused() == {"b"}


async def test_manifest_is_replaced_whole(make_journal: JournalFactory) -> None:
    def entries(*specs: tuple[str, int, int]) -> dict[str, ManifestEntry]:
        return {p: ManifestEntry(path=p, mtime_ns=m, size=s) for p, m, s in specs}

    first = entries(("in/a.csv", 1_700_000_000_123_456_789, 10), ("in/b.csv", 2, 0))
    second = entries(("in/b.csv", 3, 5), ("in/c.csv", 4, 6))
    other = entries(("x", 1, 1))
    async with opened(make_journal()) as journal:
        assert await journal.manifest("w") == {}
        await journal.set_manifest("w", first)
        await journal.set_manifest("v", other)
        assert await journal.manifest("w") == first
        await journal.set_manifest("w", second)
        assert await journal.manifest("w") == second
    async with opened(make_journal()) as journal:
        assert await journal.manifest("w") == second
        assert await journal.manifest("v") == other
        await journal.set_manifest("v", {})
        assert await journal.manifest("v") == {}


async def test_prune_by_count_and_age(make_journal: JournalFactory) -> None:
    def done(run_id: int, job: str, hours: int, log: bool = True) -> RunRecord:
        return make_run(
            run_id,
            job,
            state=RunState.SUCCEEDED,
            finished_at=T0 + timedelta(hours=hours),
            log_path=f"logs/{run_id}.log" if log else None,
        )

    runs = [
        done(1, "a", 1),
        done(2, "a", 2, log=False),
        done(3, "a", 3),
        done(4, "a", 4),
        make_run(5, "a", state=RunState.RUNNING, log_path="logs/5.log"),
        done(6, "b", 1),
        done(7, "b", 10),
        make_run(8, "b", state=RunState.SKIPPED),  # finished, no finished_at: kept by age
    ]
    async with opened(make_journal()) as journal:
        await journal.put_runs(runs)
        # Keep the newest 2 finished per job: drops 1 and 2 of "a", and 6 of "b".
        pruned = await journal.prune(before=T0, keep_per_job=2)
        assert pruned == ["logs/1.log", "logs/6.log"]
        assert [r.run_id for r in await journal.list_runs(limit=None)] == [8, 7, 5, 4, 3]
        # By age: finished before T0+5h goes, whatever the count; unfinished never goes.
        pruned = await journal.prune(before=T0 + timedelta(hours=5), keep_per_job=10)
        assert pruned == ["logs/3.log", "logs/4.log"]
        assert [r.run_id for r in await journal.list_runs(limit=None)] == [8, 7, 5]
        assert await journal.prune(before=T0, keep_per_job=0) == ["logs/7.log"]
        assert [r.run_id for r in await journal.list_runs(limit=None)] == [5]
        with pytest.raises(ValueError, match="keep_per_job"):
            await journal.prune(before=T0, keep_per_job=-1)
    async with opened(make_journal()) as journal:
        assert [r.run_id for r in await journal.list_runs(limit=None)] == [5]


async def test_new_run_id_is_monotonic_across_reopen(make_journal: JournalFactory) -> None:
    async with opened(make_journal()) as journal:
        ids = [journal.new_run_id() for _ in range(5)]
        assert ids == sorted(set(ids))
        await journal.put_runs([make_run(ids[-1], state=RunState.SUCCEEDED)])
        await journal.put_runs([make_run(100, state=RunState.SUCCEEDED)])
        assert journal.new_run_id() > 100
    async with opened(make_journal()) as journal:
        after = journal.new_run_id()
        assert after > 100
        # Pruning the newest run must not let its id come back.
        assert await journal.prune(before=T0 + timedelta(days=999), keep_per_job=0) == []
        assert await journal.list_runs(limit=None) == []
    async with opened(make_journal()) as journal:
        assert journal.new_run_id() > 100


async def test_concurrent_writers_all_land(make_journal: JournalFactory) -> None:
    async with opened(make_journal()) as journal:
        runs = [make_run(journal.new_run_id(), f"j{i % 7}") for i in range(200)]
        async with anyio.create_task_group() as tg:
            for run in runs:
                tg.start_soon(journal.put_runs, [run])
        assert await journal.list_runs(limit=None) == runs[::-1]


async def test_closed_journal_refuses(make_journal: JournalFactory) -> None:
    journal = make_journal()
    with pytest.raises(JournalError, match="not open"):
        journal.new_run_id()
    with pytest.raises(JournalError, match="not open"):
        await journal.get_run(1)
    async with opened(journal):
        pass
    with pytest.raises(JournalError, match="not open"):
        await journal.put_runs([make_run(1)])
    with pytest.raises(JournalError, match="not open"):
        await journal.set_paused("a", True)
    with pytest.raises(JournalError, match="not open"):
        await journal.list_runs()
