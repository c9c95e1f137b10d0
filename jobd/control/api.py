"""What the control server needs from the daemon. The supervisor implements it; the server
(``jobd.control.server``) only translates JSON-RPC to these calls and back."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from anyio.streams.memory import MemoryObjectReceiveStream

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord


class DaemonAPI(Protocol):
    """Every call may raise ``JobNotFound`` / ``RunNotFound`` (-> JSON-RPC error, jobctl exit 2)
    or ``ValueError`` for a request the daemon refuses (unknown param, bad state name)."""

    async def status(self) -> dict[str, Any]:
        """``pid``, ``version``, ``started_at`` (ISO), ``uptime_seconds``, ``jobs_loaded``,
        ``runs_running``, ``runs_queued``, ``paused`` (ids), ``invalid_files``:
        ``[{"file": str, "errors": [str, ...]}]``."""
        ...

    async def list_jobs(self) -> list[dict[str, Any]]:
        """One dict a job, sorted by id: ``job_id``, ``file``, ``triggers`` (human texts),
        ``next_run`` (ISO or None), ``last_run`` (``{"run_id", "state", "finished_at"}`` or
        None), ``paused``, ``enabled``."""
        ...

    async def show_job(self, job_id: str) -> dict[str, Any]:
        """``job_id``, ``file``, ``line``, ``definition`` (the resolved keys, JSON-able),
        ``next_fire_times`` (the next 5, ISO), ``paused``."""
        ...

    async def run_job(self, job_id: str, params: Mapping[str, str]) -> RunRecord:
        """Queue a manual run now; the returned record is already journaled."""
        ...

    async def cancel_run(self, run_id: int) -> list[int]:
        """Cancel one active run; returns the ids cancelled (empty if it had finished)."""
        ...

    async def cancel_job(self, job_id: str) -> list[int]:
        """Cancel every queued or running run of the job; returns their ids."""
        ...

    async def get_run(self, run_id: int) -> RunRecord:
        """The run; raises ``RunNotFound``."""
        ...

    async def latest_run(self, job_id: str) -> RunRecord | None:
        """The job's newest run, any state."""
        ...

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
        """Run history, newest first; ``before`` pages on (run ids below it)."""
        ...

    async def slots(
        self, job_id: str, start: datetime, end: datetime, *, limit: int
    ) -> list[datetime]:
        """The time slots of the job's time triggers in ``[start, end)``, at most ``limit``
        (the newest kept): what the timeline marks as missed when no run took one."""
        ...

    async def needs_graph(self) -> dict[str, dict[str, Any]]:
        """Every job's ``needs`` (ids) and ``trigger_rule``, by job id."""
        ...

    def log_path(self, run: RunRecord) -> Path:
        """Where the run's output is (it may not exist yet)."""
        ...

    async def pause(self, job_id: str) -> None: ...

    async def resume(self, job_id: str) -> None: ...

    async def reload(self) -> dict[str, Any]:
        """Re-read the config and job files now; returns what ``status`` returns."""
        ...

    async def why(self, job_id: str) -> dict[str, Any]:
        """``job_id``, ``lines`` (human sentences: why it did or did not run last time, and when
        it runs next) and ``facts`` (the same as data)."""
        ...

    async def metrics_text(self) -> str:
        """The daemon's metrics in Prometheus text format."""
        ...

    def render_metrics(self) -> bytes:
        """The same text as bytes (what ``/metrics`` serves)."""
        ...

    def health(self) -> dict[str, bool]:
        """``{"loop": ..., "journal": ...}``: the loop is responsive, the journal writable
        (``/healthz`` is 200 when both are true)."""
        ...

    def subscribe(self) -> AbstractAsyncContextManager[MemoryObjectReceiveStream[RunRecord]]:
        """A stream of every run as it changes state (queued, running, finished), from now on.
        A subscriber too slow to keep up is dropped (its stream closes), never the daemon."""
        ...
