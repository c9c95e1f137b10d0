"""The daemon's lifecycle around the supervisor: journal, recovery, services, signals."""

from __future__ import annotations

import functools
import heapq
import logging
import os
import random
import signal
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobd import __version__
from jobd._crashpoints import crash_point
from jobd._enums import Catchup, ExecutorKind, Overlap, RunState, TriggerKind
from jobd._exceptions import ConfigError, JobNotFound, JournalError, RunNotFound, StorageError
from jobd.config.loader import load_config, load_jobs
from jobd.config.model import ContainerAction, DaemonConfig, JobDef, JobSet
from jobd.executors.abc import Executor
from jobd.executors.actions import daemon_python
from jobd.executors.local import LocalExecutor
from jobd.executors.process import find_leftovers, stop_leftovers
from jobd.journal.abc import Journal, RunRecord
from jobd.journal.sqlite import SQLiteJournal, os_fault
from jobd.matrix import expand
from jobd.supervisor import runfiles
from jobd.supervisor.clock import Clock, SystemClock
from jobd.supervisor.events import Reply, Trigger
from jobd.supervisor.flowing import FlowEngine
from jobd.supervisor.notify import Notifier
from jobd.supervisor.policy import Admit, Busy, Candidate, admit, select
from jobd.supervisor.runner import Runner, RunnerDeps, iso, log_path
from jobd.triggers.catchup import DuePlan, next_due, next_fire_times, plan_due

if TYPE_CHECKING:
    from jobd.executors.celery import CeleryExecutor
    from jobd.executors.docker import DockerExecutor

log = logging.getLogger("jobd")

BUS_SIZE = 4096
PRUNE_EVERY = 3600.0  # seconds between retention passes
SUBSCRIBER_BUFFER = 1024


@dataclass(slots=True)
class Active:
    runner: Runner
    job: JobDef
    scope: anyio.CancelScope | None = None


