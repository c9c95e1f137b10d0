"""On time: a slot whose job is idle is admitted and journaled ``clock.lead`` ahead of its
instant, and its process is held until the instant; a busy job's slot is admitted at the
instant, so that overlap decides as it would then (docs/scheduling.md, "On time")."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio

from jobd._enums import RunState
from jobd.config.model import DaemonConfig
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import SQLiteJournal
from jobd.supervisor.clock import FakeClock
from jobd.supervisor.daemon import Daemon

from ..slots import offset_seconds
from .conftest import T0, running, settle

MakeConfig = Callable[..., DaemonConfig]
LEAD = timedelta(seconds=10)
SLOT = T0 + timedelta(minutes=1, seconds=offset_seconds("tick", 60))


async def runs_of(d: Daemon, job_id: str, count: int) -> list[RunRecord]:
    """The job's runs, once there are ``count`` of them."""
    with anyio.fail_after(5):
        while len(runs := await d.journal.list_runs(job_id=job_id, limit=None)) < count:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return sorted(runs, key=lambda r: r.run_id)


async def journaled(config: DaemonConfig, job_id: str) -> list[RunRecord]:
    async with SQLiteJournal(config.journal_path) as j:
        return sorted(await j.list_runs(job_id=job_id, limit=None), key=lambda r: r.run_id)


@asynccontextmanager
async def before_the_slot(config: DaemonConfig) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    """A daemon on an injected clock 30 s before the slot (so outside the lead), settled."""
    clock = FakeClock(SLOT - timedelta(seconds=30), lead=LEAD)
    async with running(config, clock=clock) as d:
        await settle(d)
        yield d, clock


def tick_job(command: str, extra: str = "") -> str:
    return f'[jobs.tick]\nevery = "1m"\n{extra}command = "{command}"\n'


async def held(d: Daemon, clock: FakeClock) -> RunRecord:
    """Move the clock to 4 s before the slot (within the lead); the slot's run, once it is
    journaled running and held."""
    clock.set(SLOT - timedelta(seconds=4))
    [run] = await runs_of(d, "tick", 1)
    rid = run.run_id
    with anyio.fail_after(5):
        while rid not in d.active or d.active[rid].runner.run.state is not RunState.RUNNING:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    return d.active[rid].runner.run


async def test_idle_job_is_journaled_ahead_and_spawned_at_its_slot(
    make_config: MakeConfig,
) -> None:
    config = make_config(tick_job("echo $JOBD_SCHEDULED_FOR > started"))
    async with before_the_slot(config) as (d, clock):
        run = await held(d, clock)
        assert run.scheduled_for == SLOT
        assert run.queued_at == SLOT - timedelta(seconds=4)
        assert run.started_at == SLOT  # a run's start is never before its slot
        await anyio.sleep(0.3)
        assert run.pid is None and not (config.jobs_dir / "started").exists()
        clock.set(SLOT)
        await settle(d)
    [done] = await journaled(config, "tick")
    assert done.state is RunState.SUCCEEDED and done.started_at == SLOT
    assert (config.jobs_dir / "started").read_text().strip() == SLOT.isoformat()


async def test_busy_job_is_admitted_at_its_slot(make_config: MakeConfig) -> None:
    """overlap = "skip": a run still going at the lead is not a reason to skip the slot
    early; the slot is admitted at its instant, and skipped only if the run goes on."""
    config = make_config(tick_job("sleep 30", 'overlap = "skip"\n'))
    async with before_the_slot(config) as (d, clock):
        first = await d.run_job("tick", {})
        with anyio.fail_after(5):
            while first.run_id not in d.active:  # noqa: ASYNC110 (no event for it)
                await anyio.sleep(0.01)
        clock.set(SLOT - timedelta(seconds=4))
        await anyio.sleep(0.3)
        assert len(await d.journal.list_runs(job_id="tick", limit=None)) == 1
        clock.set(SLOT)
        runs = await runs_of(d, "tick", 2)
        assert runs[1].state is RunState.SKIPPED and runs[1].queued_at == SLOT
        await d.cancel_run(first.run_id)
        await settle(d)


async def test_cancel_while_held_starts_nothing(make_config: MakeConfig) -> None:
    config = make_config(tick_job("touch started"))
    async with before_the_slot(config) as (d, clock):
        run = await held(d, clock)
        assert await d.cancel_run(run.run_id) == [run.run_id]
        await settle(d)
        clock.set(SLOT)
        await anyio.sleep(0.2)
    [done] = await journaled(config, "tick")
    assert done.state is RunState.CANCELLED and done.message == "cancelled before its slot"
    assert (
        done.started_at is None and done.pid is None and not (config.jobs_dir / "started").exists()
    )
