"""Pure decisions of the supervisor: what a trigger does to a job's runs, which queued runs
start now, how long a retry waits, what a process result means. No I/O, no clock, no loop."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from jobd._enums import Overlap, RunState
from jobd.config.model import RetryPolicy
from jobd.executors.abc import ProcessResult


class Admit(Enum):
    NEW = "new"  # journal a new queued run
    COALESCE = "coalesce"  # fold into the job's pending queued run
    SKIP = "skip"  # journal a skipped run: the job is running and overlap = skip
    REPLACE = "replace"  # cancel the running runs, then queue a new one


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    action: Admit
    into: int | None = None  # the queued run to coalesce into
    cancel: tuple[int, ...] = ()  # runs to cancel (replace)
    reason: str = ""


def admit(
    overlap: Overlap, *, running: Sequence[int], queued: Sequence[int], coalescible: bool = True
) -> Admission:
    """What a new trigger does, given the job's running and queued run ids (oldest first).

    ``coalescible`` is False for triggers that must keep their own run (a manual run with
    its own params)."""
    if overlap is Overlap.ALLOW:
        return Admission(action=Admit.NEW)
    if overlap is Overlap.SKIP and running:
        return Admission(
            action=Admit.SKIP, reason=f"overlap = skip: run {running[0]} was still running"
        )
    if overlap is Overlap.REPLACE and running:
        if queued and coalescible:
            return Admission(action=Admit.COALESCE, into=queued[-1], cancel=tuple(running))
        return Admission(
            action=Admit.REPLACE,
            cancel=tuple(running),
            reason=f"overlap = replace: cancelling run {running[0]}",
        )
    if queued and coalescible:
        return Admission(
            action=Admit.COALESCE,
            into=queued[-1],
            reason=f"overlap = {overlap}: folded into queued run {queued[-1]}",
        )
    return Admission(action=Admit.NEW)


def may_fold(*, params: bool, flow: bool, slot: bool, catchup_all: bool) -> bool:
    """Whether a trigger may fold into a queued run: not one with its own params, not a
    flow's member, and never a time slot of ``catchup = "all"`` (missed or live), which
    promises each slot a run of its own."""
    return not params and not flow and not (slot and catchup_all)


def fold_slots(
    folded: tuple[datetime, ...], scheduled_for: datetime | None, slot: datetime | None
) -> tuple[datetime, ...]:
    """The time slots a run (``scheduled_for``, ``folded``) covers once a trigger for
    ``slot`` folds into it: each slot once, in the order they came."""
    if slot is None or slot == scheduled_for or slot in folded:
        return folded
    return (*folded, slot)


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A queued run as the selector sees it."""

    run_id: int
    job_id: str
    pool: str | None
    priority: int
    exclusive: bool  # overlap != allow: never beside another run of the same job...
    group: str | None = None  # ...but beside the other cells of its matrix group
    group_limit: int | None = None  # the matrix's max_parallel


@dataclass(frozen=True, slots=True, kw_only=True)
class Busy:
    """A running run as the selector sees it."""

    run_id: int
    job_id: str
    pool: str | None
    group: str | None = None


def select(
    queued: Iterable[Candidate],
    running: Sequence[Busy],
    *,
    max_parallel: int,
    pools: Mapping[str, int],
) -> list[int]:
    """The queued runs to start now. ``queued`` comes in start order: higher priority first,
    then queue order; it is consumed only until the free slots are filled. A run blocked by
    its pool, its job or its matrix group does not block others behind it."""
    free = max_parallel - len(running)
    if free <= 0:
        return []
    pool_use = Counter(b.pool for b in running if b.pool is not None)
    group_use = Counter(b.group for b in running if b.group is not None)
    busy_jobs: dict[str, set[str | None]] = {}
    for b in running:
        busy_jobs.setdefault(b.job_id, set()).add(b.group)
    chosen: list[int] = []
    for c in queued:
        if (
            c.exclusive
            and c.job_id in busy_jobs
            and (c.group is None or busy_jobs[c.job_id] != {c.group})
        ):
            continue
        if c.pool is not None and pool_use[c.pool] >= pools.get(c.pool, max_parallel):
            continue
        if (
            c.group is not None
            and c.group_limit is not None
            and group_use[c.group] >= c.group_limit
        ):
            continue
        chosen.append(c.run_id)
        busy_jobs.setdefault(c.job_id, set()).add(c.group)
        if c.pool is not None:
            pool_use[c.pool] += 1
        if c.group is not None:
            group_use[c.group] += 1
        if len(chosen) == free:
            break
    return chosen


def retry_delay(policy: RetryPolicy, failed_attempt: int, rng: random.Random) -> float:
    """Seconds before the next attempt after attempt ``failed_attempt`` (1-based) failed.

    Exponential backoff capped at ``max_delay``, with "equal jitter": a uniform draw in the
    upper half, so retries of many jobs spread out but never come sooner than half the step."""
    base = min(policy.max_delay, policy.delay * policy.backoff ** (failed_attempt - 1))
    return base / 2 + rng.uniform(0, base / 2)


def outcome(result: ProcessResult) -> tuple[RunState, str | None]:
    """What a process result means for the run (or stage)."""
    if result.cancelled:
        return RunState.CANCELLED, "cancelled"
    if result.timed_out:
        return RunState.TIMED_OUT, "timed out"
    if result.error is not None:
        return RunState.FAILED, result.error
    if result.exit_code == 0:
        return RunState.SUCCEEDED, None
    if result.exit_code is None:
        return RunState.FAILED, f"killed by signal {result.signal}"
    return RunState.FAILED, f"exit code {result.exit_code}"


def retryable(state: RunState) -> bool:
    return state in (RunState.FAILED, RunState.TIMED_OUT)
