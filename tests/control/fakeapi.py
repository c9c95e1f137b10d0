"""A small ``DaemonAPI`` over ``MemoryJournal`` for protocol tests of the control server.

Runs are "executed" by a task that writes a job's scripted output to the run's log file and
finishes with its scripted state, publishing every state change after journaling it, as the
real daemon does. It keeps the real daemon's rules that a client can see: one run of a job
at a time (``overlap = "queue"``), a manual run without params folded into the job's queued
run, queued runs cancelled as such, reload applying staged job changes, and the real
wording (``explain``, ``definition_json``, trigger descriptions, next fire times).
``tests/control/test_contract.py`` runs the same scenarios against it and the real daemon.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JobNotFound, RunNotFound
from jobd.config.model import CommandAction, JobDef, JobSource
from jobd.journal.abc import RunRecord
from jobd.journal.memory import MemoryJournal
from jobd.supervisor.explain import definition_json, explain
from jobd.triggers.catchup import next_fire_times, slots_between
from jobd.triggers.cron import CronTrigger

NOW = datetime(2029, 12, 31, 23, 30, tzinfo=UTC)
"""The fake's clock for next fire times: an hourly cron fires next at 2030-01-01 00:00 UTC."""


@dataclass
class FakeJob:
    """What a run of this job does: write ``output`` in pieces ``step`` seconds apart, then
    end with ``exit_code`` (or wait for ``cancel`` when ``hold``)."""

    job_id: str
    output: list[bytes] = field(default_factory=list)
    exit_code: int = 0
    step: float = 0.0
    hold: bool = False
    params: dict[str, str] = field(default_factory=dict)
    cron: str | None = None  # in UTC

    def definition(self) -> JobDef:
        return JobDef(
            id=self.job_id,
            source=JobSource(file=Path(f"jobs.d/{self.job_id}.toml"), line=1),
            action=CommandAction(command="true"),
            params=dict(self.params),
            time_triggers=(CronTrigger.parse(self.cron, "UTC"),) if self.cron else (),
        )


