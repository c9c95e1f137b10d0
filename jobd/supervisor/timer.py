"""Time triggers: catch-up of the slots missed while the daemon was down, then one timer
for every job's next slot. ``cursors`` (the last slot each job was triggered for) is owned
here; it is journaled with the slot's run, or on its own when no run carries it.

Every job due at one instant is posted in one go, without yielding between them, so intake
admits them as one batch: one commit, and dispatch starts them together. When no job due at
that instant has a run running or queued, the batch is posted ``clock.lead`` ahead of it, so
that its commits are done and only the spawn is left at the slot (the runner holds the process
until then); a busy job is posted at its slot, so that overlap decides as it would then."""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio
from anyio.abc import TaskStatus

from jobd.config.model import JobDef
from jobd.metrics import Metrics
from jobd.supervisor.clock import Clock, sleep_or_wake
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.events import Trigger
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.triggers.catchup import DuePlan, next_due, plan_due


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerDeps:
    loaded: Loaded
    cursors: dict[str, datetime]
    ledger: Ledger
    clock: Clock
    decisions: Decisions
    post_all: Callable[[Sequence[Trigger]], Awaitable[None]]  # in one intake batch
    metrics: Metrics
    on_wake: Callable[[], None] = lambda: None  # what else looks again (the stale check)
    job_idle: Callable[[str], bool] = lambda job_id: False  # no run running or queued


class Timer:
    def __init__(self, deps: TimerDeps) -> None:
        self.deps = deps
        self._wake = anyio.Event()
        self._next_at: dict[str, datetime | None] = {}  # from the start-up plan

    def wake(self) -> None:
        """Look at every job's next slot again (after reload, pause, resume)."""
        self._wake.set()
        self.deps.on_wake()

    async def catch_up(self) -> None:
        """Plan the time slots missed while the daemon was down (``catchup``)."""
        d = self.deps
        now = d.clock.now()
        fresh: dict[str, datetime] = {}
        triggers: list[Trigger] = []
        for job in d.loaded.timed():
            plan = plan_due(
                job.time_triggers,
                cursor=d.cursors.get(job.id),
                now=now,
                catchup=job.catchup,
                start_deadline=job.start_deadline,
                at_start=True,
            )
            triggers += self._triggers(job, plan, fresh)
            self._next_at[job.id] = plan.next_at
        await d.post_all(triggers)
        if fresh:  # one commit for every job seen the first time, not one each
            await d.ledger.write(cursors=fresh)

    def _triggers(
        self, job: JobDef, plan: DuePlan, cursor_writes: dict[str, datetime]
    ) -> list[Trigger]:
        """The plan's triggers to post; a cursor no run carries goes to ``cursor_writes``."""
        d = self.deps
        for drop in plan.dropped:
            n = drop.count if drop.count is not None else "many"
            counter = (
                d.metrics.slots_folded.labels(job=job.id)
                if drop.reason == "catchup_latest"
                else d.metrics.slots_missed.labels(job=job.id, reason=str(drop.reason))
            )
            counter.inc(drop.count if drop.count is not None else 1)
            d.decisions.note(
                job.id,
                f"{n} slots from {drop.first.isoformat()} to "
                f"{drop.last.isoformat()} not run ({drop.reason})",
            )
        triggers = [
            Trigger(
                job_id=job.id, kind=slot.kind, scheduled_for=slot.scheduled_for, cursor_key=job.id
            )
            for slot in plan.runs
        ]
        last_run = plan.runs[-1].scheduled_for if plan.runs else None
        if plan.cursor != d.cursors.get(job.id) and plan.cursor != last_run:
            # Nothing carries this cursor into the journal: write it on its own.
            cursor_writes[job.id] = plan.cursor
        d.cursors[job.id] = plan.cursor
        return triggers

    async def loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """One timer: sleeps until the earliest due slot of any job, posts it, repeats.
        A heap keyed by each job's next slot; rebuilt on reload, pause and resume."""
        d = self.deps
        heap: list[tuple[datetime, str]] = []
        built_for: object = None
        task_status.started()
        while True:
            wake = self._wake
            if built_for is not d.loaded.jobset or wake.is_set():
                self._wake = wake = anyio.Event()
                built_for = d.loaded.jobset
                now = d.clock.now()
                heap = []
                for job in d.loaded.timed():
                    if job.id in self._next_at:  # planned at start: no need to look again
                        nxt = self._next_at.pop(job.id)
                    else:
                        nxt = next_due(job.time_triggers, d.cursors.setdefault(job.id, now))
                    if nxt is not None:
                        heap.append((nxt, job.id))
                heapq.heapify(heap)
            if not heap:
                await wake.wait()
                continue
            when, job_id = heap[0]
            now = d.clock.now()
            if when > now:
                if when - now > d.clock.lead:
                    await sleep_or_wake(d.clock, when - d.clock.lead, wake)
                    continue
                if not self._may_lead(heap, when):
                    await sleep_or_wake(d.clock, when, wake)
                    continue
                now = when  # posted ahead: planned as at its slot
            triggers: list[Trigger] = []
            cursors: dict[str, datetime] = {}
            while heap and heap[0][0] <= now:  # every job due by now, in one batch
                _, job_id = heapq.heappop(heap)
                job = d.loaded.jobs[job_id]
                plan = plan_due(
                    job.time_triggers,
                    cursor=d.cursors.get(job_id),
                    now=now,
                    catchup=job.catchup,
                    start_deadline=job.start_deadline,
                    at_start=False,
                )
                triggers += self._triggers(job, plan, cursors)
                if plan.next_at is not None:
                    heapq.heappush(heap, (plan.next_at, job_id))
            await d.post_all(triggers)
            if cursors:
                await d.ledger.write(cursors=cursors)

    def _may_lead(self, heap: list[tuple[datetime, str]], when: datetime) -> bool:
        """Every job due at ``when`` is idle, so admitting it now decides as at its slot."""
        due: list[tuple[datetime, str]] = []
        while heap and heap[0][0] == when:
            due.append(heapq.heappop(heap))
        for entry in due:
            heapq.heappush(heap, entry)
        return all(self.deps.job_idle(job_id) for _, job_id in due)
