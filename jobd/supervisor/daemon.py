"""The composition root: builds the supervisor's parts, each with the few things it uses,
and runs them in order (see ``Daemon.run``). Every decision and every state lives in a part:

- ``intake``: the bus; admits triggers into runs       - ``ledger``: writes run records
- ``dispatch``: starts runs under the limits            - ``runs``: queued and active runs
- ``timer``: catch-up, slots, cursors                   - ``recovery``: runs left unfinished
- ``reload``: config and job files again                - ``api``: the control API
- ``flowing``, ``watching``: flows and watch triggers   - ``runner``: one run, start to end
- ``alerting``: hook runs, stale jobs, metrics

docs/architecture.md draws how a trigger travels through them."""

from __future__ import annotations

import logging
import os
import random
from datetime import datetime

import anyio
from anyio.abc import TaskStatus

from jobd import __version__
from jobd.config.loader import load_jobs
from jobd.config.model import DaemonConfig, JobSet
from jobd.executors.abc import Executor
from jobd.executors.actions import daemon_python
from jobd.executors.routing import LazyCelery, default_executor
from jobd.journal.abc import Journal, RunRecord
from jobd.journal.sqlite import SQLiteJournal
from jobd.supervisor import runfiles
from jobd.supervisor.alerting import observed
from jobd.supervisor.api import APIDeps, ControlAPI
from jobd.supervisor.clock import Clock, SystemClock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.dispatch import DispatchDeps, Dispatcher
from jobd.supervisor.events import Trigger
from jobd.supervisor.flowing import FlowDeps, FlowEngine
from jobd.supervisor.intake import Intake, IntakeDeps
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.notify import Notifier
from jobd.supervisor.recovery import RecoveryDeps, recover
from jobd.supervisor.reload import ReloadDeps, Reloader
from jobd.supervisor.runner import RunnerDeps
from jobd.supervisor.runs import Active, RunTable
from jobd.supervisor.services import jobs_dir_loop, prune_loop, signal_loop
from jobd.supervisor.slotgate import SlotGate
from jobd.supervisor.timer import Timer, TimerDeps
from jobd.supervisor.watching import WatchDeps, WatchService

log = logging.getLogger("jobd")


