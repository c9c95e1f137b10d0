"""The due-slot planner: first-seen jobs, catch-up policies, start_deadline, the cap, and
merged triggers; plus next_fire_times / next_due."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._enums import Catchup, TriggerKind
from jobd.triggers import (
    MAX_CATCHUP_RUNS,
    CadenceTrigger,
    CronTrigger,
    DroppedSlots,
    DropReason,
    DuePlan,
    TimeTrigger,
    next_due,
    next_fire_times,
    plan_due,
)
from tests.triggers._oracle import iterate

QUARTER = CronTrigger.parse("*/15 * * * *", "UTC")
CURSOR = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)  # a slot, already taken
NOW = datetime(2025, 6, 1, 12, 7, tzinfo=UTC)
MISSED = [CURSOR + timedelta(minutes=15 * i) for i in range(1, 9)]  # 10:15 ... 12:00


def plan(
    catchup: Catchup = Catchup.LATEST,
    *,
    cursor: datetime | None = CURSOR,
    now: datetime = NOW,
    start_deadline: float | None = None,
    at_start: bool = True,
    triggers: TimeTrigger | Sequence[TimeTrigger] = QUARTER,
) -> DuePlan:
    return plan_due(
        triggers,
        cursor=cursor,
        now=now,
        catchup=catchup,
        start_deadline=start_deadline,
        at_start=at_start,
    )


def test_a_job_seen_for_the_first_time_starts_fresh() -> None:
    for at_start in (True, False):
        for catchup in Catchup:
            p = plan(catchup, cursor=None, at_start=at_start)
            assert p == DuePlan(
                runs=(),
                dropped=(),
                cursor=NOW,
                next_at=datetime(2025, 6, 1, 12, 15, tzinfo=UTC),
            )


def test_all_runs_each_missed_slot_as_catchup() -> None:
    p = plan(Catchup.ALL)
    assert [r.scheduled_for for r in p.runs] == MISSED
    assert {r.kind for r in p.runs} == {TriggerKind.CATCHUP}
    assert p.dropped == ()
    assert p.cursor == MISSED[-1]
    assert p.next_at == datetime(2025, 6, 1, 12, 15, tzinfo=UTC)


def test_latest_runs_only_the_newest() -> None:
    p = plan(Catchup.LATEST)
    assert [(r.scheduled_for, r.kind) for r in p.runs] == [(MISSED[-1], TriggerKind.CATCHUP)]
    assert p.dropped == (
        DroppedSlots(reason=DropReason.CATCHUP_LATEST, first=MISSED[0], last=MISSED[-2], count=7),
    )
    assert p.cursor == MISSED[-1]


def test_none_runs_none() -> None:
    p = plan(Catchup.NONE)
    assert p.runs == ()
    assert p.dropped == (
        DroppedSlots(reason=DropReason.CATCHUP_NONE, first=MISSED[0], last=MISSED[-1], count=8),
    )
    assert p.cursor == MISSED[-1]


def test_start_deadline_drops_older_slots_first() -> None:
    # now - 37 minutes = 11:30: the 11:30 slot is kept (not older), 11:15 is dropped
    p = plan(Catchup.ALL, start_deadline=37 * 60)
    assert [r.scheduled_for for r in p.runs] == MISSED[-3:]
    assert p.dropped == (
        DroppedSlots(reason=DropReason.START_DEADLINE, first=MISSED[0], last=MISSED[-4], count=5),
    )
    p = plan(Catchup.LATEST, start_deadline=37 * 60)
    assert [r.scheduled_for for r in p.runs] == [MISSED[-1]]
    assert [(d.reason, d.count) for d in p.dropped] == [
        (DropReason.START_DEADLINE, 5),
        (DropReason.CATCHUP_LATEST, 2),
    ]
    p = plan(Catchup.LATEST, start_deadline=60)  # every missed slot is too old
    assert p.runs == ()
    assert [(d.reason, d.count) for d in p.dropped] == [(DropReason.START_DEADLINE, 8)]
    assert p.cursor == MISSED[-1]


def test_while_running_due_slots_keep_their_own_kind() -> None:
    for catchup in Catchup:  # catchup is only about slots missed while down
        p = plan(catchup, at_start=False)
        assert [(r.scheduled_for, r.kind) for r in p.runs] == [
            (s, TriggerKind.CRON) for s in MISSED
        ]
        assert p.dropped == ()
    # the usual case: the timer woke at the slot
    p = plan(cursor=MISSED[-2], now=MISSED[-1], at_start=False)
    assert [(r.scheduled_for, r.kind) for r in p.runs] == [(MISSED[-1], TriggerKind.CRON)]
    assert p.cursor == MISSED[-1]
    every = CadenceTrigger.parse("job", "30s", "UTC")
    p = plan(cursor=NOW, now=NOW + timedelta(seconds=31), at_start=False, triggers=every)
    assert [r.kind for r in p.runs] == [TriggerKind.EVERY]
    # start_deadline applies while running too (a late wake-up, a suspended machine)
    p = plan(at_start=False, start_deadline=37 * 60)
    assert [r.scheduled_for for r in p.runs] == MISSED[-3:]
    assert p.dropped[0].reason is DropReason.START_DEADLINE


def test_nothing_due() -> None:
    p = plan(cursor=NOW, now=NOW)
    assert p == DuePlan(
        runs=(), dropped=(), cursor=NOW, next_at=datetime(2025, 6, 1, 12, 15, tzinfo=UTC)
    )
    later = NOW + timedelta(hours=1)  # the clock went back: wait for what follows the cursor
    p = plan(cursor=later, now=NOW)
    assert p.runs == () and p.cursor == later
    assert p.next_at == datetime(2025, 6, 1, 13, 15, tzinfo=UTC)
    p = plan(cursor=MISSED[-1], now=NOW)  # 12:00 taken, 12:07 now
    assert p.runs == () and p.dropped == () and p.cursor == MISSED[-1]


def test_all_is_capped_keeping_the_newest() -> None:
    cursor = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime(2025, 3, 1, 0, 7, tzinfo=UTC)
    p = plan(Catchup.ALL, cursor=cursor, now=now)
    assert len(p.runs) == MAX_CATCHUP_RUNS == 1000
    assert p.runs[-1].scheduled_for == datetime(2025, 3, 1, tzinfo=UTC)
    assert p.runs[0].scheduled_for == datetime(2025, 3, 1, tzinfo=UTC) - 999 * timedelta(minutes=15)
    total = 59 * 96  # Jan and Feb 2025, four an hour
    (dropped,) = p.dropped
    assert dropped.reason is DropReason.LIMIT
    assert dropped.count == total - 1000
    assert dropped.first == cursor + timedelta(minutes=15)
    assert dropped.last == p.runs[0].scheduled_for - timedelta(minutes=15)
    assert p.cursor == datetime(2025, 3, 1, tzinfo=UTC)


def test_years_down_with_a_per_second_trigger_stays_cheap() -> None:
    second = CronTrigger.parse("* * * * * *", "UTC")
    cursor = datetime(2015, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    p = plan(Catchup.LATEST, cursor=cursor, triggers=second)
    assert [r.scheduled_for for r in p.runs] == [NOW]
    (dropped,) = p.dropped
    assert dropped.count is None  # too many to count
    assert (dropped.first, dropped.last) == (
        cursor + timedelta(seconds=1),
        NOW - timedelta(seconds=1),
    )
    p = plan(Catchup.ALL, cursor=cursor, triggers=second, start_deadline=3600)
    assert len(p.runs) == 1000 and p.runs[-1].scheduled_for == NOW
    assert [(d.reason, d.count) for d in p.dropped] == [
        (DropReason.START_DEADLINE, None),
        (DropReason.LIMIT, 2601),  # 11:07:00-12:07:00
    ]
    assert time.perf_counter() - started < 5


def test_merged_triggers_run_each_instant_once() -> None:
    cron = CronTrigger.parse("0 * * * *", "UTC")
    every = CadenceTrigger.parse("job", "20m", "UTC")
    offset = every.offset
    p = plan(Catchup.ALL, triggers=[cron, every])
    want = sorted(
        {datetime(2025, 6, 1, h, 0, tzinfo=UTC) for h in (11, 12)}
        | {CURSOR + offset + timedelta(minutes=20 * i) for i in range(7)}
    )
    want = [w for w in want if CURSOR < w <= NOW]
    assert [r.scheduled_for for r in p.runs] == want
    same = CronTrigger.parse("0 * * * *", "Europe/Berlin")  # the same instants
    p = plan(triggers=[cron, same], at_start=False)
    assert [(r.scheduled_for, r.kind) for r in p.runs] == [
        (datetime(2025, 6, 1, 11, tzinfo=UTC), TriggerKind.CRON),
        (datetime(2025, 6, 1, 12, tzinfo=UTC), TriggerKind.CRON),
    ]
    p = plan(triggers=[every, cron], at_start=False, cursor=datetime(2025, 6, 1, tzinfo=UTC))
    assert len({r.scheduled_for for r in p.runs}) == len(p.runs)


def test_no_triggers_and_naive_times() -> None:
    p = plan(Catchup.ALL, triggers=[])
    assert p == DuePlan(runs=(), dropped=(), cursor=CURSOR, next_at=None)
    with pytest.raises(ValueError, match="aware"):
        plan(now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        plan(cursor=datetime(2025, 1, 1))


def test_next_fire_times_merged_and_unique() -> None:
    after = datetime(2025, 6, 1, 11, 50, tzinfo=UTC)
    a = CronTrigger.parse("*/15 * * * *", "UTC")
    b = CronTrigger.parse("0,5 * * * *", "UTC")
    assert next_fire_times([a, b], after) == [
        datetime(2025, 6, 1, 12, m, tzinfo=UTC) for m in (0, 5, 15, 30, 45)
    ]
    assert next_fire_times([a, b], after, 2) == [
        datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        datetime(2025, 6, 1, 12, 5, tzinfo=UTC),
    ]
    assert next_fire_times([a], after, 0) == []
    assert next_fire_times([], after) == []
    assert next_due([b, a], after) == datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert next_due([], after) is None
    never = CronTrigger.parse("0 0 29 2 *", "UTC")
    assert next_fire_times([never], datetime(9990, 1, 1, tzinfo=UTC), 5) == [
        datetime(y, 2, 29, tzinfo=UTC) for y in (9992, 9996)
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=0, max_value=3 * 24 * 60),  # cursor, minutes after the base
    st.integers(min_value=0, max_value=3 * 24 * 60),  # how long down, minutes
    st.sampled_from(list(Catchup)),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2 * 24 * 3600)),
    st.booleans(),
)
def test_every_slot_is_run_or_dropped_exactly_once(
    cursor_min: int, down_min: int, catchup: Catchup, deadline: int | None, at_start: bool
) -> None:
    trigger = CronTrigger.parse("*/7 9-17 * * *", "Europe/Berlin")
    base = datetime(2025, 3, 28, tzinfo=UTC)
    cursor = base + timedelta(minutes=cursor_min, seconds=13)
    now = cursor + timedelta(minutes=down_min)
    p = plan(
        catchup,
        cursor=cursor,
        now=now,
        start_deadline=deadline,
        at_start=at_start,
        triggers=trigger,
    )
    slots = list(iterate(trigger, cursor, now))
    runs = [r.scheduled_for for r in p.runs]
    assert runs == slots[len(slots) - len(runs) :]  # the newest, oldest first
    assert all(r.kind is (TriggerKind.CATCHUP if at_start else TriggerKind.CRON) for r in p.runs)
    covered = len(runs)
    previous = cursor
    for d in p.dropped:
        assert d.count is not None and d.count > 0
        assert previous < d.first <= d.last
        group = [s for s in slots if d.first <= s <= d.last]
        assert len(group) == d.count
        covered += d.count
        previous = d.last
    assert covered == len(slots)
    if runs:
        assert previous < runs[0]
    if deadline is not None:
        assert all(r >= now - timedelta(seconds=deadline) for r in runs)
    if at_start and catchup is Catchup.NONE:
        assert runs == []
    if at_start and catchup is Catchup.LATEST:
        assert len(runs) <= 1
    assert p.cursor == (slots[-1] if slots else cursor)
    assert p.next_at == trigger.next_after(now)