class Daemon:
    """jobd: every trigger source posts to one bus; intake journals and admits; dispatch starts
    runs under the limits; each run is a task of the daemon's task group."""

    def __init__(self, config: DaemonConfig, *, clock: Clock | None = None,
                 executor: Executor | None = None, journal: Journal | None = None,
                 notifier: Notifier | None = None, control: bool = True,
                 watch_jobs_dir: bool = True, handle_signals: bool = True) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.executor: Executor = executor or LocalExecutor()
        self.journal: Journal = journal or SQLiteJournal(config.journal_path)
        self.notifier = notifier or Notifier()
        self._control = control
        self._watch_jobs_dir = watch_jobs_dir
        self._handle_signals = handle_signals
        self.instance = str(config.journal_path.resolve())
        self._python = daemon_python()  # absolute: a shim on PATH costs 10x a spawn
        self.jobset = JobSet(jobs={}, invalid={})
        self.paused: set[str] = set()
        self.cursors: dict[str, datetime] = {}
        self._next_at: dict[str, datetime | None] = {}  # from the start-up plan, for the timer
        self.queued: dict[int, RunRecord] = {}  # in queue order
        self._queued_by_job: dict[str, dict[int, None]] = {}
        self.active: dict[int, Active] = {}
        self._active_by_job: dict[str, dict[int, None]] = {}
        self.decisions: dict[str, deque[str]] = {}
        self.started_at = self.clock.now()
        self._bus: MemoryObjectSendStream[Trigger] | None = None
        self._subscribers: list[MemoryObjectSendStream[RunRecord]] = []
        self._dispatch_wake = anyio.Event()
        self._timer_wake = anyio.Event()
        self._idle = anyio.Event()
        self._stop = anyio.Event()
        self._ready = anyio.Event()
        self._draining = False
        self._pending_triggers = 0
        self._reload_lock = anyio.Lock()
        self.flows = FlowEngine(self)
        self._tg: anyio.abc.TaskGroup | None = None
        self._watch: Any = None
        self._deps: RunnerDeps | None = None
        self._docker_executor: DockerExecutor | None = None
        self._celery_executor: CeleryExecutor | None = None
        self._adopt: set[int] = set()  # remote runs journaled as running: attach to them
        self.http_url: str | None = None  # the dashboard's address, once it listens

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover, load, serve until ``stop()`` (or SIGTERM), then drain."""
        try:
            runfiles.make_dirs(self.config)  # with the modes of docs/security.md
        except OSError as exc:
            why = os_fault(exc) or exc.strerror
            raise StorageError(f"state_dir: cannot prepare {exc.filename}: {why}") from exc
        async with self.journal:
            self._deps = RunnerDeps(
                config=self.config, journal=self.journal, executor=self.executor,
                clock=self.clock, publish=self._publish, instance=self.instance,
                python=self._python, needs_context=self.flows.needs_context,
                rng=random.Random(), docker=self._docker,
                environ=dict(os.environ), remote=self._remote)
            self.paused = await self.journal.paused()
            self.cursors = await self.journal.cursors()
            self.jobset = load_jobs(self.config)
            for f, errs in self.jobset.invalid.items():
                for e in errs:
                    log.error("%s", e)
                log.error("%s: rejected; its jobs are not loaded", f)
            await self._recover()
            send, receive = anyio.create_memory_object_stream[Trigger](BUS_SIZE)
            self._bus = send
            with send:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    tg.start_soon(self._intake, receive)
                    tg.start_soon(self._dispatch_loop)
                    await self._catch_up()
                    await self.flows.resume()
                    self._wake_dispatch()  # runs queued from before start now
                    await tg.start(self._timer_loop)
                    await self._start_watch()
                    if self._control:
                        from jobd.control.server import ControlServer
                        await tg.start(ControlServer(self, self.config).serve)
                    if self.config.http is not None:  # else no port, no web import
                        from jobd.web import serve_http
                        self.http_url = await tg.start(serve_http, self, self.config)
                    if self._handle_signals:
                        await tg.start(self._signal_loop)
                    if self._watch_jobs_dir:
                        await tg.start(self._jobs_dir_loop)
                    tg.start_soon(self._prune_loop)
                    interval = Notifier.watchdog_interval()
                    if interval:
                        tg.start_soon(self.notifier.watchdog_loop, interval)
                    self.notifier.ready(self._status_line())
                    self._ready.set()
                    log.info("jobd %s ready: %d jobs, %d invalid files, journal %s",
                             __version__, len(self.jobset.jobs), len(self.jobset.invalid),
                             self.config.journal_path)
                    task_status.started()
                    await self._stop.wait()
                    await self._drain()
                    tg.cancel_scope.cancel()
            if self._celery_executor is not None:
                with anyio.CancelScope(shield=True):
                    await self._celery_executor.aclose()
        self.notifier.close()

    def stop(self) -> None:
        """Begin draining: no new starts; running jobs get ``shutdown_grace``."""
        self._stop.set()

    async def _drain(self) -> None:
        self._draining = True
        self.notifier.stopping()
        if self.active:
            log.info("draining: %d runs get %ss to finish", len(self.active),
                     self.config.shutdown_grace)
            with anyio.move_on_after(self.config.shutdown_grace):
                while self.active:
                    await self._wait_change()
            for a in list(self.active.values()):
                a.runner.note("daemon stopping: run stopped; it re-runs at the next start"
                              if a.job.executor is not ExecutorKind.CELERY else
                              "daemon stopping: the run goes on on its worker; the next "
                              "start adopts it")
                if a.scope is not None:
                    a.scope.cancel()
            with anyio.move_on_after(self.config.shutdown_grace + 30):
                while self.active:
                    await self._wait_change()
        if self.journal.fault is not None:  # what cannot be written now re-runs at next start
            self.journal.stop_retrying()
        log.info("stopped")

    async def _signal_loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                           ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            task_status.started()
            async for signum in sigs:
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: reloading")
                    await self.reload()
                else:
                    log.info("%s: draining", signal.Signals(signum).name)
                    self.stop()

    def _docker(self) -> DockerExecutor:
        """The container executor, made (and aiodocker imported) on first use."""
        if self._docker_executor is None:
            from jobd.executors.docker import DockerExecutor
            self._docker_executor = DockerExecutor(url=self.config.docker_host,
                                                   network=self.config.docker_network,
                                                   instance=self.instance)
        return self._docker_executor

    def _remote(self) -> CeleryExecutor:
        """The Celery executor, made (and celery imported) on first use."""
        if self._celery_executor is None:
            from jobd.executors.celery import CeleryExecutor
            from jobd.remote.instance import instance_id
            if self.config.celery is None:
                raise RuntimeError("executor = \"celery\" without a [celery] table")
            self._celery_executor = CeleryExecutor(
                self.config.celery, instance=instance_id(self.config.state_dir))
        return self._celery_executor

    async def _stop_containers(self, run: RunRecord, grace: float) -> None:
        """Remove the containers left from an interrupted container run."""
        from jobd.executors.docker import find_container_leftovers, remove_containers
        url = self.config.docker_host
        try:
            ids = await find_container_leftovers(self.instance, run.run_id, url=url)
            if ids:
                log.warning("run %s: removing %d leftover containers", run.run_id, len(ids))
                await remove_containers(ids, grace, url=url)
        except Exception as exc:  # the engine may be down: the re-run goes ahead regardless
            log.warning("run %s: cannot look for leftover containers: %s", run.run_id, exc)

    # --- recovery, catch-up ---------------------------------------------------------------

    async def _recover(self) -> None:
        """Unfinished runs from an earlier life: stop what is left of them, re-run them."""
        updates: list[RunRecord] = []
        for run in await self.journal.unfinished_runs():
            job = self.jobset.jobs.get(run.job_id)
            if run.state is RunState.RUNNING and job is not None \
                    and job.executor is ExecutorKind.CELERY:
                # on a worker: adopted if it lives or has ended, else fenced and re-run
                run = run.evolve(state=RunState.QUEUED, pid=None, pid_start=None,
                                 message=f"the daemon stopped during attempt {run.attempt} "
                                         "on a worker: adopting it")
                updates.append(run)
                self._adopt.add(run.run_id)
                self._decide(run.job_id, f"run {run.run_id} re-queued to adopt attempt "
                                         f"{run.attempt} from its worker")
            elif run.state is RunState.RUNNING:
                pids = await anyio.to_thread.run_sync(functools.partial(
                    find_leftovers, run.run_id, run.pid, run.pid_start, marker=self.instance))
                if pids:
                    log.warning("run %s: stopping %d leftover processes %s", run.run_id,
                                len(pids), pids)
                    await stop_leftovers(pids, job.kill_grace if job else 10.0)
                if isinstance(self.executor, LocalExecutor):  # its cgroup leaf, if any
                    c = self.executor.contained()
                    await c.stop_escapees(c.leaf(self.instance, str(run.run_id)), group=None,
                                          run_id=None, marker=None, grace=0)
                if job is not None and isinstance(job.action, ContainerAction):
                    await self._stop_containers(run, job.kill_grace)
                if job is None:
                    updates.append(run.evolve(state=RunState.CANCELLED,
                                              finished_at=self.clock.now(),
                                              message="interrupted, and its job is gone"))
                    continue
                run = run.evolve(state=RunState.QUEUED, trigger=TriggerKind.RECOVERY,
                                 attempt=run.attempt + 1, pid=None, pid_start=None,
                                 message=f"re-run: the daemon stopped during attempt {run.attempt}")
                updates.append(run)
                self._decide(run.job_id, f"run {run.run_id} re-queued as recovery "
                                         f"(attempt {run.attempt})")
            elif job is None:
                updates.append(run.evolve(state=RunState.CANCELLED, finished_at=self.clock.now(),
                                          message="queued, but its job is gone"))
                continue
            self._enqueue(run)
        if updates:
            await self.journal.put_runs(updates)
        if self.queued:
            log.info("recovery: %d runs queued from before", len(self.queued))

    async def _catch_up(self) -> None:
        """Plan the time slots missed while the daemon was down (``catchup``)."""
        now = self.clock.now()
        fresh: dict[str, datetime] = {}
        for job in self._timed_jobs():
            plan = plan_due(job.time_triggers, cursor=self.cursors.get(job.id), now=now,
                            catchup=job.catchup, start_deadline=job.start_deadline,
                            at_start=True)
            await self._post_plan(job, plan, cursor_writes=fresh)
            self._next_at[job.id] = plan.next_at
        if fresh:  # one commit for every job seen the first time, not one each
            await self.journal.put_runs([], cursors=fresh)

    async def _post_plan(self, job: JobDef, plan: DuePlan, *,
                         cursor_writes: dict[str, datetime] | None = None) -> None:
        for d in plan.dropped:
            n = d.count if d.count is not None else "many"
            self._decide(job.id, f"{n} slots from {d.first.isoformat()} to "
                                 f"{d.last.isoformat()} not run ({d.reason})")
        for slot in plan.runs:
            await self._post(Trigger(job_id=job.id, kind=slot.kind,
                                     scheduled_for=slot.scheduled_for, cursor_key=job.id))
        last_run = plan.runs[-1].scheduled_for if plan.runs else None
        if plan.cursor != self.cursors.get(job.id) and plan.cursor != last_run:
            # Nothing carries this cursor into the journal: write it on its own.
            if cursor_writes is not None:
                cursor_writes[job.id] = plan.cursor
            else:
                await self.journal.put_runs([], cursors={job.id: plan.cursor})
        self.cursors[job.id] = plan.cursor

    def _timed_jobs(self) -> list[JobDef]:
        return [j for j in self.jobset.jobs.values()
                if j.enabled and j.time_triggers and j.id not in self.paused]

    # --- the bus --------------------------------------------------------------------------

    async def _post(self, trigger: Trigger) -> None:
        assert self._bus is not None
        self._pending_triggers += 1
        await self._bus.send(trigger)

    async def submit(self, trigger: Trigger) -> RunRecord:
        """Post a trigger and wait until it is journaled; the run (new or folded into)."""
        reply = Reply()
        await self._post(Trigger(**{**_fields(trigger), "reply": reply}))
        return await reply.wait()

    async def _intake(self, receive: MemoryObjectReceiveStream[Trigger]) -> None:
        async with receive:
            async for first in receive:
                batch = [first]
                while True:
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                try:
                    await self._accept(batch)
                except JournalError as exc:  # not accepted: its callers hear why
                    log.error("%s: %d triggers not accepted", exc, len(batch))
                    for t in batch:
                        if t.reply is not None:
                            t.reply.resolve(None, exc)
                finally:
                    self._pending_triggers -= len(batch)
                    self._changed()

    async def _accept(self, batch: Sequence[Trigger]) -> None:
        """Admit a batch of triggers and journal the outcome in one transaction."""
        now = self.clock.now()
        writes: dict[int, RunRecord] = {}
        cursors: dict[str, datetime] = {}
        replies: list[tuple[Reply, int]] = []
        cancels: list[int] = []
        for t in batch:
            job = self.jobset.jobs.get(t.job_id)
            if job is None:
                if t.reply:
                    t.reply.resolve(None, JobNotFound(t.job_id))
                continue
            if t.cursor_key is not None and t.scheduled_for is not None:
                cursors[t.cursor_key] = max(t.scheduled_for,
                                            cursors.get(t.cursor_key, t.scheduled_for))
            running = list(self._active_by_job.get(job.id, ()))
            queued = list(self._queued_by_job.get(job.id, ()))
            # A run of a flow is that flow's member: never folded into another's run; with
            # catchup = "all" every time slot (missed or live) keeps a run of its own.
            own_slot = t.scheduled_for is not None and job.catchup is Catchup.ALL
            decision = admit(job.overlap, running=running, queued=queued,
                             coalescible=not t.params and t.flow_id is None and not own_slot)
            if decision.action is Admit.COALESCE and decision.into is not None:
                into_run = writes.get(decision.into) or self.queued[decision.into]
                # A queued matrix group takes the trigger in every cell.
                targets = [decision.into] if job.matrix is None else [
                    rid for rid in queued if self.queued[rid].flow_id == into_run.flow_id]
                for rid in targets:
                    into = writes.get(rid) or self.queued[rid]
                    paths = tuple(dict.fromkeys((*into.changed_paths, *t.changed_paths)))
                    merged = into.evolve(changed_paths=paths,
                                         folded_slots=_fold(into, t.scheduled_for))
                    writes[rid] = self.queued[rid] = merged
                cancels.extend(decision.cancel)
                self._decide(job.id, f"{t.kind} trigger {_slot(t)}folded into queued run "
                                     f"{decision.into} (overlap = {job.overlap})")
                if t.reply:
                    replies.append((t.reply, decision.into))
                continue
            run_id = self.journal.new_run_id()
            flow_id = t.flow_id
            if flow_id is None and (job.id in self.flows.needed or job.matrix is not None):
                flow_id = str(run_id)  # a job that others need starts a flow
            run = RunRecord(run_id=run_id, job_id=job.id, trigger=t.kind,
                            state=RunState.QUEUED, queued_at=now, scheduled_for=t.scheduled_for,
                            flow_id=flow_id, params=dict(t.params),
                            changed_paths=t.changed_paths)
            if decision.action is Admit.SKIP:
                run = run.evolve(state=RunState.SKIPPED, finished_at=now, message=decision.reason)
                self._decide(job.id, f"{t.kind} trigger {_slot(t)}skipped: {decision.reason}")
                cells = [run]
            else:
                cells = self._cells(job, run)
                for cell in cells:
                    self._enqueue(cell)
                cancels.extend(decision.cancel)
                if decision.cancel:
                    self._decide(job.id, decision.reason)
            for cell in cells:
                writes[cell.run_id] = cell
            if t.reply:
                replies.append((t.reply, run.run_id))
        for rid in cancels:
            self._cancel_active(rid, "replaced by a newer trigger (overlap = replace)")
        # Dispatch may start these runs while the batch commits: a run's own "running"
        # write is queued behind this one and awaited before its process starts, so both
        # are durable by then, usually in one shared commit (see the journal's writer).
        self._wake_dispatch()
        if writes or cursors:
            crash_point("intake-before-commit")
            await self.journal.put_runs(list(writes.values()), cursors=cursors)
        crash_point("intake-committed")
        for run in writes.values():  # shown once durable: a crash cannot erase a run seen
            self._publish(run)
        for reply, rid in replies:  # accepted: journaled
            reply.resolve(writes[rid])

    def _enqueue(self, run: RunRecord) -> None:
        self.queued[run.run_id] = run
        self._queued_by_job.setdefault(run.job_id, {})[run.run_id] = None

    def _dequeue(self, run_id: int) -> RunRecord:
        run = self.queued.pop(run_id)
        ids = self._queued_by_job[run.job_id]
        del ids[run_id]
        if not ids:
            del self._queued_by_job[run.job_id]
        return run

    def _start_order(self) -> Iterable[RunRecord]:
        """Queued runs, higher priority first, then in queue order; lazy when all queued
        jobs share one priority (the usual case), so a long queue costs nothing to scan."""
        jobs = self.jobset.jobs
        prios = {jobs[j].priority for j in self._queued_by_job if j in jobs}
        if len(prios) <= 1:
            return self.queued.values()
        return sorted(self.queued.values(), key=lambda r: -jobs[r.job_id].priority
                      if r.job_id in jobs else 0)

    def _candidate(self, r: RunRecord) -> Candidate:
        job = self.jobset.jobs.get(r.job_id)
        if job is None:  # removed by a reload; its queued runs are being cancelled
            return Candidate(run_id=r.run_id, job_id=r.job_id, pool=None, priority=0,
                             exclusive=True, group="gone", group_limit=0)
        return Candidate(run_id=r.run_id, job_id=r.job_id, pool=job.pool, priority=job.priority,
                         exclusive=job.overlap is not Overlap.ALLOW, group=_group(r),
                         group_limit=job.matrix.max_parallel if job.matrix else None)

    def _cells(self, job: JobDef, run: RunRecord) -> list[RunRecord]:
        """One run, or one run a matrix cell (the first keeps the trigger's run id). The
        cells share the run's flow id, which names their group."""
        if job.matrix is None:
            return [run]
        try:
            cells = expand(job.matrix)
        except ValueError as exc:
            return [run.evolve(state=RunState.FAILED, finished_at=run.queued_at,
                               message=str(exc))]
        out = [run.evolve(matrix=cells[0])]
        out += [run.evolve(run_id=self.journal.new_run_id(), matrix=c) for c in cells[1:]]
        return out

    # --- dispatch -------------------------------------------------------------------------

    def _wake_dispatch(self) -> None:
        self._dispatch_wake.set()

    def _changed(self) -> None:
        """Something moved: wake waiters of ``_wait_change`` and the idle check."""
        self._idle.set()
        self._idle = anyio.Event()

    async def _wait_change(self) -> None:
        await self._idle.wait()

    async def _dispatch_loop(self) -> None:
        assert self._tg is not None
        while True:
            await self._dispatch_wake.wait()
            self._dispatch_wake = anyio.Event()
            if self._draining or not self.queued:
                continue
            busy = [Busy(run_id=rid, job_id=a.job.id, pool=a.job.pool, group=_group(a.runner.run))
                    for rid, a in self.active.items()]
            pools = {name: p.max_parallel for name, p in self.config.pools.items()}
            cands = (self._candidate(r) for r in self._start_order())
            for rid in self._select(cands, busy, pools):
                run = self._dequeue(rid)
                job = self.jobset.jobs[run.job_id]
                assert self._deps is not None
                active = Active(runner=Runner(job, run, self._deps,
                                              adopt=rid in self._adopt), job=job)
                self._adopt.discard(rid)
                self.active[rid] = active
                self._active_by_job.setdefault(job.id, {})[rid] = None
                self._tg.start_soon(self._run_task, active, name=f"run {rid} ({job.id})")
            self._changed()

    def _select(self, cands: Iterable[Candidate], busy: list[Busy],
                pools: Mapping[str, int]) -> list[int]:
        """Local runs take [daemon] max_parallel slots, remote runs [celery] max_parallel."""
        celery = self.config.celery
        if celery is None:
            return select(cands, busy, max_parallel=self.config.max_parallel, pools=pools)

        def remote(job_id: str) -> bool:
            job = self.jobset.jobs.get(job_id)
            return job is not None and job.executor is ExecutorKind.CELERY

        every = list(cands)
        return [*select((c for c in every if not remote(c.job_id)),
                        [b for b in busy if not remote(b.job_id)],
                        max_parallel=self.config.max_parallel, pools=pools),
                *select((c for c in every if remote(c.job_id)),
                        [b for b in busy if remote(b.job_id)],
                        max_parallel=celery.max_parallel, pools=pools)]

    async def _run_task(self, active: Active) -> None:
        self._pending_triggers += 1  # its flow moves on before the daemon counts as idle
        try:
            final = await self._execute(active)
            if final is not None:
                await self._after_run(final)
        finally:
            self._pending_triggers -= 1
            self._changed()

    async def _execute(self, active: Active) -> RunRecord | None:
        try:
            with anyio.CancelScope() as scope:
                active.scope = scope
                return await active.runner.execute()
            return None  # stopped by the daemon's drain: left running for recovery
        except JournalError as exc:  # its state stays as journaled: recovery re-runs it
            log.error("run %s (%s): %s; it runs again at the next start",
                      active.runner.run.run_id, active.job.id, exc)
            return None
        except Exception:
            log.exception("run %s (%s): internal error", active.runner.run.run_id, active.job.id)
            with anyio.CancelScope(shield=True):
                final = active.runner.run.evolve(
                    state=RunState.FAILED, finished_at=self.clock.now(),
                    message="internal error in jobd; see the daemon's log")
                try:
                    await self.journal.put_runs([final])
                except JournalError as exc:
                    log.error("run %s: %s; it runs again at the next start", final.run_id, exc)
                    return None
                self._publish(final)
            return final
        finally:
            rid, job_id = active.runner.run.run_id, active.job.id
            self.active.pop(rid, None)
            ids = self._active_by_job.get(job_id, {})
            ids.pop(rid, None)
            if not ids:
                self._active_by_job.pop(job_id, None)
            self._wake_dispatch()

    async def _after_run(self, run: RunRecord) -> None:
        """A run finished: fail fast its matrix group if it must; move its flow on."""
        job = self.jobset.jobs.get(run.job_id)
        if job is not None and job.matrix is not None and job.matrix.fail_fast \
                and run.state in (RunState.FAILED, RunState.TIMED_OUT):
            group = _group(run)
            for rid, r in list(self.queued.items()):
                if _group(r) == group:
                    await self.cancel_run(rid)
            for rid, a in list(self.active.items()):
                if _group(a.runner.run) == group:
                    self._cancel_active(rid, f"fail_fast: cell {run.run_id} {run.state}")
        if run.flow_id is not None:
            await self.flows.advance(run.flow_id)

    def _cancel_active(self, run_id: int, why: str) -> bool:
        a = self.active.get(run_id)
        if a is None:
            return False
        a.runner.note(f"cancel requested: {why}")
        a.runner.cancel.set()
        return True

    # --- time -----------------------------------------------------------------------------

    async def _timer_loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                          ) -> None:
        """One timer: sleeps until the earliest due slot of any job, posts it, repeats.
        A heap keyed by each job's next slot; rebuilt on reload, pause and resume."""
        heap: list[tuple[datetime, str]] = []
        built_for: object = None
        task_status.started()
        while True:
            wake = self._timer_wake
            if built_for is not self.jobset or wake.is_set():
                self._timer_wake = wake = anyio.Event()
                built_for = self.jobset
                now = self.clock.now()
                heap = []
                for job in self._timed_jobs():
                    if job.id in self._next_at:  # planned at start: no need to look again
                        nxt = self._next_at.pop(job.id)
                    else:
                        nxt = next_due(job.time_triggers, self.cursors.setdefault(job.id, now))
                    if nxt is not None:
                        heap.append((nxt, job.id))
                heapq.heapify(heap)
            if not heap:
                await wake.wait()
                continue
            when, job_id = heap[0]
            now = self.clock.now()
            if when > now:
                await _sleep_or_wake(self.clock, when, wake)
                continue
            heapq.heappop(heap)
            job = self.jobset.jobs[job_id]
            plan = plan_due(job.time_triggers, cursor=self.cursors.get(job_id), now=now,
                            catchup=job.catchup, start_deadline=job.start_deadline,
                            at_start=False)
            await self._post_plan(job, plan)
            if plan.next_at is not None:
                heapq.heappush(heap, (plan.next_at, job_id))

    # --- retention ------------------------------------------------------------------------

    async def prune(self) -> int:
        """Drop finished runs beyond ``retention_runs`` per job or older than
        ``retention_days``, with their logs; returns how many."""
        before = self.clock.now() - timedelta(days=self.config.retention_days)
        logs = await self.journal.prune(before=before,
                                        keep_per_job=max(1, self.config.retention_runs))
        for path in logs:
            await anyio.Path(path).unlink(missing_ok=True)
        if logs:
            log.info("retention: pruned %d finished runs and their logs", len(logs))
        return len(logs)

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # retention must never stop the daemon
                log.exception("retention: pruning failed; trying again in an hour")
            await anyio.sleep(PRUNE_EVERY)

    # --- watches --------------------------------------------------------------------------

    async def _start_watch(self) -> None:
        """Start watching once some job watches paths (no watcher thread until then)."""
        if self._watch is not None or self._tg is None \
                or not any(j.watch for j in self.jobset.jobs.values()):
            return
        from jobd.supervisor.watching import WatchService
        self._watch = WatchService(self)
        await self._watch.start(self._tg)

    async def _jobs_dir_loop(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                             ) -> None:
        from watchfiles import awatch
        jobs_dir = self.config.jobs_dir
        jobs_dir.mkdir(parents=True, exist_ok=True)
        stop = anyio.Event()
        task_status.started()
        async for _changes in awatch(jobs_dir, debounce=200, step=20, stop_event=stop,
                                     rust_timeout=1000, yield_on_timeout=False):
            log.info("job files changed: reloading")
            await self.reload()

    # --- bookkeeping ----------------------------------------------------------------------

    def _publish(self, run: RunRecord) -> None:
        for s in list(self._subscribers):
            try:
                s.send_nowait(run)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(s)
                s.close()

    def _decide(self, job_id: str, text: str) -> None:
        stamp = self.clock.now().isoformat(timespec="seconds")
        self.decisions.setdefault(job_id, deque(maxlen=20)).append(f"{stamp} {text}")

    def _status_line(self) -> str:
        return (f"{len(self.jobset.jobs)} jobs, {len(self.active)} running, "
                f"{len(self.queued)} queued")

    def is_idle(self) -> bool:
        return not self.active and not self.queued and self._pending_triggers == 0

    async def wait_idle(self) -> None:
        """Return once nothing is running, queued or on the bus (for tests and tools)."""
        while not self.is_idle():
            await self._wait_change()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    # --- DaemonAPI ------------------------------------------------------------------------

    def _job(self, job_id: str) -> JobDef:
        job = self.jobset.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def status(self) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self.started_at.isoformat(),
            "uptime_seconds": (now - self.started_at).total_seconds(),
            "jobs_loaded": len(self.jobset.jobs),
            "runs_running": len(self.active),
            "runs_queued": len(self.queued),
            "paused": sorted(self.paused),
            "journal_fault": self.journal.fault,
            "invalid_files": [{"file": str(f), "errors": list(e)}
                              for f, e in sorted(self.jobset.invalid.items())],
        }

    def _next_run(self, job: JobDef) -> datetime | None:
        if job.id in self.paused or not job.enabled or not job.time_triggers:
            return None
        times = next_fire_times(job.time_triggers, self.clock.now(), 1)
        return times[0] if times else None

    async def list_jobs(self) -> list[dict[str, Any]]:
        out = []
        lasts = await self.journal.latest_finished_of(self.jobset.jobs)
        for job_id in sorted(self.jobset.jobs):
            job = self.jobset.jobs[job_id]
            last = lasts.get(job_id)
            nxt = self._next_run(job)
            out.append({
                "job_id": job_id, "file": str(job.source.file),
                "triggers": _trigger_texts(job),
                "next_run": nxt.isoformat() if nxt else None,
                "last_run": ({"run_id": last.run_id, "state": str(last.state),
                              "finished_at": iso(last.finished_at)} if last else None),
                "paused": job_id in self.paused, "enabled": job.enabled,
            })
        return out

    async def show_job(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        times = next_fire_times(job.time_triggers, self.clock.now(), 5) if job.enabled else []
        return {"job_id": job_id, "file": str(job.source.file), "line": job.source.line,
                "definition": _definition(job), "paused": job_id in self.paused,
                "next_fire_times": [t.isoformat() for t in times]}

    async def run_job(self, job_id: str, params: Mapping[str, str]) -> RunRecord:
        job = self._job(job_id)
        unknown = sorted(set(params) - set(job.params))
        if unknown:
            raise ValueError(f"job '{job_id}' has no param {', '.join(map(repr, unknown))}; "
                             f"its params: {', '.join(sorted(job.params)) or 'none'}")
        if self._draining:
            raise ValueError("the daemon is shutting down")
        if self.journal.fault is not None:
            raise ValueError(f"the journal cannot be written now ({self.journal.fault}); "
                             "try again once that is fixed")
        return await self.submit(Trigger(job_id=job_id, kind=TriggerKind.MANUAL,
                                         params=dict(params)))

    async def cancel_run(self, run_id: int) -> list[int]:
        if run_id in self.active:
            self._cancel_active(run_id, "jobctl cancel")
            return [run_id]
        if run_id in self.queued:
            run = self._dequeue(run_id)
            done = run.evolve(state=RunState.CANCELLED, finished_at=self.clock.now(),
                              message="cancelled while queued")
            await self.journal.put_runs([done])
            self._publish(done)
            self._changed()
            return [run_id]
        if await self.journal.get_run(run_id) is None:
            raise RunNotFound(str(run_id))
        return []

    async def cancel_job(self, job_id: str) -> list[int]:
        self._job(job_id)
        ids = [rid for rid, a in self.active.items() if a.job.id == job_id]
        ids += list(self._queued_by_job.get(job_id, ()))
        for rid in ids:
            await self.cancel_run(rid)
        return ids

    async def get_run(self, run_id: int) -> RunRecord:
        if run_id in self.active:
            return self.active[run_id].runner.run
        run = await self.journal.get_run(run_id)
        if run is None:
            raise RunNotFound(str(run_id))
        return run

    async def latest_run(self, job_id: str) -> RunRecord | None:
        runs = await self.journal.list_runs(job_id=job_id, limit=1)
        return runs[0] if runs else None

    async def runs(self, job_id: str | None, *, limit: int, state: RunState | None,
                   trigger: TriggerKind | None = None, flow_id: str | None = None,
                   before: int | None = None,
                   queued_since: datetime | None = None) -> list[RunRecord]:
        if job_id is not None and job_id not in self.jobset.jobs \
                and not await self.journal.list_runs(job_id=job_id, limit=1):
            raise JobNotFound(job_id)
        return await self.journal.list_runs(
            job_id=job_id, states=frozenset({state}) if state else None, limit=limit,
            trigger=trigger, flow_id=flow_id, before=before, queued_since=queued_since)

    async def slots(self, job_id: str, start: datetime, end: datetime, *,
                    limit: int) -> list[datetime]:
        from jobd.triggers.catchup import slots_between
        job = self._job(job_id)
        return slots_between(job.time_triggers, start, end, limit=limit)

    async def needs_graph(self) -> dict[str, dict[str, Any]]:
        return {j.id: {"needs": list(j.needs), "trigger_rule": str(j.trigger_rule)}
                for j in self.jobset.jobs.values()}

    def log_path(self, run: RunRecord) -> Path:
        return Path(run.log_path) if run.log_path else log_path(self.config, run)

    async def pause(self, job_id: str) -> None:
        self._job(job_id)
        await self.journal.set_paused(job_id, True)
        self.paused.add(job_id)
        self._decide(job_id, "paused")
        self._timer_wake.set()

    async def resume(self, job_id: str) -> None:
        self._job(job_id)
        await self.journal.set_paused(job_id, False)
        self.paused.discard(job_id)
        # Slots that fell while paused are not caught up: resume starts from now.
        now = self.clock.now()
        self.cursors[job_id] = now
        await self.journal.put_runs([], cursors={job_id: now})
        self._decide(job_id, "resumed")
        self._timer_wake.set()

    async def reload(self) -> dict[str, Any]:
        async with self._reload_lock:
            self.notifier.reloading()
            if self.config.path is not None:
                try:
                    fresh = load_config(self.config.path)
                except ConfigError as exc:
                    log.error("config not reloaded:\n%s", exc)
                else:
                    self._apply_config(fresh)
            jobset = load_jobs(self.config, previous=self.jobset)
            gone = set(self.jobset.jobs) - set(jobset.jobs)
            changed = {j for j in jobset.jobs if self.jobset.jobs.get(j) != jobset.jobs[j]}
            retimed = {j: self.clock.now() for j in changed if j in self.jobset.jobs
                       and self.jobset.jobs[j].time_triggers != jobset.jobs[j].time_triggers}
            if retimed:  # new triggers start from now, like a new job: no catch-up of them
                self.cursors.update(retimed)
                await self.journal.put_runs([], cursors=retimed)
            self.jobset = jobset
            for f, errs in jobset.invalid.items():
                log.error("%s: rejected: %s", f, "; ".join(errs))
            for rid, run in list(self.queued.items()):
                if run.job_id in gone:
                    await self.cancel_run(rid)
            if gone or changed:
                log.info("reloaded: %d jobs (%d changed, %d removed), %d invalid files",
                         len(jobset.jobs), len(changed), len(gone), len(jobset.invalid))
            self._timer_wake.set()
            if self._watch is not None:
                await self._watch.update()
            else:
                await self._start_watch()
            self._wake_dispatch()
            self.notifier.ready(self._status_line())
        return await self.status()

    def _apply_config(self, fresh: DaemonConfig) -> None:
        for name in ("state_dir", "socket", "jobs_dir", "celery"):
            if getattr(fresh, name) != getattr(self.config, name):
                log.warning("config: %s changed; it takes effect at the next start", name)
        self.config = replace(self.config, max_parallel=fresh.max_parallel,
                              pools=fresh.pools, shutdown_grace=fresh.shutdown_grace,
                              timezone=fresh.timezone, log_max_bytes=fresh.log_max_bytes,
                              retention_runs=fresh.retention_runs,
                              retention_days=fresh.retention_days)

    async def why(self, job_id: str) -> dict[str, Any]:
        from jobd.supervisor.explain import explain
        job = self._job(job_id)
        last = await self.latest_run(job_id)
        return explain(job, last=last, decisions=list(self.decisions.get(job_id, ())),
                       paused=job_id in self.paused, next_run=self._next_run(job),
                       active=[rid for rid, a in self.active.items() if a.job.id == job_id],
                       queued=list(self._queued_by_job.get(job_id, ())))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[RunRecord]]:
        send, receive = anyio.create_memory_object_stream[RunRecord](SUBSCRIBER_BUFFER)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()


