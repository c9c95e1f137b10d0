"""The metrics registry on its own: counts each run once, stalls, health; no loop needed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
from prometheus_client.parser import text_string_to_metric_families

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord
from jobd.metrics import LAG_WINDOW, UNRESPONSIVE_AFTER, Metrics

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Tick:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _values(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = m.render_metrics().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_a_run_with_retries_counts_once() -> None:
    m = Metrics()
    run = RunRecord(
        run_id=1, job_id="etl", trigger=TriggerKind.CRON, state=RunState.QUEUED, queued_at=T
    )
    m.observe_run(run)
    running = run.evolve(state=RunState.RUNNING, started_at=T)
    m.observe_run(running)
    m.observe_run(running.evolve(pid=42))  # the pid is known
    m.observe_run(running.evolve(attempt=2))  # a retry: the same run
    done = running.evolve(state=RunState.FAILED, finished_at=T + timedelta(seconds=90))
    m.observe_run(done)
    m.observe_run(done)  # a repeat is not a second end
    v = _values(m)
    assert v[("jobd_runs_started_total", (("job", "etl"),))] == 1
    assert v[("jobd_runs_finished_total", (("job", "etl"), ("state", "failed")))] == 1
    assert v[("jobd_run_duration_seconds_sum", (("job", "etl"),))] == 90
    assert v[("jobd_run_duration_seconds_bucket", (("job", "etl"), ("le", "60.0")))] == 0
    assert v[("jobd_run_duration_seconds_bucket", (("job", "etl"), ("le", "300.0")))] == 1


def test_two_daemons_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.slots_missed.labels(job="x", reason="catchup_none").inc(3)
    assert ("jobd_slots_missed_total", (("job", "x"), ("reason", "catchup_none"))) in _values(a)
    assert ("jobd_slots_missed_total", (("job", "x"), ("reason", "catchup_none"))) not in _values(b)


def test_stalls_and_health() -> None:
    clock = Tick()
    m = Metrics(monotonic=clock)
    assert m.healthy()
    m._tick(0.3)
    m._tick(0.01)
    assert _values(m)[("jobd_event_loop_stall_max_seconds", ())] == 0.3
    assert _values(m)[("jobd_event_loop_lag_seconds", ())] == 0.01
    clock.now += UNRESPONSIVE_AFTER + 1  # the monitor has not ticked: the loop is stuck
    assert not m.healthy() and m.health() == {"loop": False, "journal": True}
    m._tick(0.0)
    assert m.healthy()
    m.commit_observed(0.002, False)
    assert not m.healthy() and _values(m)[("jobd_journal_commit_errors_total", ())] == 1
    m.commit_observed(0.002, True)
    assert m.healthy()


def _block(seconds: float) -> None:
    time.sleep(seconds)  # holds the event loop, as a blocking call in jobd would


async def test_the_monitor_sees_a_real_stall() -> None:
    m = Metrics()
    async with anyio.create_task_group() as tg:
        tg.start_soon(m.loop_monitor, 0.01)
        await anyio.sleep(0.05)
        _block(0.2)
        await anyio.sleep(0.05)  # the overdue monitor wakes first, and measures the stall
        tg.cancel_scope.cancel()
    assert _values(m)[("jobd_event_loop_stall_max_seconds", ())] >= 0.15
    assert m.healthy()


async def test_while_the_turns_are_measured_the_monitor_does_not_wake() -> None:
    m = Metrics()
    ticks: list[float] = []
    tick = m._tick

    def counted(lag: float) -> None:
        ticks.append(lag)
        tick(lag)

    m._tick = counted  # type: ignore[method-assign]
    async with anyio.create_task_group() as tg:
        tg.start_soon(m.loop_monitor, 0.01)
        await anyio.sleep(0.1)
        assert len(ticks) >= 3  # unmeasured: it samples
        with m.stall_meter.measuring():
            await anyio.sleep(0.02)  # a tick already under way may still land
            during = len(ticks)
            await anyio.sleep(0.2)
            assert len(ticks) == during  # measured: an idle daemon is not woken
            assert m.healthy()
        await anyio.sleep(0.1)
        assert len(ticks) >= during + 3  # let go: it samples again
        tg.cancel_scope.cancel()


async def test_measured_turns_give_the_lag_and_the_health() -> None:
    clock = Tick()
    m = Metrics(monotonic=clock)
    with m.stall_meter.measuring():
        assert m.healthy() and _values(m)[("jobd_event_loop_lag_seconds", ())] == 0
        m.stall_meter.turn(0.02)  # a stall: the lag, still healthy
        assert m.healthy() and _values(m)[("jobd_event_loop_lag_seconds", ())] == 0.02
        m.stall_meter.turn(UNRESPONSIVE_AFTER + 1)  # the loop was stuck
        assert m.health() == {"loop": False, "journal": True}
        clock.now += UNRESPONSIVE_AFTER  # and has turned freely since
        assert m.healthy()
        assert _values(m)[("jobd_event_loop_lag_seconds", ())] == UNRESPONSIVE_AFTER + 1
        clock.now += LAG_WINDOW
        assert _values(m)[("jobd_event_loop_lag_seconds", ())] == 0
