"""What a journal must do. The SQLite journal is the real one; the memory journal runs the
same contract suite (tests/journal/test_contract.py) and serves pure-logic tests."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

from jobd._enums import RunState, TriggerKind


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run as journaled. All datetimes are aware UTC."""

    run_id: int
    job_id: str
    trigger: TriggerKind
    state: RunState
    queued_at: datetime
    attempt: int = 1
    scheduled_for: datetime | None = None  # the time slot, for time triggers and catch-up
    flow_id: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    changed_paths: tuple[str, ...] = ()
    matrix: Mapping[str, Any] | None = None  # the cell, for one cell of a matrix job
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    pid: int | None = None
    pid_start: int | None = None  # the process's start time in clock ticks (/proc/PID/stat)
    outputs: Mapping[str, str] = field(default_factory=dict)
    log_path: str | None = None
    message: str | None = None  # why it ended so, or why it was skipped
    folded_slots: tuple[datetime, ...] = ()  # time slots covered by this run (folded into it)

    def evolve(self, **changes: Any) -> RunRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The run as jobctl's ``--json`` and the socket protocol show it."""

        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d is not None else None

        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "flow_id": self.flow_id,
            "trigger": str(self.trigger),
            "scheduled_for": iso(self.scheduled_for),
            "attempt": self.attempt,
            "state": str(self.state),
            "exit_code": self.exit_code,
            "queued_at": iso(self.queued_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "params": dict(self.params),
            "changed_paths": list(self.changed_paths),
            "matrix": dict(self.matrix) if self.matrix is not None else None,
            "outputs": dict(self.outputs),
            "pid": self.pid,
            "message": self.message,
            "folded_slots": [d.isoformat() for d in self.folded_slots],
            "run_key": run_key(self),
        }


def run_key(run: RunRecord) -> str:
    """``JOBD_RUN_KEY``: the same for every attempt and recovery of one slot or trigger, and
    different between slots and matrix cells (docs/journal.md). The trigger is named by its
    time slot, else by its flow, else by the run id (which recovery keeps)."""
    if run.scheduled_for is not None:
        origin = "slot:" + run.scheduled_for.astimezone(UTC).isoformat()
    elif run.flow_id is not None:
        origin = f"flow:{run.flow_id}"
    else:
        origin = f"run:{run.run_id}"
    cell = (
        json.dumps(dict(run.matrix), sort_keys=True, separators=(",", ":"), default=str)
        if run.matrix is not None
        else ""
    )
    text = "\0".join((run.job_id, origin, cell))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    """What the daemon last saw of one watched file."""

    path: str
    mtime_ns: int
    size: int


class Journal(ABC):
    """The durable record of runs, time-slot cursors, paused jobs and watch manifests.

    Writes are durable (power loss included for the SQLite journal) when the awaited call
    returns. Implementations group concurrent writes into one transaction, so many callers
    awaiting at once share a commit.
    """

    @abstractmethod
    async def open(self) -> None:
        """Create or open the store; raise ``JournalError`` when it cannot be used."""

    @abstractmethod
    async def close(self) -> None:
        """Flush pending writes and release the store."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def fault(self) -> str | None:
        """Why writes cannot commit right now (disk full, read-only...), or None. While there
        is one, writes wait and are retried; ``stop_retrying`` makes them fail instead."""
        return None

    def stop_retrying(self) -> None:  # noqa: B027 (a journal without faults has nothing to do)
        """Fail writes held back by a fault instead of retrying them (at shutdown)."""

    @abstractmethod
    def new_run_id(self) -> int:
        """A fresh run id, never handed out before by this journal (no I/O)."""

    @abstractmethod
    async def put_runs(
        self,
        runs: list[RunRecord],
        *,
        cursors: Mapping[str, datetime] | None = None,
        durable: bool = True,
    ) -> None:
        """Insert or replace these runs (by ``run_id``) and, in the same transaction, set
        time-slot cursors (job id -> last slot taken). Returns once durable; with
        ``durable=False`` it may return before the commit (used for mere progress, like pids)."""

    @abstractmethod
    async def get_run(self, run_id: int) -> RunRecord | None:
        """The run, or None."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        job_id: str | None = None,
        states: frozenset[RunState] | None = None,
        flow_id: str | None = None,
        limit: int | None = 50,
        trigger: TriggerKind | None = None,
        before: int | None = None,
        queued_since: datetime | None = None,
    ) -> list[RunRecord]:
        """Runs newest first (by run id), filtered; ``before`` keeps run ids below it (keyset
        paging: pass the last id of a page to get the next), ``queued_since`` runs queued at
        or after it."""

    @abstractmethod
    async def unfinished_runs(self) -> list[RunRecord]:
        """Every run journaled as queued or running, oldest first."""

    @abstractmethod
    async def latest_finished(self, job_id: str) -> RunRecord | None:
        """The job's newest run in a finished state."""

    async def latest_finished_of(self, job_ids: Iterable[str]) -> dict[str, RunRecord]:
        """Each job's newest finished run, for the jobs that have one (one read where the
        backend can)."""
        out = {}
        for job_id in job_ids:
            run = await self.latest_finished(job_id)
            if run is not None:
                out[job_id] = run
        return out

    @abstractmethod
    async def last_successes(self) -> dict[str, datetime]:
        """Job id -> when its newest ``succeeded`` run finished, for every job that has one."""

    @abstractmethod
    async def cursors(self) -> dict[str, datetime]:
        """Job id -> the last time slot taken for it."""

    @abstractmethod
    async def paused(self) -> set[str]:
        """Ids of paused jobs."""

    @abstractmethod
    async def set_paused(self, job_id: str, paused: bool) -> None:
        """Pause or resume a job, durably."""

    @abstractmethod
    async def manifest(self, job_id: str) -> dict[str, ManifestEntry]:
        """What the daemon last saw in the job's watched paths, by path."""

    @abstractmethod
    async def set_manifest(self, job_id: str, entries: Mapping[str, ManifestEntry]) -> None:
        """Replace the job's manifest."""

    @abstractmethod
    async def prune(self, *, before: datetime, keep_per_job: int) -> list[str]:
        """Delete finished runs finished before ``before`` or beyond the newest
        ``keep_per_job`` of their job; return the log paths of the runs deleted."""
