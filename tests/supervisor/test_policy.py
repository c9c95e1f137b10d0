"""The supervisor's pure decisions: overlap admission, slot selection, retry delays."""

from __future__ import annotations

import random

import pytest

from jobd._enums import Overlap, RunState
from jobd.config.model import RetryPolicy
from jobd.executors.abc import ProcessResult
from jobd.supervisor.policy import (
    Admit,
    Busy,
    Candidate,
    admit,
    outcome,
    retry_delay,
    retryable,
    select,
)


@pytest.mark.parametrize(
    ("overlap", "running", "queued", "action", "into", "cancel"),
    [
        (Overlap.QUEUE, [], [], Admit.NEW, None, ()),
        (Overlap.QUEUE, [1], [], Admit.NEW, None, ()),
        (Overlap.QUEUE, [1], [2], Admit.COALESCE, 2, ()),
        (Overlap.QUEUE, [], [2], Admit.COALESCE, 2, ()),
        (Overlap.SKIP, [], [], Admit.NEW, None, ()),
        (Overlap.SKIP, [1], [], Admit.SKIP, None, ()),
        (Overlap.REPLACE, [1], [], Admit.REPLACE, None, (1,)),
        (Overlap.REPLACE, [1], [2], Admit.COALESCE, 2, (1,)),
        (Overlap.REPLACE, [], [], Admit.NEW, None, ()),
        (Overlap.ALLOW, [1, 3], [2], Admit.NEW, None, ()),
        # skip only skips while a run is *running*: a queued one takes the trigger
        (Overlap.SKIP, [], [2], Admit.COALESCE, 2, ()),
        (Overlap.SKIP, [1], [2], Admit.SKIP, None, ()),
        # folding goes into the newest queued run (the one that starts last)
        (Overlap.QUEUE, [1], [2, 5], Admit.COALESCE, 5, ()),
        (Overlap.QUEUE, [], [2, 5], Admit.COALESCE, 5, ()),
        (Overlap.REPLACE, [1, 3], [2, 5], Admit.COALESCE, 5, (1, 3)),
        (Overlap.REPLACE, [1, 3], [], Admit.REPLACE, None, (1, 3)),
    ],
)
def test_admit(
    overlap: Overlap,
    running: list[int],
    queued: list[int],
    action: Admit,
    into: int | None,
    cancel: tuple[int, ...],
) -> None:
    a = admit(overlap, running=running, queued=queued)
    assert (a.action, a.into, a.cancel) == (action, into, cancel)


def test_admit_reasons() -> None:
    assert (
        admit(Overlap.SKIP, running=[4, 6], queued=[]).reason
        == "overlap = skip: run 4 was still running"
    )
    assert (
        admit(Overlap.REPLACE, running=[4], queued=[]).reason
        == "overlap = replace: cancelling run 4"
    )
    assert (
        admit(Overlap.QUEUE, running=[], queued=[2, 5]).reason
        == "overlap = queue: folded into queued run 5"
    )
    assert admit(Overlap.ALLOW, running=[1], queued=[2]).reason == ""


def test_manual_run_with_params_is_never_folded() -> None:
    a = admit(Overlap.QUEUE, running=[1], queued=[2], coalescible=False)
    assert a.action is Admit.NEW


def cand(
    rid: int, job: str, *, pool: str | None = None, prio: int = 0, exclusive: bool = True
) -> Candidate:
    return Candidate(run_id=rid, job_id=job, pool=pool, priority=prio, exclusive=exclusive)


def test_select_respects_max_parallel_and_order() -> None:
    queued = [cand(i, f"j{i}") for i in range(20)]
    assert select(queued, [], max_parallel=2, pools={}) == [0, 1]
    busy = [Busy(run_id=0, job_id="j0", pool=None)]
    assert select(queued[1:], busy, max_parallel=2, pools={}) == [1]
    assert select(queued, busy * 2, max_parallel=2, pools={}) == []


def test_select_priority_first_then_queue_order() -> None:
    queued = [cand(1, "a"), cand(2, "b", prio=5), cand(3, "c"), cand(4, "d", prio=5)]
    assert select(sorted(queued, key=lambda c: -c.priority), [], max_parallel=3, pools={}) == [
        2,
        4,
        1,
    ]


def test_pool_blocked_run_does_not_block_others() -> None:
    queued = [cand(1, "a", pool="db"), cand(2, "b", pool="db"), cand(3, "c")]
    assert select(queued, [], max_parallel=8, pools={"db": 1}) == [1, 3]
    busy = [Busy(run_id=9, job_id="z", pool="db")]
    assert select(queued, busy, max_parallel=8, pools={"db": 1}) == [3]


