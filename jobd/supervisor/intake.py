"""The bus and its one reader: every trigger source posts here; intake admits each batch
(overlap policy, folding, matrix cells) and journals its outcome in one ledger write."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobd._crashpoints import crash_point
from jobd._enums import Catchup, RunState
from jobd._exceptions import JobNotFound, JournalError
from jobd.config.model import JobDef
from jobd.journal.abc import RunRecord
from jobd.matrix import expand
from jobd.metrics import Metrics
from jobd.supervisor.clock import Clock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.events import Reply, Trigger
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.policy import Admit, admit, fold_slots, may_fold
from jobd.supervisor.runs import RunTable

log = logging.getLogger("jobd")

BUS_SIZE = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeDeps:
    loaded: Loaded
    runs: RunTable
    ledger: Ledger
    clock: Clock
    decisions: Decisions
    wake_dispatch: Callable[[], None]
    cancel_active: Callable[[int, str], bool]
    metrics: Metrics


class Intake:
    def __init__(self, deps: IntakeDeps) -> None:
        self.deps = deps
        self._send: MemoryObjectSendStream[Trigger] | None = None
        self._receive: MemoryObjectReceiveStream[Trigger] | None = None

    @contextmanager
    def bus(self) -> Iterator[None]:
        """The bus, open for the daemon's life: posts are accepted inside, closed after."""
        send, receive = anyio.create_memory_object_stream[Trigger](BUS_SIZE)
        self._send, self._receive = send, receive
        with send, receive:
            yield

    def depth(self) -> int:
        """Triggers waiting on the bus (a metric)."""
        return self._send.statistics().current_buffer_used if self._send else 0

    async def post(self, trigger: Trigger) -> None:
        assert self._send is not None, "the bus is not open"
        self.deps.runs.pending += 1
        await self._send.send(trigger)

    async def post_all(self, triggers: Sequence[Trigger]) -> None:
        """Post ``triggers`` without yielding between them (unless the bus is full), so
        intake reads them as one batch: one commit, started together."""
        assert self._send is not None, "the bus is not open"
        for t in triggers:
            self.deps.runs.pending += 1
            try:
                self._send.send_nowait(t)
            except anyio.WouldBlock:
                await self._send.send(t)
        await anyio.lowlevel.checkpoint()

    async def submit(self, trigger: Trigger) -> RunRecord:
        """Post a trigger and wait until it is journaled; the run (new or folded into)."""
        reply = Reply()
        await self.post(Trigger(**{**_fields(trigger), "reply": reply}))
        return await reply.wait()

    async def serve(self) -> None:
        """Read the bus until closed, a batch at a time: what is there when it wakes."""
        receive, runs = self._receive, self.deps.runs
        assert receive is not None, "the bus is not open"
        async with receive:
            async for first in receive:
                batch = [first]
                while True:
                    try:
                        batch.append(receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                try:
                    await self.accept(batch)
                except JournalError as exc:  # not accepted: its callers hear why
                    log.error("%s: %d triggers not accepted", exc, len(batch))
                    for t in batch:
                        if t.reply is not None:
                            t.reply.resolve(None, exc)
                finally:
                    runs.pending -= len(batch)
                    runs.changed()

    async def accept(self, batch: Sequence[Trigger]) -> None:
        """Admit a batch of triggers and journal the outcome in one transaction."""
        d = self.deps
        queued_runs = d.runs.queued
        now = d.clock.now()
        writes: dict[int, RunRecord] = {}
        cursors: dict[str, datetime] = {}
        replies: list[tuple[Reply, int]] = []
        cancels: list[int] = []
        for t in batch:
            job = d.loaded.jobs.get(t.job_id)
            if job is None:
                if t.reply:
                    t.reply.resolve(None, JobNotFound(t.job_id))
                continue
            if t.cursor_key is not None and t.scheduled_for is not None:
                cursors[t.cursor_key] = max(
                    t.scheduled_for, cursors.get(t.cursor_key, t.scheduled_for)
                )
            running = d.runs.active_of(job.id)
            queued = d.runs.queued_of(job.id)
            # A run of a flow is that flow's member: never folded into another's run; with
            # catchup = "all" every time slot (missed or live) keeps a run of its own.
            decision = admit(
                job.overlap,
                running=running,
                queued=queued,
                coalescible=may_fold(
                    params=bool(t.params),
                    flow=t.flow_id is not None,
                    slot=t.scheduled_for is not None,
                    catchup_all=job.catchup is Catchup.ALL,
                ),
            )
            if decision.action is Admit.COALESCE and decision.into is not None:
                into_run = writes.get(decision.into) or queued_runs[decision.into]
                # A queued matrix group takes the trigger in every cell.
                targets = (
                    [decision.into]
                    if job.matrix is None
                    else [rid for rid in queued if queued_runs[rid].flow_id == into_run.flow_id]
                )
                for rid in targets:
                    into = writes.get(rid) or queued_runs[rid]
                    paths = tuple(dict.fromkeys((*into.changed_paths, *t.changed_paths)))
                    merged = into.evolve(
                        changed_paths=paths,
                        folded_slots=fold_slots(
                            into.folded_slots, into.scheduled_for, t.scheduled_for
                        ),
                    )
                    writes[rid] = queued_runs[rid] = merged
                cancels.extend(decision.cancel)
                if t.scheduled_for is not None:
                    d.metrics.slots_folded.labels(job=job.id).inc()
                d.decisions.note(
                    job.id,
                    f"{t.kind} trigger {_slot(t)}folded into queued run "
                    f"{decision.into} (overlap = {job.overlap})",
                )
                if t.reply:
                    replies.append((t.reply, decision.into))
                continue
            run_id = d.ledger.new_run_id()
            flow_id = t.flow_id
            if flow_id is None and (job.id in d.loaded.needed or job.matrix is not None):
                flow_id = str(run_id)  # a job that others need starts a flow
            run = RunRecord(
                run_id=run_id,
                job_id=job.id,
                trigger=t.kind,
                state=RunState.QUEUED,
                queued_at=now,
                scheduled_for=t.scheduled_for,
                flow_id=flow_id,
                params=dict(t.params),
                changed_paths=t.changed_paths,
            )
            if decision.action is Admit.SKIP:
                run = run.evolve(state=RunState.SKIPPED, finished_at=now, message=decision.reason)
                d.decisions.note(job.id, f"{t.kind} trigger {_slot(t)}skipped: {decision.reason}")
                cells = [run]
            else:
                cells = self._cells(job, run)
                for cell in cells:
                    d.runs.enqueue(cell)
                cancels.extend(decision.cancel)
                if decision.cancel:
                    d.decisions.note(job.id, decision.reason)
            for cell in cells:
                writes[cell.run_id] = cell
            if t.reply:
                replies.append((t.reply, run.run_id))
        for rid in cancels:
            d.cancel_active(rid, "replaced by a newer trigger (overlap = replace)")
        # Dispatch may start these runs while the batch commits: a run's own "running"
        # write is queued behind this one and awaited before its process starts, so both
        # are durable by then, usually in one shared commit (see the journal's writer).
        # The ledger publishes them in that order, each after its commit.
        d.wake_dispatch()
        if writes or cursors:
            crash_point("intake-before-commit")
            await d.ledger.write(
                list(writes.values()), cursors=cursors, after_commit="intake-committed"
            )
        for reply, rid in replies:  # accepted: journaled
            reply.resolve(writes[rid])

    def _cells(self, job: JobDef, run: RunRecord) -> list[RunRecord]:
        return matrix_cells(job, run, self.deps.ledger.new_run_id)


def matrix_cells(job: JobDef, run: RunRecord, new_run_id: Callable[[], int]) -> list[RunRecord]:
    """One run, or one run a matrix cell (the first keeps the trigger's run id). The
    cells share the run's flow id, which names their group."""
    if job.matrix is None:
        return [run]
    try:
        cells = expand(job.matrix)
    except ValueError as exc:
        return [run.evolve(state=RunState.FAILED, finished_at=run.queued_at, message=str(exc))]
    out = [run.evolve(matrix=cells[0])]
    out += [run.evolve(run_id=new_run_id(), matrix=c) for c in cells[1:]]
    return out


def _fields(t: Trigger) -> dict[str, Any]:
    return {f: getattr(t, f) for f in t.__dataclass_fields__}


def _slot(t: Trigger) -> str:
    return f"for {t.scheduled_for.isoformat()} " if t.scheduled_for else ""