async def _sleep_or_wake(clock: Clock, when: datetime, wake: anyio.Event) -> None:
    """Return when the clock reaches ``when`` or ``wake`` is set, whichever is first."""
    async with anyio.create_task_group() as tg:
        async def sleeper() -> None:
            await clock.sleep_until(when)
            tg.cancel_scope.cancel()

        tg.start_soon(sleeper)
        await wake.wait()
        tg.cancel_scope.cancel()


def _group(run: RunRecord) -> str | None:
    """The matrix group of a cell: its job in its flow (a matrix trigger always has one)."""
    return f"{run.job_id}@{run.flow_id}" if run.matrix is not None else None


def _fields(t: Trigger) -> dict[str, Any]:
    return {f: getattr(t, f) for f in t.__dataclass_fields__}


def _fold(into: RunRecord, slot: datetime | None) -> tuple[datetime, ...]:
    """The time slots ``into`` covers once a trigger for ``slot`` folds into it."""
    if slot is None or slot == into.scheduled_for or slot in into.folded_slots:
        return into.folded_slots
    return (*into.folded_slots, slot)


def _slot(t: Trigger) -> str:
    return f"for {t.scheduled_for.isoformat()} " if t.scheduled_for else ""


def _trigger_texts(job: JobDef) -> list[str]:
    out = [t.describe() for t in job.time_triggers]
    if job.watch is not None:
        out.append("watch " + ", ".join(job.watch.patterns))
    if job.needs:
        out.append(f"needs {', '.join(job.needs)} ({job.trigger_rule})")
    return out or ["manual"]


def _definition(job: JobDef) -> dict[str, Any]:
    from jobd.supervisor.explain import definition_json
    return definition_json(job)
