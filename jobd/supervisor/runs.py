"""The runs the daemon holds in memory: queued (in queue order) and active, indexed by job.

The journal holds every run; these tables hold the ones in motion, for admission, selection
and the control API. ``changed()`` wakes whoever waits for something to move."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from jobd.config.model import JobDef
from jobd.journal.abc import RunRecord
from jobd.supervisor.runner import Runner


@dataclass(slots=True)
class Active:
    runner: Runner
    job: JobDef
    scope: anyio.CancelScope | None = None


def group(run: RunRecord) -> str | None:
    """The matrix group of a cell: its job in its flow (a matrix trigger always has one)."""
    return f"{run.job_id}@{run.flow_id}" if run.matrix is not None else None


class RunTable:
    def __init__(self) -> None:
        self.queued: dict[int, RunRecord] = {}  # in queue order
        self.active: dict[int, Active] = {}
        self._queued_by_job: dict[str, dict[int, None]] = {}
        self._active_by_job: dict[str, dict[int, None]] = {}
        self.pending = 0  # triggers on the bus, and finished runs whose flow is moving on
        self._change = anyio.Event()

    # --- queued ---------------------------------------------------------------------------

    def enqueue(self, run: RunRecord) -> None:
        self.queued[run.run_id] = run
        self._queued_by_job.setdefault(run.job_id, {})[run.run_id] = None

    def dequeue(self, run_id: int) -> RunRecord:
        run = self.queued.pop(run_id)
        ids = self._queued_by_job[run.job_id]
        del ids[run_id]
        if not ids:
            del self._queued_by_job[run.job_id]
        return run

    def queued_of(self, job_id: str) -> list[int]:
        """The job's queued run ids, oldest first."""
        return list(self._queued_by_job.get(job_id, ()))

    def queued_jobs(self) -> list[str]:
        return list(self._queued_by_job)

    # --- active ---------------------------------------------------------------------------

    def activate(self, active: Active) -> None:
        rid = active.runner.run.run_id
        self.active[rid] = active
        self._active_by_job.setdefault(active.job.id, {})[rid] = None

    def deactivate(self, run_id: int, job_id: str) -> None:
        self.active.pop(run_id, None)
        ids = self._active_by_job.get(job_id, {})
        ids.pop(run_id, None)
        if not ids:
            self._active_by_job.pop(job_id, None)

    def active_of(self, job_id: str) -> list[int]:
        """The job's running run ids, oldest first."""
        return list(self._active_by_job.get(job_id, ()))

    def job_idle(self, job_id: str) -> bool:
        """No run of the job is running or queued."""
        return job_id not in self._active_by_job and job_id not in self._queued_by_job

    # --- waiting --------------------------------------------------------------------------

    def changed(self) -> None:
        """Something moved: wake waiters of ``wait_change`` and the idle check."""
        self._change.set()
        self._change = anyio.Event()

    async def wait_change(self) -> None:
        await self._change.wait()

    def is_idle(self) -> bool:
        return not self.active and not self.queued and self.pending == 0

    async def wait_idle(self) -> None:
        """Return once nothing is running, queued or on the bus (for tests and tools)."""
        while not self.is_idle():
            await self.wait_change()