class Daemon:
    """jobd: every trigger source posts to one bus; intake journals and admits; dispatch starts
    runs under the limits; each run is a task of the daemon's task group."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        clock: Clock | None = None,
        executor: Executor | None = None,
        journal: Journal | None = None,
        notifier: Notifier | None = None,
        control: bool = True,
        watch_jobs_dir: bool = True,
        handle_signals: bool = True,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.journal: Journal = journal or SQLiteJournal(config.journal_path)
        self.notifier = notifier or Notifier()
        self.instance = str(config.journal_path.resolve())
        self.remote = LazyCelery(config)  # executor = "celery" jobs
        self.executor: Executor = executor or default_executor(
            instance=self.instance,
            docker_host=config.docker_host,
            docker_network=config.docker_network,
        )
        self._control, self._watch_jobs_dir = control, watch_jobs_dir
        self._handle_signals = handle_signals
        self.started_at = self.clock.now()
        self._stop, self._ready = anyio.Event(), anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._watch: WatchService | None = None
        self.http_url: str | None = None  # the dashboard's address, once it listens
        # The parts, each given what it uses and nothing else.
        clock = self.clock
        self.loaded = loaded = Loaded(config)
        self.cursors: dict[str, datetime] = {}
        self.table = runs = RunTable()
        self.ledger = ledger = Ledger(self.journal)
        self.decisions = decisions = Decisions(clock)
        self.alerts = alerts = observed(
            loaded=loaded,
            journal=self.journal,
            ledger=ledger,
            runs=runs,
            cursors=self.cursors,
            clock=clock,
            decisions=decisions,
            wake_dispatch=lambda: self.dispatch.wake(),
            bus_depth=lambda: self.intake.depth(),
        )
        self.metrics = metrics = alerts.deps.metrics
        self.flows = FlowEngine(
            FlowDeps(
                loaded=loaded,
                journal=self.journal,
                ledger=ledger,
                clock=clock,
                decisions=decisions,
                submit=self.submit,
                follow_ups=alerts.follow_ups,
                admit=alerts.admit,
            )
        )
        runner = RunnerDeps(
            config=config,
            ledger=ledger,
            executor=self.executor,
            clock=clock,
            gate=SlotGate(clock),
            instance=self.instance,
            python=daemon_python(),
            needs_context=self.flows.needs_context,
            rng=random.Random(),
            environ=dict(os.environ),
            remote=self.remote,
            follow_ups=alerts.follow_ups,
            admit=alerts.admit,
        )
        self.dispatch = dispatch = Dispatcher(
            DispatchDeps(
                loaded=loaded,
                runs=runs,
                ledger=ledger,
                clock=clock,
                runner=runner,
                advance_flow=lambda flow_id: self.flows.advance(flow_id),
            )
        )
        self.intake = Intake(
            IntakeDeps(
                loaded=loaded,
                runs=runs,
                ledger=ledger,
                clock=clock,
                decisions=decisions,
                wake_dispatch=dispatch.wake,
                cancel_active=dispatch.cancel_active,
                metrics=metrics,
            )
        )
        self.timer = Timer(
            TimerDeps(
                loaded=loaded,
                cursors=self.cursors,
                ledger=ledger,
                clock=clock,
                decisions=decisions,
                post_all=self.intake.post_all,
                metrics=metrics,
                on_wake=alerts.wake,
                job_idle=runs.job_idle,
            )
        )
        self.reloader = Reloader(
            ReloadDeps(
                loaded=loaded,
                cursors=self.cursors,
                runs=runs,
                ledger=ledger,
                clock=clock,
                notifier=self.notifier,
                cancel_queued=dispatch.cancel_queued,
                wake_timer=self.timer.wake,
                wake_dispatch=dispatch.wake,
                update_watches=self._update_watches,
                status_line=self._status_line,
            )
        )
        self.api = api = ControlAPI(
            APIDeps(
                loaded=loaded,
                runs=runs,
                journal=self.journal,
                ledger=ledger,
                cursors=self.cursors,
                clock=clock,
                decisions=decisions,
                dispatch=dispatch,
                submit=self.submit,
                reload=self.reloader.reload,
                wake_timer=self.timer.wake,
                started_at=self.started_at,
                alerts=alerts,
                metrics=metrics,
            )
        )
        # The control API, on the daemon itself too (tools and tests call it in-process).
        self.status, self.list_jobs, self.show_job = api.status, api.list_jobs, api.show_job
        self.run_job, self.cancel_run, self.cancel_job = api.run_job, api.cancel_run, api.cancel_job
        self.get_run, self.latest_run, self.runs = api.get_run, api.latest_run, api.runs
        self.slots, self.needs_graph = api.slots, api.needs_graph
        self.log_path, self.pause, self.resume = api.log_path, api.pause, api.resume
        self.reload, self.why, self.subscribe = api.reload, api.why, api.subscribe
        self.is_idle, self.wait_idle, self._post = runs.is_idle, runs.wait_idle, self.intake.post
        self._wait_change = runs.wait_change  # waiting and posting, for tests and tools

    # --- the table of contents ------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover, catch up, start the services, serve until ``stop()`` (or SIGTERM), drain."""
        runfiles.make_state_dirs(self.config)  # with the modes of docs/security.md
        async with self.journal:
            await self._load()
            self.dispatch.adopt |= await recover(
                RecoveryDeps(
                    journal=self.journal,
                    jobs=self.loaded.jobs,
                    runs=self.table,
                    ledger=self.ledger,
                    executor=self.executor,
                    clock=self.clock,
                    decisions=self.decisions,
                    instance=self.instance,
                )
            )
            with self.intake.bus():
                await self._serve(task_status)
            with anyio.CancelScope(shield=True):
                await self.remote.aclose()
        self.notifier.close()

    async def _serve(self, task_status: TaskStatus[None]) -> None:
        """Intake and dispatch, catch-up, flows cut off by a stop, the services; serve; drain."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self.metrics.loop_monitor)
            tg.start_soon(self.intake.serve)
            tg.start_soon(self.dispatch.loop, tg)
            await self.timer.catch_up()
            await self.flows.resume()
            self.dispatch.wake()  # runs queued from before start now
            await self._start_services(tg)
            self._ready.set()
            log.info(
                "jobd %s ready: %d jobs, %d invalid files, journal %s",
                __version__,
                len(self.jobset.jobs),
                len(self.jobset.invalid),
                self.config.journal_path,
            )
            task_status.started()
            with self.metrics.stall_meter.measuring():  # stalls from READY on, not start-up
                await self._stop.wait()
                await self._drain()
            tg.cancel_scope.cancel()

    async def _load(self) -> None:
        self.loaded.paused = await self.journal.paused()
        self.cursors.update(await self.journal.cursors())
        self.loaded.jobset = jobset = load_jobs(self.config)
        for f, errs in jobset.invalid.items():
            for e in errs:
                log.error("%s", e)
            log.error("%s: rejected; its jobs are not loaded", f)

    async def _start_services(self, tg: anyio.abc.TaskGroup) -> None:
        await tg.start(self.timer.loop)
        await self._update_watches()
        if self._control:
            from jobd.control.server import ControlServer

            await tg.start(ControlServer(self.api, self.config).serve)
        if self.config.http is not None:  # else no port, no web import
            from jobd.web import serve_http

            self.http_url = await tg.start(serve_http, self.api, self.config)
        if self._handle_signals:
            await tg.start(signal_loop, self.reload, self.stop)
        if self._watch_jobs_dir:
            await tg.start(jobs_dir_loop, self.config.jobs_dir, self.reload)
        tg.start_soon(prune_loop, self.prune)
        tg.start_soon(self.alerts.stale_loop)
        interval = Notifier.watchdog_interval()
        if interval:
            tg.start_soon(self.notifier.watchdog_loop, interval)
        self.notifier.ready(self._status_line())

    def stop(self) -> None:
        """Begin draining: no new starts; running jobs get ``shutdown_grace``."""
        self._stop.set()

    async def _drain(self) -> None:
        self.dispatch.draining = True
        self.notifier.stopping()
        await self.dispatch.drain(self.config.shutdown_grace)
        self.journal.stop_retrying()  # a write a storage fault holds fails now: re-run at start
        with anyio.CancelScope(shield=True):
            await self.executor.aclose()
        log.info("stopped")

    # --- services -------------------------------------------------------------------------

    async def _update_watches(self) -> None:
        """Start watching once some job watches paths (no watcher thread until then)."""
        if self._watch is not None:
            await self._watch.update()
        elif self._tg is not None and any(j.watch for j in self.loaded.jobs.values()):
            self._watch = WatchService(
                WatchDeps(
                    loaded=self.loaded,
                    journal=self.journal,
                    ledger=self.ledger,
                    cursors=self.cursors,
                    clock=self.clock,
                    decisions=self.decisions,
                    submit=self.submit,
                )
            )
            await self._watch.start(self._tg)

    async def prune(self) -> int:
        """One retention pass now (``retention_runs``, ``retention_days``); returns how many."""
        c = self.config
        return await self.ledger.prune(
            now=self.clock.now(), retention_days=c.retention_days, retention_runs=c.retention_runs
        )

    # --- state, for tools and tests -------------------------------------------------------

    @property
    def config(self) -> DaemonConfig:
        return self.loaded.config

    @property
    def jobset(self) -> JobSet:
        return self.loaded.jobset

    @property
    def paused(self) -> set[str]:
        return self.loaded.paused

    @property
    def active(self) -> dict[int, Active]:
        return self.table.active

    async def submit(self, trigger: Trigger) -> RunRecord:
        """Post a trigger and wait until it is journaled; the run (new or folded into)."""
        return await self.intake.submit(trigger)

    def _status_line(self) -> str:
        return (
            f"{len(self.jobset.jobs)} jobs, {len(self.table.active)} running, "
            f"{len(self.table.queued)} queued"
        )

    async def wait_ready(self) -> None:
        await self._ready.wait()
