"""Model-based: no time slot falls through any interleaving of start-up, recovery, catch-up,
timer, reload and crash.

Each seed drives a daemon over an injected clock for 40 minutes of model time: the clock moves
in random steps, the daemon is killed at random points (after a random number of event-loop
turns, so mid-intake and mid-run too), stays down for a random while, and job files are
reloaded now and then. Runs take model time (an executor that sleeps on the injected clock;
the real executor's own tests are in tests/executors). The journal is the memory journal,
which survives the "kill" as a file would.

The expected slots come from the offset rule and croniter (tests/slots.py), not from jobd's
planner. Invariants, from docs/scheduling.md:
- ``catchup = "all"``: every slot has a finished run of its own (``scheduled_for``), none is
  folded, whatever ``overlap`` says;
- ``catchup = "latest"``: every slot has a run of its own or is named in a run's
  ``folded_slots``, except slots missed while the daemon was down and superseded by a newer
  missed slot (which must itself be covered);
- no (run, attempt) starts twice, and no run starts once it has finished;
- no process starts before its slot: odd seeds run with a clock ``lead`` of 30 s, so slots are
  admitted and journaled ahead of their instant and held until it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from jobd.config.loader import load_config
from jobd.executors.abc import Cancel, Executor, ProcessResult, ProcessSpec, RunRef, StartedCallback
from jobd.journal.abc import RunRecord
from jobd.journal.memory import MemoryJournal
from jobd.supervisor.clock import FakeClock
from jobd.supervisor.daemon import Daemon

from ..slots import cron_slots, every_slots
from .conftest import T0, write_config

SEEDS = 40
WINDOW = timedelta(minutes=40)

JOBS = """
[jobs.a]
every = "1m"
catchup = "all"
command = "a {variant}"

[jobs.b]
cron = "*/3 * * * *"
catchup = "all"
command = "b"

[jobs.c]
every = "2m"
catchup = "latest"
command = "c"

[jobs.d]
cron = "*/5 * * * *"
catchup = "all"
overlap = "skip"
command = "d"
"""


class ModelExecutor(Executor):
    """A process that takes model time: it ends when the injected clock has moved on by its
    duration, or when cancelled. Records every start, and checks the run is not finished."""

    def __init__(self, clock: FakeClock, rng: random.Random, journal: MemoryJournal) -> None:
        self.clock, self.rng, self.journal = clock, rng, journal
        self.starts: list[tuple[int, int]] = []
        self.restarted_finished: list[int] = []
        self.early: list[tuple[int, str]] = []  # (run, slot) whose process started before it

    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ProcessResult:
        run_id, attempt = int(spec.env["JOBD_RUN_ID"]), int(spec.env["JOBD_ATTEMPT"])
        self.starts.append((run_id, attempt))
        slot = spec.env.get("JOBD_SCHEDULED_FOR")
        if slot is not None and self.clock.now() < datetime.fromisoformat(slot):
            self.early.append((run_id, slot))
        before = await self.journal.get_run(run_id)
        if before is not None and before.state.finished:
            self.restarted_finished.append(run_id)
        until = self.clock.now() + timedelta(seconds=self.rng.choice([0, 0, 5, 20, 40, 100]))
        cancelled = False
        async with anyio.create_task_group() as tg:

            async def on_cancel() -> None:
                nonlocal cancelled
                if cancel is not None:
                    await cancel.wait()
                    cancelled = True
                    tg.cancel_scope.cancel()

            tg.start_soon(on_cancel)
            await self.clock.sleep_until(until)
            tg.cancel_scope.cancel()
        return ProcessResult(exit_code=None if cancelled else 0, cancelled=cancelled)

    async def find_leftovers(self, ref: RunRef) -> list[str]:
        return []  # a model process ends with the daemon's life: nothing is left over

    async def stop_leftovers(self, ids: Sequence[str], grace: float) -> list[str]:
        return []


async def turns(n: int) -> None:
    """Let the daemon's tasks run for ``n`` event-loop turns (the model time stands still)."""
    for _ in range(n):
        await anyio.lowlevel.checkpoint()


def settled(daemon: Daemon, end: datetime) -> bool:
    """Every slot up to ``end`` taken, and none of them waiting or running."""
    table = daemon.table
    waiting = [*table.queued.values(), *(a.runner.run for a in table.active.values())]
    # ``pending`` counts the triggers on the bus and the run tasks: none of the former left
    return (
        table.pending <= len(table.active)
        and all(daemon.cursors.get(j, end) >= end for j in "abcd")
        and all(r.scheduled_for is None or r.scheduled_for > end for r in waiting)
    )


