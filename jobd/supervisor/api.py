"""The control API (``jobd.control.api.DaemonAPI``) over the daemon's parts: reads from the
loaded jobs, the run tables and the journal; every change goes through the part that owns it."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from anyio.streams.memory import MemoryObjectReceiveStream

from jobd import __version__
from jobd._enums import RunState, TriggerKind
from jobd._exceptions import RunNotFound
from jobd.config.model import JobDef
from jobd.journal.abc import Journal, RunRecord
from jobd.metrics import Metrics
from jobd.supervisor.alerting import Alerts
from jobd.supervisor.clock import Clock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.dispatch import Dispatcher
from jobd.supervisor.events import Trigger
from jobd.supervisor.explain import definition_json, explain
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.rendering import iso
from jobd.supervisor.runner import log_path
from jobd.supervisor.runs import RunTable
from jobd.triggers.catchup import next_fire_times, slots_between


@dataclass(frozen=True, slots=True, kw_only=True)
class APIDeps:
    loaded: Loaded
    runs: RunTable
    journal: Journal  # reads only
    ledger: Ledger
    cursors: dict[str, datetime]
    clock: Clock
    decisions: Decisions
    dispatch: Dispatcher  # cancelling, and whether the daemon is draining
    submit: Callable[[Trigger], Awaitable[RunRecord]]
    reload: Callable[[], Awaitable[None]]
    wake_timer: Callable[[], None]
    started_at: datetime
    alerts: Alerts  # which jobs are stale
    metrics: Metrics


class ControlAPI:
    def __init__(self, deps: APIDeps) -> None:
        self.deps = deps

    async def status(self) -> dict[str, Any]:
        d = self.deps
        now = d.clock.now()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "started_at": d.started_at.isoformat(),
            "uptime_seconds": (now - d.started_at).total_seconds(),
            "jobs_loaded": len(d.loaded.jobs),
            "runs_running": len(d.runs.active),
            "runs_queued": len(d.runs.queued),
            "paused": sorted(d.loaded.paused),
            "stale": sorted(
                j for j, s in d.alerts.staleness.items() if s.stale and j in d.loaded.jobs
            ),
            "journal_fault": d.journal.fault,
            **d.metrics.loop_status(),
            "invalid_files": [
                {"file": str(f), "errors": list(e)}
                for f, e in sorted(d.loaded.jobset.invalid.items())
            ],
        }

    def _next_run(self, job: JobDef) -> datetime | None:
        if job.id in self.deps.loaded.paused or not job.enabled or not job.time_triggers:
            return None
        times = next_fire_times(job.time_triggers, self.deps.clock.now(), 1)
        return times[0] if times else None

    async def list_jobs(self) -> list[dict[str, Any]]:
        d = self.deps
        out = []
        lasts = await d.journal.latest_finished_of(d.loaded.jobs)
        for job_id in sorted(d.loaded.jobs):
            job = d.loaded.jobs[job_id]
            last = lasts.get(job_id)
            nxt = self._next_run(job)
            out.append(
                {
                    "job_id": job_id,
                    "file": str(job.source.file),
                    "triggers": _trigger_texts(job),
                    "next_run": nxt.isoformat() if nxt else None,
                    "last_run": (
                        {
                            "run_id": last.run_id,
                            "state": str(last.state),
                            "finished_at": iso(last.finished_at),
                        }
                        if last
                        else None
                    ),
                    "paused": job_id in d.loaded.paused,
                    "enabled": job.enabled,
                    "description": job.description,
                    "timezone": job.timezone,
                    **self._stale_json(job_id),
                }
            )
        return out

    def _stale_json(self, job_id: str) -> dict[str, Any]:
        s = self.deps.alerts.staleness.get(job_id)
        if s is None:
            return {"stale": False}
        return {
            "stale": s.stale,
            "stale_since": s.since.isoformat(),
            "stale_at": s.due_at.isoformat(),
        }

    async def metrics_text(self) -> str:
        """The Prometheus text of ``render_metrics``."""
        return self.deps.metrics.render_metrics().decode()

    def render_metrics(self) -> bytes:
        """What ``/metrics`` serves (``jobd.metrics.CONTENT_TYPE``)."""
        return self.deps.metrics.render_metrics()

    def healthy(self) -> bool:
        """What ``/healthz`` answers: the loop is responsive and the journal writable."""
        return self.deps.metrics.healthy()

    def health(self) -> dict[str, bool]:
        return self.deps.metrics.health()

    async def show_job(self, job_id: str) -> dict[str, Any]:
        d = self.deps
        job = d.loaded.job(job_id)
        times = next_fire_times(job.time_triggers, d.clock.now(), 5) if job.enabled else []
        return {
            "job_id": job_id,
            "file": str(job.source.file),
            "line": job.source.line,
            "description": job.description,
            "timezone": job.timezone,
            "definition": definition_json(job),
            "paused": job_id in d.loaded.paused,
            "next_fire_times": [t.isoformat() for t in times],
            **self._stale_json(job_id),
        }

    async def run_job(self, job_id: str, params: Mapping[str, str]) -> RunRecord:
        d = self.deps
        job = d.loaded.job(job_id)
        unknown = sorted(set(params) - set(job.params))
        if unknown:
            raise ValueError(
                f"job '{job_id}' has no param {', '.join(map(repr, unknown))}; "
                f"its params: {', '.join(sorted(job.params)) or 'none'}"
            )
        if d.dispatch.draining:
            raise ValueError("the daemon is shutting down")
        if d.journal.fault is not None:
            raise ValueError(
                f"the journal cannot be written now ({d.journal.fault}); "
                "try again once that is fixed"
            )
        return await d.submit(Trigger(job_id=job_id, kind=TriggerKind.MANUAL, params=dict(params)))

    async def cancel_run(self, run_id: int) -> list[int]:
        d = self.deps
        if d.dispatch.cancel_active(run_id, "jobctl cancel"):
            return [run_id]
        if await d.dispatch.cancel_queued(run_id):
            return [run_id]
        if await d.journal.get_run(run_id) is None:
            raise RunNotFound(str(run_id))
        return []

    async def cancel_job(self, job_id: str) -> list[int]:
        d = self.deps
        d.loaded.job(job_id)
        ids = d.runs.active_of(job_id) + d.runs.queued_of(job_id)
        for rid in ids:
            await self.cancel_run(rid)
        return ids

    async def get_run(self, run_id: int) -> RunRecord:
        d = self.deps
        if run_id in d.runs.active:
            return d.runs.active[run_id].runner.run
        run = await d.journal.get_run(run_id)
        if run is None:
            raise RunNotFound(str(run_id))
        return run

    async def latest_run(self, job_id: str) -> RunRecord | None:
        runs = await self.deps.journal.list_runs(job_id=job_id, limit=1)
        return runs[0] if runs else None

    async def runs(
        self,
        job_id: str | None,
        *,
        limit: int,
        state: RunState | None,
        trigger: TriggerKind | None = None,
        flow_id: str | None = None,
        before: int | None = None,
        queued_since: datetime | None = None,
    ) -> list[RunRecord]:
        journal = self.deps.journal
        if (
            job_id is not None
            and job_id not in self.deps.loaded.jobs
            and not await journal.list_runs(job_id=job_id, limit=1)
        ):
            self.deps.loaded.job(job_id)  # raises, with the close ids
        return await journal.list_runs(
            job_id=job_id,
            states=frozenset({state}) if state else None,
            limit=limit,
            trigger=trigger,
            flow_id=flow_id,
            before=before,
            queued_since=queued_since,
        )

    async def slots(
        self, job_id: str, start: datetime, end: datetime, *, limit: int
    ) -> list[datetime]:
        return slots_between(self.deps.loaded.job(job_id).time_triggers, start, end, limit=limit)

    async def needs_graph(self) -> dict[str, dict[str, Any]]:
        return {
            j.id: {"needs": list(j.needs), "trigger_rule": str(j.trigger_rule)}
            for j in self.deps.loaded.jobs.values()
        }

    def log_path(self, run: RunRecord) -> Path:
        return Path(run.log_path) if run.log_path else log_path(self.deps.loaded.config, run)

    async def pause(self, job_id: str) -> None:
        d = self.deps
        d.loaded.job(job_id)
        await d.journal.set_paused(job_id, True)
        d.loaded.paused.add(job_id)
        d.decisions.note(job_id, "paused")
        d.wake_timer()

    async def resume(self, job_id: str) -> None:
        d = self.deps
        d.loaded.job(job_id)
        await d.journal.set_paused(job_id, False)
        d.loaded.paused.discard(job_id)
        # Slots that fell while paused are not caught up: resume starts from now.
        now = d.clock.now()
        d.cursors[job_id] = now
        await d.ledger.write(cursors={job_id: now})
        d.decisions.note(job_id, "resumed")
        d.wake_timer()

    async def reload(self) -> dict[str, Any]:
        await self.deps.reload()
        return await self.status()

    async def why(self, job_id: str) -> dict[str, Any]:
        d = self.deps
        job = d.loaded.job(job_id)
        last = await self.latest_run(job_id)
        stale = d.alerts.staleness.get(job_id)
        return explain(
            job,
            last=last,
            decisions=d.decisions.of(job_id),
            paused=job_id in d.loaded.paused,
            next_run=self._next_run(job),
            active=d.runs.active_of(job_id),
            queued=d.runs.queued_of(job_id),
            now=d.clock.now(),
            stale_since=stale.since if stale and stale.stale else None,
        )

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[RunRecord]]:
        return self.deps.ledger.subscribe()


def _trigger_texts(job: JobDef) -> list[str]:
    out = [t.describe() for t in job.time_triggers]
    if job.watch is not None:
        out.append("watch " + ", ".join(job.watch.patterns))
    if job.needs:
        out.append(f"needs {', '.join(job.needs)} ({job.trigger_rule})")
    return out or ["manual"]
