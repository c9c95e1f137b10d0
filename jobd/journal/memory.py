"""A journal in memory, for pure-logic tests: the SQLite journal's behaviour without a disk.

It keeps its data across ``close`` and a later ``open`` of the same instance, which stands in
for a daemon restart. Every write applies at once (there is nothing to group), and every call
passes a checkpoint so tests see the same interleavings as with a real store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import anyio.lowlevel

from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JournalError
from jobd.journal._codec import encode_cursors, from_micros, normalise_run, to_micros
from jobd.journal.abc import Journal, ManifestEntry, RunRecord

__all__ = ["MemoryJournal"]


class MemoryJournal(Journal):
    """``Journal`` in memory; the same contract suite runs against it and ``SQLiteJournal``."""

    def __init__(self) -> None:
        self._open = False
        self._runs: dict[int, RunRecord] = {}
        self._cursors: dict[str, datetime] = {}
        self._paused: set[str] = set()
        self._manifests: dict[str, dict[str, ManifestEntry]] = {}
        self._next_id = 1

    def __repr__(self) -> str:
        return f"MemoryJournal(runs={len(self._runs)}, open={self._open})"

    def _check_open(self) -> None:
        if not self._open:
            raise JournalError("the memory journal is not open")

    async def open(self) -> None:
        if self._open:
            raise JournalError("the memory journal is already open")
        await anyio.lowlevel.checkpoint()
        self._open = True

    async def close(self) -> None:
        self._open = False
        await anyio.lowlevel.checkpoint()

    def new_run_id(self) -> int:
        self._check_open()
        run_id = self._next_id
        self._next_id += 1
        return run_id

    async def put_runs(
        self,
        runs: list[RunRecord],
        *,
        cursors: Mapping[str, datetime] | None = None,
        durable: bool = True,
    ) -> None:
        self._check_open()
        # Validate everything first: a call applies whole or not at all.
        stored = [normalise_run(run) for run in runs]
        slots = {job_id: from_micros(us) for job_id, us in encode_cursors(cursors)}
        await anyio.lowlevel.checkpoint()
        for run in stored:
            self._runs[run.run_id] = run
            self._next_id = max(self._next_id, run.run_id + 1)
        self._cursors.update(slots)

    async def get_run(self, run_id: int) -> RunRecord | None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return self._runs.get(run_id)

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
        self._check_open()
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        await anyio.lowlevel.checkpoint()
        found: list[RunRecord] = []
        for run_id in sorted(self._runs, reverse=True):
            if limit is not None and len(found) >= limit:
                break
            run = self._runs[run_id]
            if (
                (job_id is None or run.job_id == job_id)
                and (states is None or run.state in states)
                and (flow_id is None or run.flow_id == flow_id)
                and (trigger is None or run.trigger == trigger)
                and (before is None or run_id < before)
                and (queued_since is None or run.queued_at >= queued_since)
            ):
                found.append(run)
        return found

    async def unfinished_runs(self) -> list[RunRecord]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return [self._runs[i] for i in sorted(self._runs) if not self._runs[i].state.finished]

    async def latest_finished(self, job_id: str) -> RunRecord | None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        for run_id in sorted(self._runs, reverse=True):
            run = self._runs[run_id]
            if run.job_id == job_id and run.state.finished:
                return run
        return None

    async def last_successes(self) -> dict[str, datetime]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        out: dict[str, datetime] = {}
        for run in self._runs.values():
            if run.state is RunState.SUCCEEDED and run.finished_at is not None:
                out[run.job_id] = max(run.finished_at, out.get(run.job_id, run.finished_at))
        return out

    async def cursors(self) -> dict[str, datetime]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return dict(self._cursors)

    async def paused(self) -> set[str]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return set(self._paused)

    async def set_paused(self, job_id: str, paused: bool) -> None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        if paused:
            self._paused.add(job_id)
        else:
            self._paused.discard(job_id)

    async def manifest(self, job_id: str) -> dict[str, ManifestEntry]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        return dict(self._manifests.get(job_id, {}))

    async def set_manifest(self, job_id: str, entries: Mapping[str, ManifestEntry]) -> None:
        self._check_open()
        # Keyed by the entry's own path, as the SQLite journal stores it.
        stored = {
            e.path: ManifestEntry(path=e.path, mtime_ns=e.mtime_ns, size=e.size)
            for e in entries.values()
        }
        await anyio.lowlevel.checkpoint()
        if stored:
            self._manifests[job_id] = stored
        else:
            self._manifests.pop(job_id, None)

    async def prune(self, *, before: datetime, keep_per_job: int) -> list[str]:
        self._check_open()
        if keep_per_job < 0:
            raise ValueError(f"keep_per_job must be >= 0, got {keep_per_job}")
        cutoff = to_micros(before, "before")
        await anyio.lowlevel.checkpoint()
        kept: dict[str, int] = {}
        victims: list[RunRecord] = []
        for run_id in sorted(self._runs, reverse=True):
            run = self._runs[run_id]
            if not run.state.finished:
                continue
            rank = kept[run.job_id] = kept.get(run.job_id, 0) + 1
            old = run.finished_at is not None and to_micros(run.finished_at, "") < cutoff
            if rank > keep_per_job or old:
                victims.append(run)
        for run in victims:
            del self._runs[run.run_id]
        return [
            run.log_path
            for run in sorted(victims, key=lambda r: r.run_id)
            if run.log_path is not None
        ]