async def drive(tmp_path: Path, seed: int) -> tuple[list[RunRecord], list[datetime], ModelExecutor]:
    rng = random.Random(seed)
    cfg = write_config(tmp_path, JOBS.format(variant=0), "max_parallel = 4\n")
    lead = timedelta(seconds=30 if seed % 2 else 0)
    clock, journal = FakeClock(T0, lead=lead), MemoryJournal()
    executor = ModelExecutor(clock, rng, journal)
    starts: list[datetime] = []
    end = T0 + WINDOW
    variant = 0

    async def life(scope: anyio.CancelScope, ready: anyio.Event) -> None:
        with scope:
            daemon = Daemon(
                load_config(cfg),
                clock=clock,
                executor=executor,
                journal=journal,
                control=False,
                watch_jobs_dir=False,
                handle_signals=False,
            )
            lives.append(daemon)
            async with anyio.create_task_group() as tg:
                await tg.start(daemon.run)
                ready.set()
        ready.set()

    lives: list[Daemon] = []
    while True:
        starts.append(clock.now())
        scope, ready = anyio.CancelScope(), anyio.Event()
        async with anyio.create_task_group() as outer:
            outer.start_soon(life, scope, ready)
            await ready.wait()
            daemon = lives[-1]
            while True:
                if clock.now() >= end:  # the last life: let everything due finish
                    for _ in range(400):
                        await turns(60)
                        if settled(daemon, end):
                            break
                        clock.advance(20)
                    else:
                        raise AssertionError(f"seed {seed}: never settled")
                    scope.cancel()
                    break
                clock.advance(rng.choice([1, 5, 20, 45, 90]))
                if rng.random() < 0.1:  # kill at a random point: a few loop turns in
                    for _ in range(rng.randrange(40)):
                        await anyio.lowlevel.checkpoint()
                    scope.cancel()
                    break
                await turns(60)
                if rng.random() < 0.05:  # an edit that changes no trigger: a reload
                    variant += 1
                    write_config(tmp_path, JOBS.format(variant=variant), "max_parallel = 4\n")
                    await daemon.reload()
        if clock.now() >= end and settled(daemon, end):
            break
        clock.advance(rng.choice([0, 10, 30, 200, 600]))  # down for a while
    await journal.open()
    runs = await journal.list_runs(limit=None)
    await journal.close()
    return runs, starts, executor


def expected(job: str, end: datetime) -> list[datetime]:
    if job == "a":
        return every_slots("a", 60, T0, end)
    if job == "b":
        return cron_slots("*/3 * * * *", T0, end)
    if job == "c":
        return every_slots("c", 120, T0, end)
    return cron_slots("*/5 * * * *", T0, end)


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_no_slot_falls_through(tmp_path: Path, seed: int) -> None:
    with anyio.fail_after(20):
        runs, starts, executor = await drive(tmp_path, seed)
    end = T0 + WINDOW
    for job in "abcd":
        mine = [r for r in runs if r.job_id == job]
        own = {r.scheduled_for for r in mine if r.state.finished}
        folded = {s for r in mine if r.state.finished for s in r.folded_slots}
        slots = expected(job, end)
        assert len(slots) >= 8
        if job != "c":
            missing = [s.isoformat() for s in slots if s not in own]
            assert not missing, f"seed {seed}: job {job}: slots without a run: {missing}"
            assert not folded, f"seed {seed}: job {job} folded {sorted(folded)}"
            continue
        # catchup = "latest": a missed slot may be superseded by a newer one missed with it
        # (which may lie past the window).
        later = expected(job, end + timedelta(hours=2))
        newest_missed = {max((s for s in later if s <= st), default=None) for st in starts[1:]}
        for s in slots:
            superseded = any(s < st and any(s < t <= st for t in later) for st in starts[1:])
            covered = s in own or s in folded
            assert covered or (superseded and s not in newest_missed), (
                f"seed {seed}: job c: slot {s.isoformat()} unaccounted"
            )
    twice = [k for k, n in Counter(executor.starts).items() if n > 1]
    assert not twice, f"seed {seed}: (run, attempt) started twice: {twice}"
    assert not executor.restarted_finished, f"seed {seed}: finished runs started again"
    assert not executor.early, f"seed {seed}: started before their slots: {executor.early}"
    ahead = [r for r in runs if r.scheduled_for is not None and r.queued_at < r.scheduled_for]
    assert bool(ahead) == bool(seed % 2), f"seed {seed}: {len(ahead)} runs admitted ahead"
