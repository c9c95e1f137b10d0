"""Recovery at start: the runs an earlier life of the daemon left unfinished.

``plan_recovery`` decides from the journal alone (pure): a ``running`` run has its leftovers
stopped and is re-queued as ``recovery`` with its next attempt; a ``queued`` one is queued
again; either is cancelled when its job is gone. ``recover`` carries the plan out: leftovers
are stopped before any re-run can start."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from jobd._enums import ExecutorKind, RunState, TriggerKind
from jobd.config.model import JobDef
from jobd.executors.abc import Executor, RunRef
from jobd.journal.abc import Journal, RunRecord
from jobd.supervisor.clock import Clock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.runs import RunTable

log = logging.getLogger("jobd")

GONE_JOB_GRACE = 10.0  # kill grace for the leftovers of a job no longer defined


@dataclass(frozen=True, slots=True, kw_only=True)
class Leftover:
    ref: RunRef
    grace: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryPlan:
    stop: tuple[Leftover, ...] = ()  # first: what may be left of interrupted runs
    writes: tuple[RunRecord, ...] = ()  # re-queued or cancelled runs, in one write
    queue: tuple[RunRecord, ...] = ()  # runs for the queue, in their order
    adopt: tuple[int, ...] = ()  # remote runs to attach to (not re-run) when they start
    notes: tuple[tuple[str, str], ...] = ()  # (job id, decision)


def plan_recovery(
    unfinished: Sequence[RunRecord], jobs: Mapping[str, JobDef], *, now: datetime, instance: str
) -> RecoveryPlan:
    stop: list[Leftover] = []
    writes: list[RunRecord] = []
    queue: list[RunRecord] = []
    notes: list[tuple[str, str]] = []
    adopt: list[int] = []
    for run in unfinished:
        job = jobs.get(run.job_id)
        if (
            run.state is RunState.RUNNING
            and job is not None
            and job.executor is ExecutorKind.CELERY
        ):
            # on a worker: adopted if it lives or has ended, else fenced and re-run
            run = run.evolve(
                state=RunState.QUEUED,
                pid=None,
                pid_start=None,
                message=f"the daemon stopped during attempt {run.attempt} on a worker: adopting it",
            )
            writes.append(run)
            adopt.append(run.run_id)
            notes.append(
                (
                    run.job_id,
                    f"run {run.run_id} re-queued to adopt attempt {run.attempt} from its worker",
                )
            )
        elif run.state is RunState.RUNNING:
            stop.append(
                Leftover(
                    ref=RunRef(
                        run_id=run.run_id,
                        instance=instance,
                        pid=run.pid,
                        pid_start=run.pid_start,
                        action=job.action if job else None,
                    ),
                    grace=job.kill_grace if job else GONE_JOB_GRACE,
                )
            )
            if job is None:
                writes.append(
                    run.evolve(
                        state=RunState.CANCELLED,
                        finished_at=now,
                        message="interrupted, and its job is gone",
                    )
                )
                continue
            run = run.evolve(
                state=RunState.QUEUED,
                trigger=TriggerKind.RECOVERY,
                attempt=run.attempt + 1,
                pid=None,
                pid_start=None,
                message=f"re-run: the daemon stopped during attempt {run.attempt}",
            )
            writes.append(run)
            notes.append(
                (run.job_id, f"run {run.run_id} re-queued as recovery (attempt {run.attempt})")
            )
        elif job is None:
            writes.append(
                run.evolve(
                    state=RunState.CANCELLED, finished_at=now, message="queued, but its job is gone"
                )
            )
            continue
        queue.append(run)
    return RecoveryPlan(
        stop=tuple(stop),
        writes=tuple(writes),
        queue=tuple(queue),
        notes=tuple(notes),
        adopt=tuple(adopt),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryDeps:
    journal: Journal  # read: the unfinished runs
    jobs: Mapping[str, JobDef]
    runs: RunTable
    ledger: Ledger
    executor: Executor
    clock: Clock
    decisions: Decisions
    instance: str


async def recover(deps: RecoveryDeps) -> frozenset[int]:
    """Stop what is left of interrupted runs, journal the plan, queue the re-runs; returns
    the remote runs to adopt."""
    plan = plan_recovery(
        await deps.journal.unfinished_runs(),
        deps.jobs,
        now=deps.clock.now(),
        instance=deps.instance,
    )
    for left in plan.stop:
        ids = await deps.executor.find_leftovers(left.ref)
        if ids:
            log.warning(
                "run %s: stopping %d leftovers %s", left.ref.run_id, len(ids), ", ".join(ids)
            )
            await deps.executor.stop_leftovers(ids, left.grace)
    for job_id, text in plan.notes:
        deps.decisions.note(job_id, text)
    for run in plan.queue:
        deps.runs.enqueue(run)
    if plan.writes:
        await deps.ledger.write(plan.writes)
    if deps.runs.queued:
        log.info("recovery: %d runs queued from before", len(deps.runs.queued))
    return frozenset(plan.adopt)