class FakeDaemon:
    """``DaemonAPI`` for tests. ``changes`` records every changing call that got through."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.journal = MemoryJournal()
        self.jobs: dict[str, FakeJob] = {}
        self.staged: dict[str, FakeJob | None] = {}  # job files changed on disk: reload reads
        self.paused: set[str] = set()
        self.invalid_files: list[dict[str, Any]] = []
        self.changes: list[tuple[str, str]] = []
        self.fail_status: BaseException | None = None  # raised once by the next ``status``
        self.started_at = datetime.now(UTC)
        self._subscribers: list[MemoryObjectSendStream[RunRecord]] = []
        self._queued: dict[int, RunRecord] = {}  # in queue order
        self._active: dict[int, anyio.Event] = {}  # run id -> its cancel event
        self._active_job: dict[str, int] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def add(self, job: FakeJob) -> FakeJob:
        self.jobs[job.job_id] = job
        return job

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self.journal, anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            await anyio.sleep_forever()

    # --- helpers --------------------------------------------------------------------------

    def _job(self, job_id: str) -> FakeJob:
        if job_id not in self.jobs:
            raise JobNotFound(job_id)
        return self.jobs[job_id]

    async def _put(self, run: RunRecord) -> RunRecord:
        await self.journal.put_runs([run])
        for s in list(self._subscribers):
            try:
                s.send_nowait(run)
            except anyio.WouldBlock:
                self._subscribers.remove(s)
                s.close()  # too slow: dropped, as the daemon does
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(s)
                s.close()
        return run

    def _next_run(self, job: FakeJob) -> datetime | None:
        if job.job_id in self.paused or not job.cron:
            return None
        return next_fire_times(job.definition().time_triggers, NOW, 1)[0]

    def _dispatch(self) -> None:
        """Start each queued run whose job has no run going (``overlap = "queue"``)."""
        for rid, run in list(self._queued.items()):
            if run.job_id not in self._active_job:
                del self._queued[rid]
                self._active[rid] = anyio.Event()
                self._active_job[run.job_id] = rid
                assert self._tg is not None
                self._tg.start_soon(self._execute, run)

    async def _execute(self, run: RunRecord) -> None:
        job = self.jobs[run.job_id]
        path = self.log_path(run)
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        run = await self._put(
            run.evolve(
                state=RunState.RUNNING,
                started_at=datetime.now(UTC),
                pid=os.getpid(),
                log_path=str(path),
            )
        )
        cancelled = self._active[run.run_id]
        async with await anyio.open_file(path, "wb") as f:
            for piece in job.output:
                await f.write(piece)
                await f.flush()
                if job.step:
                    await anyio.sleep(job.step)
            if job.hold:
                await cancelled.wait()
        if cancelled.is_set():
            state, code = RunState.CANCELLED, None
        else:
            state = RunState.SUCCEEDED if job.exit_code == 0 else RunState.FAILED
            code = job.exit_code
        message = (
            None
            if state is RunState.SUCCEEDED
            else "cancelled"
            if code is None
            else f"exit code {code}"
        )
        await self._put(
            run.evolve(state=state, exit_code=code, finished_at=datetime.now(UTC), message=message)
        )
        del self._active[run.run_id]
        del self._active_job[run.job_id]
        self._dispatch()

    # --- DaemonAPI ------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        if self.fail_status is not None:
            exc, self.fail_status = self.fail_status, None
            raise exc
        return {
            "pid": os.getpid(),
            "version": "0.0-test",
            "started_at": self.started_at.isoformat(),
            "uptime_seconds": (datetime.now(UTC) - self.started_at).total_seconds(),
            "jobs_loaded": len(self.jobs),
            "runs_running": len(self._active),
            "runs_queued": len(self._queued),
            "paused": sorted(self.paused),
            "stale": [],
            "journal_fault": self.journal.fault,
            "loop_stall_max_seconds": 0.0042,
            "loop_stalls": 0,
            "invalid_files": self.invalid_files,
        }

    async def list_jobs(self) -> list[dict[str, Any]]:
        out = []
        for job_id in sorted(self.jobs):
            last = await self.journal.latest_finished(job_id)
            job = self.jobs[job_id]
            nxt = self._next_run(job)
            out.append(
                {
                    "job_id": job_id,
                    "file": f"jobs.d/{job_id}.toml",
                    "triggers": [t.describe() for t in job.definition().time_triggers]
                    or ["manual"],
                    "next_run": nxt.isoformat() if nxt else None,
                    "last_run": None
                    if last is None
                    else {
                        "run_id": last.run_id,
                        "state": str(last.state),
                        "finished_at": last.finished_at.isoformat() if last.finished_at else None,
                    },
                    "paused": job_id in self.paused,
                    "enabled": True,
                    "description": job.definition().description,
                    "timezone": job.definition().timezone,
                    "stale": False,
                }
            )
        return out

    async def show_job(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id).definition()
        times = next_fire_times(job.time_triggers, NOW, 5)
        return {
            "job_id": job_id,
            "file": f"jobs.d/{job_id}.toml",
            "line": 1,
            "description": job.description,
            "timezone": job.timezone,
            "stale": False,
            "definition": definition_json(job),
            "paused": job_id in self.paused,
            "next_fire_times": [t.isoformat() for t in times],
        }

    async def run_job(self, job_id: str, params: Mapping[str, str]) -> RunRecord:
        job = self._job(job_id)
        unknown = sorted(set(params) - set(job.params))
        if unknown:
            raise ValueError(
                f"job '{job_id}' has no param {', '.join(map(repr, unknown))}; "
                f"its params: {', '.join(sorted(job.params)) or 'none'}"
            )
        self.changes.append(("run", job_id))
        queued = [r for r in self._queued.values() if r.job_id == job_id]
        if queued and not params:  # folded into the job's queued run
            return queued[-1]
        run = await self._put(
            RunRecord(
                run_id=self.journal.new_run_id(),
                job_id=job_id,
                trigger=TriggerKind.MANUAL,
                state=RunState.QUEUED,
                queued_at=datetime.now(UTC),
                params=dict(params),
            )
        )
        self._queued[run.run_id] = run
        self._dispatch()
        return run

    async def cancel_run(self, run_id: int) -> list[int]:
        await self.get_run(run_id)
        self.changes.append(("cancel", str(run_id)))
        if run_id in self._active:
            self._active[run_id].set()
            return [run_id]
        if run_id in self._queued:
            run = self._queued.pop(run_id)
            await self._put(
                run.evolve(
                    state=RunState.CANCELLED,
                    finished_at=datetime.now(UTC),
                    message="cancelled while queued",
                )
            )
            return [run_id]
        return []

    async def cancel_job(self, job_id: str) -> list[int]:
        self._job(job_id)
        ids = [rid for rid in self._active if self._active_job.get(job_id) == rid]
        ids += [rid for rid, r in self._queued.items() if r.job_id == job_id]
        for rid in ids:
            await self.cancel_run(rid)
        return ids

    async def get_run(self, run_id: int) -> RunRecord:
        run = await self.journal.get_run(run_id)
        if run is None:
            raise RunNotFound(str(run_id))
        return run

    async def latest_run(self, job_id: str) -> RunRecord | None:
        runs = await self.journal.list_runs(job_id=job_id, limit=1)
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
        if (
            job_id is not None
            and job_id not in self.jobs
            and not await self.journal.list_runs(job_id=job_id, limit=1)
        ):
            raise JobNotFound(job_id)
        return await self.journal.list_runs(
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
        return slots_between(self._job(job_id).definition().time_triggers, start, end, limit=limit)

    async def needs_graph(self) -> dict[str, dict[str, Any]]:
        return {
            j.job_id: {"needs": list(d.needs), "trigger_rule": str(d.trigger_rule)}
            for j in self.jobs.values()
            for d in (j.definition(),)
        }

    def log_path(self, run: RunRecord) -> Path:
        return Path(run.log_path) if run.log_path else self.state_dir / "logs" / f"{run.run_id}"

    async def pause(self, job_id: str) -> None:
        self._job(job_id)
        self.changes.append(("pause", job_id))
        self.paused.add(job_id)

    async def resume(self, job_id: str) -> None:
        self._job(job_id)
        self.changes.append(("resume", job_id))
        self.paused.discard(job_id)

    async def reload(self) -> dict[str, Any]:
        self.changes.append(("reload", ""))
        for job_id, job in self.staged.items():
            if job is not None:
                self.jobs[job_id] = job
            elif self.jobs.pop(job_id, None) is not None:
                for rid, run in list(self._queued.items()):
                    if run.job_id == job_id:
                        await self.cancel_run(rid)
        self.staged.clear()
        return await self.status()

    async def why(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        last = await self.latest_run(job_id)
        return explain(
            job.definition(),
            last=last,
            decisions=[],
            paused=job_id in self.paused,
            next_run=self._next_run(job),
            active=[rid for rid in self._active if self._active_job.get(job_id) == rid],
            queued=[rid for rid, r in self._queued.items() if r.job_id == job_id],
            now=datetime.now(UTC),
        )

    async def metrics_text(self) -> str:
        return self.render_metrics().decode()

    def render_metrics(self) -> bytes:
        return b"# HELP fake_up A fake metric.\n# TYPE fake_up gauge\nfake_up 1.0\n"

    def health(self) -> dict[str, bool]:
        return {"loop": True, "journal": True}

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[RunRecord]]:
        send, receive = anyio.create_memory_object_stream[RunRecord](64)
        self._subscribers.append(send)
        try:
            async with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()
