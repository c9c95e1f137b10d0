"""Hook runs and stale jobs in the daemon: the I/O around the pure ``hooks`` and ``stale``.

Hook runs are built here and written by the caller, through the ledger, in the same transaction
as the result that sets them off (a run's final state, a retried attempt, a stale episode's
marker), then queued. After a crash they are ordinary queued runs, which recovery re-queues.
``observed`` wires this part and the metrics into the daemon's others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.config.model import JobDef
from jobd.journal.abc import Journal, RunRecord
from jobd.journal.sqlite import SQLiteJournal
from jobd.metrics import Metrics
from jobd.supervisor.clock import Clock, sleep_or_wake
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.hooks import HookEvent, plan_hooks, stale_facts
from jobd.supervisor.intake import matrix_cells
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.runs import RunTable
from jobd.supervisor.stale import FIRED_KEY, SEEN_KEY, Staleness, judge

log = logging.getLogger("jobd.alerting")

RECHECK = 60.0  # seconds: the stale check also looks again this often (clock jumps)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertDeps:
    loaded: Loaded
    journal: Journal  # reads: the last successes, once
    ledger: Ledger  # hook runs with a stale episode's marker
    runs: RunTable  # hook runs are queued here once journaled
    cursors: dict[str, datetime]  # first-seen and fired-for marks live beside the slots
    clock: Clock
    decisions: Decisions
    metrics: Metrics
    wake_dispatch: Callable[[], None]


class Alerts:
    def __init__(self, deps: AlertDeps) -> None:
        self.deps = deps
        self.last_success: dict[str, datetime] = {}
        self.staleness: dict[str, Staleness] = {}
        self._loaded_successes = False
        self._watched_for: object = None
        self._watched_cache: list[JobDef] = []
        self._wake = anyio.Event()

    # --- hooks ----------------------------------------------------------------------------

    def follow_ups(
        self, run: RunRecord, event: HookEvent | None, facts: Mapping[str, str] | None
    ) -> list[RunRecord]:
        """The queued hook runs ``run`` sets off (not yet journaled)."""
        out: list[RunRecord] = []
        for call in plan_hooks(self.deps.loaded.jobs.get(run.job_id), run, event, facts):
            out += self._hook_runs(call.job_id, call.facts, f"{event} of run {run.run_id}")
        return out

    def _hook_runs(self, job_id: str, facts: Mapping[str, str], why: str) -> list[RunRecord]:
        d = self.deps
        job = d.loaded.jobs.get(job_id)
        if job is None or not job.enabled or job_id in d.loaded.paused:
            state = "gone" if job is None else "disabled" if not job.enabled else "paused"
            log.warning("hook %s (%s) not run: the job is %s", job_id, why, state)
            d.decisions.note(job_id, f"hook for {why} not run: the job is {state}")
            return []
        run_id = d.ledger.new_run_id()
        flow_id = str(run_id) if job_id in d.loaded.needed or job.matrix is not None else None
        run = RunRecord(
            run_id=run_id,
            job_id=job_id,
            trigger=TriggerKind.HOOK,
            state=RunState.QUEUED,
            queued_at=d.clock.now(),
            flow_id=flow_id,
            params=dict(facts),
        )
        d.decisions.note(job_id, f"hook run {run_id} queued for {why}")
        event = next((k.split("_")[1] for k in facts if k.endswith("_JOB")), "?")
        d.metrics.hook_runs.labels(job=job_id, event=event.lower()).inc()
        return matrix_cells(job, run, d.ledger.new_run_id)

    def admit(self, runs: list[RunRecord]) -> None:
        """Queue hook runs that are journaled (the ledger published them)."""
        d = self.deps
        for run in runs:
            if run.state is RunState.QUEUED:
                d.runs.enqueue(run)
        if runs:
            d.wake_dispatch()
            d.runs.changed()

    # --- stale jobs -----------------------------------------------------------------------

    def published(self, run: RunRecord) -> None:
        """Every run record the ledger published: its metrics; a success resets staleness."""
        self.deps.metrics.observe_run(run)
        if run.state is RunState.SUCCEEDED:
            self.succeeded(run)

    def succeeded(self, run: RunRecord) -> None:
        if run.finished_at is not None:
            self.last_success[run.job_id] = run.finished_at
            job = self.deps.loaded.jobs.get(run.job_id)
            if job is not None and job.stale_after is not None:
                self._wake.set()  # only a watched job's success changes a judgement

    def _watched(self) -> list[JobDef]:
        """Jobs with ``stale_after``, found once per job set (most jobs have none)."""
        jobset = self.deps.loaded.jobset
        if self._watched_for is not jobset:
            self._watched_cache = [j for j in jobset.jobs.values() if j.stale_after is not None]
            self._watched_for = jobset
        return self._watched_cache

    def wake(self) -> None:
        """Job definitions changed: look again."""
        self._wake.set()

    async def _load(self, jobs: list[JobDef]) -> None:
        """Last successes from the journal (once, in one query), and a first-seen time for
        new stale-watched jobs."""
        d = self.deps
        if not self._loaded_successes:
            self._loaded_successes = True
            for job_id, at in (await d.journal.last_successes()).items():
                if at > self.last_success.get(job_id, at - timedelta(seconds=1)):
                    self.last_success[job_id] = at
            for job_id, at in self.last_success.items():
                d.metrics.set_last_success(job_id, at)
        fresh: dict[str, datetime] = {}
        for job in jobs:
            key = SEEN_KEY.format(job.id)
            if key not in d.cursors:
                fresh[key] = d.cursors[key] = d.clock.now()
        if fresh:
            await d.ledger.write(cursors=fresh)

    async def check(self) -> datetime | None:
        """Judge every job with ``stale_after``; fire ``on_failure`` for new episodes. Returns
        when the next job would go stale."""
        d = self.deps
        jobs = self._watched()
        await self._load(jobs)
        now = d.clock.now()
        soonest: datetime | None = None
        judged: set[str] = set()
        for job in jobs:
            if job.stale_after is None or not job.enabled or job.id in d.loaded.paused:
                continue  # a paused or disabled job is expected not to succeed
            judged.add(job.id)
            fired_key = FIRED_KEY.format(job.id)
            s = judge(
                stale_after=job.stale_after,
                last_success=self.last_success.get(job.id),
                first_seen=d.cursors.get(SEEN_KEY.format(job.id), now),
                now=now,
                fired_for=d.cursors.get(fired_key),
            )
            was = self.staleness.get(job.id)
            if s.stale and (was is None or not was.stale):
                log.warning("job %s is stale: no success since %s", job.id, s.since.isoformat())
            if s.fire:
                facts = stale_facts(
                    job.id,
                    since=s.since,
                    last_success=self.last_success.get(job.id),
                    stale_after=job.stale_after,
                )
                runs = [
                    r
                    for h in job.on_failure
                    for r in self._hook_runs(h, facts, f"{job.id} going stale")
                ]
                d.decisions.note(
                    job.id,
                    f"stale: no success since {s.since.isoformat()}; "
                    f"on_failure fired ({', '.join(job.on_failure) or 'none'})",
                )
                # The marker and the hook runs in one commit: fired once, across restarts.
                await d.ledger.write(runs, cursors={fired_key: s.since})
                d.cursors[fired_key] = s.since
                self.admit(runs)
            self.staleness[job.id] = s  # after firing: a reader sees the hook runs queued
            d.metrics.stale.labels(job=job.id).set(1 if s.stale else 0)
            if not s.stale and (soonest is None or s.due_at < soonest):
                soonest = s.due_at
        for job_id in set(self.staleness) - judged:
            del self.staleness[job_id]
            d.metrics.stale.remove(job_id)
        d.runs.changed()  # wake waiters (tests, drain) on the new judgement
        return soonest

    async def stale_loop(self) -> None:
        d = self.deps
        while True:
            wake = self._wake = anyio.Event()
            try:
                soonest = await self.check()
            except Exception:  # alerting must never stop the daemon
                log.exception("stale check failed; trying again in a minute")
                soonest = None
            limit = d.clock.now().timestamp() + RECHECK
            when = (
                soonest
                if soonest is not None and soonest.timestamp() < limit
                else datetime.fromtimestamp(limit, d.clock.now().tzinfo)
            )
            await sleep_or_wake(d.clock, when, wake)


def observed(
    *,
    loaded: Loaded,
    journal: Journal,
    ledger: Ledger,
    runs: RunTable,
    cursors: dict[str, datetime],
    clock: Clock,
    decisions: Decisions,
    wake_dispatch: Callable[[], None],
    bus_depth: Callable[[], int],
) -> Alerts:
    """The daemon's metrics and alerts, wired: every published run is counted (and resets
    staleness), gauges read the live tables at scrape, the journal reports its commits."""
    metrics = Metrics()
    alerts = Alerts(
        AlertDeps(
            loaded=loaded,
            journal=journal,
            ledger=ledger,
            runs=runs,
            cursors=cursors,
            clock=clock,
            decisions=decisions,
            metrics=metrics,
            wake_dispatch=wake_dispatch,
        )
    )
    ledger.observers.append(alerts.published)
    metrics.bind(
        queue_depth=lambda: len(runs.queued),
        running=lambda: len(runs.active),
        bus_depth=bus_depth,
        jobs_loaded=lambda: len(loaded.jobs),
        invalid_files=lambda: len(loaded.jobset.invalid),
    )
    if isinstance(journal, SQLiteJournal):
        journal.on_commit = metrics.commit_observed
    return alerts
