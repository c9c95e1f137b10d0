"""A small ``DaemonAPI`` over ``MemoryJournal`` for protocol tests of the control server.

Runs are "executed" by a task that writes a job's scripted output to the run's log file and
finishes with its scripted state, publishing every state change as the real daemon does.
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
from jobd.journal.abc import RunRecord
from jobd.journal.memory import MemoryJournal


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
    triggers: list[str] = field(default_factory=list)


class FakeDaemon:
    """``DaemonAPI`` for tests. ``changes`` records every changing call that got through."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.journal = MemoryJournal()
        self.jobs: dict[str, FakeJob] = {}
        self.paused: set[str] = set()
        self.invalid_files: list[dict[str, Any]] = []
        self.changes: list[tuple[str, str]] = []
        self.fail_status: BaseException | None = None  # raised once by the next ``status``
        self.started_at = datetime.now(UTC)
        self._subscribers: list[MemoryObjectSendStream[RunRecord]] = []
        self._cancel: dict[int, anyio.Event] = {}
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
            except anyio.BrokenResourceError:
                self._subscribers.remove(s)
        return run

    async def _execute(self, run: RunRecord) -> None:
        job = self.jobs[run.job_id]
        path = self.log_path(run)
        await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        run = await self._put(run.evolve(state=RunState.RUNNING, started_at=datetime.now(UTC),
                                         pid=os.getpid(), log_path=str(path)))
        cancelled = self._cancel[run.run_id]
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
        await self._put(run.evolve(state=state, exit_code=code, finished_at=datetime.now(UTC)))
        del self._cancel[run.run_id]

    # --- DaemonAPI ------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        if self.fail_status is not None:
            exc, self.fail_status = self.fail_status, None
            raise exc
        active = await self.journal.unfinished_runs()
        return {
            "pid": os.getpid(), "version": "0.0-test",
            "started_at": self.started_at.isoformat(),
            "uptime_seconds": (datetime.now(UTC) - self.started_at).total_seconds(),
            "jobs_loaded": len(self.jobs),
            "runs_running": sum(r.state == RunState.RUNNING for r in active),
            "runs_queued": sum(r.state == RunState.QUEUED for r in active),
            "paused": sorted(self.paused), "invalid_files": self.invalid_files,
        }

    async def list_jobs(self) -> list[dict[str, Any]]:
        out = []
        for job_id in sorted(self.jobs):
            last = await self.journal.latest_finished(job_id)
            out.append({
                "job_id": job_id, "file": f"jobs.d/{job_id}.toml",
                "triggers": self.jobs[job_id].triggers,
                "next_run": "2030-01-01T00:00:00+00:00" if self.jobs[job_id].triggers else None,
                "last_run": None if last is None else {
                    "run_id": last.run_id, "state": str(last.state),
                    "finished_at": last.finished_at.isoformat() if last.finished_at else None},
                "paused": job_id in self.paused, "enabled": True,
            })
        return out

    async def show_job(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        times = ["2030-01-01T00:00:00+00:00", "2030-01-02T00:00:00+00:00"] if job.triggers \
            else []
        return {"job_id": job_id, "file": f"jobs.d/{job_id}.toml", "line": 1,
                "definition": {"command": ["true"], "params": job.params, "retries": 0},
                "next_fire_times": times, "paused": job_id in self.paused}

    async def run_job(self, job_id: str, params: Mapping[str, str]) -> RunRecord:
        job = self._job(job_id)
        unknown = sorted(set(params) - set(job.params))
        if unknown:
            raise ValueError(f"job '{job_id}' has no param {unknown[0]!r}")
        self.changes.append(("run", job_id))
        run = await self._put(RunRecord(
            run_id=self.journal.new_run_id(), job_id=job_id, trigger=TriggerKind.MANUAL,
            state=RunState.QUEUED, queued_at=datetime.now(UTC),
            params={**job.params, **params}))
        self._cancel[run.run_id] = anyio.Event()
        assert self._tg is not None
        self._tg.start_soon(self._execute, run)
        return run

    async def cancel_run(self, run_id: int) -> list[int]:
        await self.get_run(run_id)
        self.changes.append(("cancel", str(run_id)))
        if run_id in self._cancel:
            self._cancel[run_id].set()
            return [run_id]
        return []

    async def cancel_job(self, job_id: str) -> list[int]:
        self._job(job_id)
        ids = [r.run_id for r in await self.journal.unfinished_runs() if r.job_id == job_id]
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

    async def runs(self, job_id: str | None, *, limit: int, state: RunState | None,
                   trigger: TriggerKind | None = None, flow_id: str | None = None,
                   before: int | None = None,
                   queued_since: datetime | None = None) -> list[RunRecord]:
        if job_id is not None:
            self._job(job_id)
        return await self.journal.list_runs(
            job_id=job_id, states=frozenset({state}) if state else None, limit=limit,
            trigger=trigger, flow_id=flow_id, before=before, queued_since=queued_since)

    async def slots(self, job_id: str, start: datetime, end: datetime, *,
                    limit: int) -> list[datetime]:
        self._job(job_id)
        return []

    async def needs_graph(self) -> dict[str, dict[str, Any]]:
        return {}

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
        return await self.status()

    async def why(self, job_id: str) -> dict[str, Any]:
        self._job(job_id)
        last = await self.latest_run(job_id)
        lines = [f"{job_id} last ran as run {last.run_id}: {last.state}" if last
                 else f"{job_id} has not run yet", f"{job_id} runs only when asked"]
        return {"job_id": job_id, "lines": lines,
                "facts": {"last_run": last.run_id if last else None}}

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
