"""The only writer of run records: journal first, then publish.

Every state a run goes through (queued, running, its pid, finished, skipped, cancelled),
every cursor and every pruning pass is written here. A record is published to subscribers
(``jobctl follow``, the control API) only once its write has returned from the journal, and
records are published in the order they were written, even when several writes share one
commit and their writers resume in another order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobd._crashpoints import crash_point
from jobd.journal.abc import Journal, RunRecord

log = logging.getLogger("jobd")

SUBSCRIBER_BUFFER = 1024


class Ledger:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._subscribers: list[MemoryObjectSendStream[RunRecord]] = []
        self._issued = 0  # tickets: the order writes were handed to the journal
        self._head = 0  # the next ticket to publish
        self._done: dict[int, Sequence[RunRecord]] = {}
        # Told of every published record before the subscribers (metrics, stale checks).
        self.observers: list[Callable[[RunRecord], None]] = []

    def new_run_id(self) -> int:
        return self.journal.new_run_id()

    async def write(
        self,
        runs: Sequence[RunRecord] = (),
        *,
        cursors: Mapping[str, datetime] | None = None,
        durable: bool = True,
        after_commit: str | None = None,
    ) -> None:
        """Journal ``runs`` (and ``cursors``) in one transaction, then publish the runs.
        ``after_commit``: the crash point (tests only) passed between the two."""
        ticket = self._issued
        self._issued += 1
        committed = False
        try:
            await self.journal.put_runs(list(runs), cursors=cursors, durable=durable)
            committed = True
            if after_commit is not None:
                crash_point(after_commit)
        finally:
            self._done[ticket] = runs if committed else ()
            while self._head in self._done:  # publish in write order, never ahead of a commit
                for run in self._done.pop(self._head):
                    self._publish(run)
                self._head += 1

    def _publish(self, run: RunRecord) -> None:
        for observe in self.observers:
            observe(run)
        for s in list(self._subscribers):
            try:
                s.send_nowait(run)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(s)  # too slow to keep up: dropped, never the daemon
                s.close()

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

    async def prune(self, *, now: datetime, retention_days: float, retention_runs: int) -> int:
        """Drop finished runs beyond ``retention_runs`` per job or older than
        ``retention_days``, with their logs; returns how many."""
        before = now - timedelta(days=retention_days)
        logs = await self.journal.prune(before=before, keep_per_job=max(1, retention_runs))
        for path in logs:
            await anyio.Path(path).unlink(missing_ok=True)
        if logs:
            log.info("retention: pruned %d finished runs and their logs", len(logs))
        return len(logs)
