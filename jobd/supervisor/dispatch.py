"""Dispatch: start queued runs under the limits, each as a task; after each run, fail fast
its matrix group and move its flow on. Also cancelling, and draining at shutdown."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio

from jobd._enums import ExecutorKind, Overlap, RunState
from jobd._exceptions import JournalError
from jobd.journal.abc import RunRecord
from jobd.supervisor.clock import Clock
from jobd.supervisor.hooks import event_for
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.policy import Busy, Candidate, select
from jobd.supervisor.runner import Runner, RunnerDeps
from jobd.supervisor.runs import Active, RunTable, group

log = logging.getLogger("jobd")


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchDeps:
    loaded: Loaded
    runs: RunTable
    ledger: Ledger
    clock: Clock
    runner: RunnerDeps
    advance_flow: Callable[[str], Awaitable[None]]


class Dispatcher:
    def __init__(self, deps: DispatchDeps) -> None:
        self.deps = deps
        self.draining = False
        self.adopt: set[int] = set()  # remote runs journaled as running: attach to them
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def loop(self, tg: anyio.abc.TaskGroup) -> None:
        """Each wake: select what may start now and start it in ``tg``."""
        d = self.deps
        runs = d.runs
        tg.start_soon(d.runner.gate.serve)  # the runs it starts wait there for their slots
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            if self.draining or not runs.queued:
                continue
            busy = [
                Busy(run_id=rid, job_id=a.job.id, pool=a.job.pool, group=group(a.runner.run))
                for rid, a in runs.active.items()
            ]
            config = d.loaded.config
            pools = {name: p.max_parallel for name, p in config.pools.items()}
            cands = (self._candidate(r) for r in self._start_order())
            for rid in self._select(cands, busy, pools):
                run = runs.dequeue(rid)
                job = d.loaded.jobs[run.job_id]
                active = Active(runner=Runner(job, run, d.runner, adopt=rid in self.adopt), job=job)
                self.adopt.discard(rid)
                runs.activate(active)
                tg.start_soon(self._run_task, active, name=f"run {rid} ({job.id})")
            runs.changed()

    def _select(
        self, cands: Iterable[Candidate], busy: list[Busy], pools: Mapping[str, int]
    ) -> list[int]:
        """Local runs take [daemon] max_parallel slots, remote runs [celery] max_parallel."""
        config, jobs = self.deps.loaded.config, self.deps.loaded.jobs
        celery = config.celery
        if celery is None:
            return select(cands, busy, max_parallel=config.max_parallel, pools=pools)

        def remote(job_id: str) -> bool:
            job = jobs.get(job_id)
            return job is not None and job.executor is ExecutorKind.CELERY

        every = list(cands)
        return [
            *select(
                (c for c in every if not remote(c.job_id)),
                [b for b in busy if not remote(b.job_id)],
                max_parallel=config.max_parallel,
                pools=pools,
            ),
            *select(
                (c for c in every if remote(c.job_id)),
                [b for b in busy if remote(b.job_id)],
                max_parallel=celery.max_parallel,
                pools=pools,
            ),
        ]

    def _start_order(self) -> Iterable[RunRecord]:
        """Queued runs, higher priority first, then in queue order; lazy when all queued
        jobs share one priority (the usual case), so a long queue costs nothing to scan."""
        jobs, queued = self.deps.loaded.jobs, self.deps.runs.queued
        prios = {jobs[j].priority for j in self.deps.runs.queued_jobs() if j in jobs}
        if len(prios) <= 1:
            return queued.values()
        return sorted(
            queued.values(), key=lambda r: -jobs[r.job_id].priority if r.job_id in jobs else 0
        )

    def _candidate(self, r: RunRecord) -> Candidate:
        job = self.deps.loaded.jobs.get(r.job_id)
        if job is None:  # removed by a reload; its queued runs are being cancelled
            return Candidate(
                run_id=r.run_id,
                job_id=r.job_id,
                pool=None,
                priority=0,
                exclusive=True,
                group="gone",
                group_limit=0,
            )
        return Candidate(
            run_id=r.run_id,
            job_id=r.job_id,
            pool=job.pool,
            priority=job.priority,
            exclusive=job.overlap is not Overlap.ALLOW,
            group=group(r),
            group_limit=job.matrix.max_parallel if job.matrix else None,
        )

    async def _run_task(self, active: Active) -> None:
        runs = self.deps.runs
        runs.pending += 1  # its flow moves on before the daemon counts as idle
        try:
            final = await self._execute(active)
            if final is not None:
                await self._after_run(final)
        finally:
            runs.pending -= 1
            runs.changed()

    async def _execute(self, active: Active) -> RunRecord | None:
        d = self.deps
        try:
            with anyio.CancelScope() as scope:
                active.scope = scope
                return await active.runner.execute()
            return None  # stopped by the daemon's drain: left running for recovery
        except JournalError as exc:  # its state stays as journaled: recovery re-runs it
            log.error(
                "run %s (%s): %s; it runs again at the next start",
                active.runner.run.run_id,
                active.job.id,
                exc,
            )
            return None
        except Exception:
            log.exception("run %s (%s): internal error", active.runner.run.run_id, active.job.id)
            with anyio.CancelScope(shield=True):
                final = active.runner.run.evolve(
                    state=RunState.FAILED,
                    finished_at=d.clock.now(),
                    message="internal error in jobd; see the daemon's log",
                )
                extra = d.runner.follow_ups(final, event_for(final.state), None)
                try:
                    await d.ledger.write([final, *extra])
                except JournalError as exc:
                    log.error("run %s: %s; it runs again at the next start", final.run_id, exc)
                    return None
                d.runner.admit(extra)
            return final
        finally:
            d.runs.deactivate(active.runner.run.run_id, active.job.id)
            self.wake()

    async def _after_run(self, run: RunRecord) -> None:
        """A run finished: fail fast its matrix group if it must; move its flow on."""
        d = self.deps
        job = d.loaded.jobs.get(run.job_id)
        if (
            job is not None
            and job.matrix is not None
            and job.matrix.fail_fast
            and run.state in (RunState.FAILED, RunState.TIMED_OUT)
        ):
            g = group(run)
            for rid, r in list(d.runs.queued.items()):
                if group(r) == g:
                    await self.cancel_queued(rid)
            for rid, a in list(d.runs.active.items()):
                if group(a.runner.run) == g:
                    self.cancel_active(rid, f"fail_fast: cell {run.run_id} {run.state}")
        if run.flow_id is not None:
            await d.advance_flow(run.flow_id)

    def cancel_active(self, run_id: int, why: str) -> bool:
        a = self.deps.runs.active.get(run_id)
        if a is None:
            return False
        a.runner.note(f"cancel requested: {why}")
        a.runner.cancel.set()
        return True

    async def cancel_queued(self, run_id: int) -> bool:
        d = self.deps
        if run_id not in d.runs.queued:
            return False
        run = d.runs.dequeue(run_id)
        done = run.evolve(
            state=RunState.CANCELLED, finished_at=d.clock.now(), message="cancelled while queued"
        )
        await d.ledger.write([done])
        d.runs.changed()
        return True

    async def drain(self, grace: float) -> None:
        """No new starts; running runs get ``grace`` seconds, then are stopped (and stay
        ``running`` in the journal, to re-run at the next start)."""
        self.draining = True
        runs = self.deps.runs
        if runs.active:
            log.info("draining: %d runs get %ss to finish", len(runs.active), grace)
            with anyio.move_on_after(grace):
                while runs.active:
                    await runs.wait_change()
            for a in list(runs.active.values()):
                a.runner.note(
                    "daemon stopping: run stopped; it re-runs at the next start"
                    if a.job.executor is not ExecutorKind.CELERY
                    else "daemon stopping: the run goes on on its worker; the next start adopts it"
                )
                if a.scope is not None:
                    a.scope.cancel()
            with anyio.move_on_after(grace + 30):
                while runs.active:
                    await runs.wait_change()