def test_exclusive_job_never_runs_twice_at_once() -> None:
    queued = [
        cand(1, "a"),
        cand(2, "a"),
        cand(3, "b", exclusive=False),
        cand(4, "b", exclusive=False),
    ]
    assert select(queued, [], max_parallel=8, pools={}) == [1, 3, 4]
    busy = [Busy(run_id=0, job_id="a", pool=None)]
    assert select(queued, busy, max_parallel=8, pools={}) == [3, 4]


def test_matrix_group_limit() -> None:
    queued = [
        Candidate(
            run_id=i, job_id="m", pool=None, priority=0, exclusive=False, group="m#1", group_limit=2
        )
        for i in range(5)
    ]
    assert select(queued, [], max_parallel=8, pools={}) == [0, 1]


def test_retry_delay_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(7)
    p = RetryPolicy(retries=10, delay=1.0, backoff=2.0, max_delay=10.0)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        draws = [retry_delay(p, attempt, rng) for _ in range(200)]
        assert all(base / 2 <= d <= base for d in draws)
        assert max(draws) - min(draws) > base / 4  # jitter actually spreads


@pytest.mark.parametrize(
    ("result", "state"),
    [
        (ProcessResult(exit_code=0), RunState.SUCCEEDED),
        (ProcessResult(exit_code=3), RunState.FAILED),
        (ProcessResult(exit_code=None, signal=9), RunState.FAILED),
        (ProcessResult(exit_code=None, timed_out=True), RunState.TIMED_OUT),
        (ProcessResult(exit_code=None, cancelled=True), RunState.CANCELLED),
        (ProcessResult(exit_code=None, error="command not found: 'x'"), RunState.FAILED),
    ],
)
def test_outcome(result: ProcessResult, state: RunState) -> None:
    assert outcome(result)[0] is state


def test_outcome_messages() -> None:
    assert [
        outcome(r)[1]
        for r in (
            ProcessResult(exit_code=0),
            ProcessResult(exit_code=3),
            ProcessResult(exit_code=None, signal=9),
            ProcessResult(exit_code=None, timed_out=True),
            ProcessResult(exit_code=None, cancelled=True),
            ProcessResult(exit_code=None, error="command not found: 'x'"),
        )
    ] == [
        None,
        "exit code 3",
        "killed by signal 9",
        "timed out",
        "cancelled",
        "command not found: 'x'",
    ]


def test_retryable_states() -> None:
    assert {s for s in RunState if retryable(s)} == {RunState.FAILED, RunState.TIMED_OUT}


class _Extremes(random.Random):
    """Draws the top (or bottom) of every interval: the jitter's bounds, exactly."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


def test_retry_delay_bounds_are_exact() -> None:
    p = RetryPolicy(retries=10, delay=1.0, backoff=2.0, max_delay=10.0)
    assert [retry_delay(p, n, _Extremes(top=True)) for n in (1, 2, 3, 4, 5)] == [
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
    ]
    assert [retry_delay(p, n, _Extremes(top=False)) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        5.0,
    ]


def test_a_pool_counts_each_run_it_starts() -> None:
    queued = [cand(i, f"j{i}", pool="db") for i in range(4)]
    assert select(queued, [], max_parallel=8, pools={"db": 2}) == [0, 1]
    busy = [Busy(run_id=9, job_id="z", pool="db")]
    assert select(queued, busy, max_parallel=8, pools={"db": 2}) == [0]


def test_a_pool_without_its_own_limit_shares_max_parallel() -> None:
    queued = [cand(i, f"j{i}", pool="undeclared") for i in range(3)]
    assert select(queued, [], max_parallel=2, pools={}) == [0, 1]


def test_a_running_cell_counts_against_its_group_and_blocks_no_one_else() -> None:
    cells = [
        Candidate(
            run_id=i, job_id="m", pool=None, priority=0, exclusive=False, group="m@1", group_limit=2
        )
        for i in (1, 2)
    ]
    other = cand(5, "other")
    busy = [
        Busy(run_id=0, job_id="m", pool=None, group="m@1"),
        Busy(run_id=7, job_id="x", pool=None),
    ]
    assert select([*cells, other], busy, max_parallel=8, pools={}) == [1, 5]


def test_matrix_cells_share_an_exclusive_job_but_other_triggers_wait() -> None:
    cells = [
        Candidate(
            run_id=i,
            job_id="m",
            pool=None,
            priority=0,
            exclusive=True,
            group="m@1",
            group_limit=None,
        )
        for i in range(3)
    ]
    later = Candidate(
        run_id=9, job_id="m", pool=None, priority=0, exclusive=True, group="m@9", group_limit=None
    )
    assert select([*cells, later], [], max_parallel=8, pools={}) == [0, 1, 2]
    busy = [Busy(run_id=0, job_id="m", pool=None, group="m@1")]
    assert select([*cells[1:], later], busy, max_parallel=8, pools={}) == [1, 2]
