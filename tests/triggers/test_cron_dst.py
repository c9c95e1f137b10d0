"""Cron over years of slots, in UTC and in zones with DST changes (including Lord Howe's
30-minute one), against an independent oracle."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest

from jobd.triggers.cron import CronTrigger
from tests.triggers._oracle import cron_oracle, instants_of, iterate, transitions

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)  # three years


@cache
def _transitions(zone: str) -> tuple[datetime, ...]:
    return tuple(transitions(zone, START, END))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(
    "expression",
    [
        "30 2 * * *",  # inside Berlin's and New York's gap; Lord Howe: just after its gap
        "15 2 * * *",  # inside every gap here
        "30 1 * * *",  # New York's fold; Lord Howe's fold (01:30-02:00) too
        "45 1 * * 0",  # Sundays, Lord Howe's fold
        "0 3 * * 1-5",
        "30 2 1 * *",
        "0 0 29 2 *",
    ],
)
def test_fixed_hour_expressions_match_the_oracle_for_three_years(
    expression: str, zone: str
) -> None:
    trigger = CronTrigger.parse(expression, zone)
    got = list(iterate(trigger, START, END))
    want = cron_oracle(expression, zone, START, END, replays=False)
    assert got == want
    assert len(got) == len(set(got))


@pytest.mark.parametrize("zone", ZONES[1:])
def test_fixed_hours_with_stepped_minutes_run_once_in_a_fold(zone: str) -> None:
    expression = "*/20 1-3 * * *"
    end = datetime(2025, 1, 1, tzinfo=UTC)
    got = list(iterate(CronTrigger.parse(expression, zone), START, end))
    want = cron_oracle(expression, zone, START, end, replays=False)
    assert got == want
    assert len(got) == len(set(got))


@pytest.mark.parametrize("zone", ZONES)
def test_fixed_time_runs_exactly_once_per_day_when_it_exists(zone: str) -> None:
    tz = ZoneInfo(zone)
    for expression, hh, mm in [("30 2 * * *", 2, 30), ("45 1 * * *", 1, 45), ("15 2 * * *", 2, 15)]:
        got = list(iterate(CronTrigger.parse(expression, zone), START, END))
        per_day = Counter(t.astimezone(tz).date() for t in got)
        assert max(per_day.values()) == 1
        day = START.astimezone(tz).date() + timedelta(days=1)
        last = END.astimezone(tz).date() - timedelta(days=1)
        missing = []
        while day <= last:
            if per_day[day] == 0:
                missing.append(day)
            day += timedelta(days=1)
        # the only days without a run are those whose wall time a gap skips
        gap_days = [
            d
            for d in _days(START, END, tz)
            if not instants_of(datetime(d.year, d.month, d.day, hh, mm), tz)
        ]
        assert missing == [d for d in gap_days if day_in_range(d, START, END, tz)]
        for t in got:  # and each run is at its wall time, in the first pass
            local = t.astimezone(tz)
            assert (local.hour, local.minute) == (hh, mm)
            assert local.fold == 0


def _days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    d = start.astimezone(tz).date() + timedelta(days=1)
    out = []
    while d < end.astimezone(tz).date():
        out.append(d)
        d += timedelta(days=1)
    return out


def day_in_range(d: date, start: datetime, end: datetime, tz: ZoneInfo) -> bool:
    return start.astimezone(tz).date() < d < end.astimezone(tz).date()


def test_gap_days_are_really_exercised() -> None:
    # Berlin skips 02:30 on the last Sunday of March; New York on the second Sunday of March;
    # New York repeats 01:30 on the first Sunday of November.
    berlin = list(iterate(CronTrigger.parse("30 2 * * *", "Europe/Berlin"), START, END))
    days = {t.astimezone(ZoneInfo("Europe/Berlin")).date() for t in berlin}
    assert date(2025, 3, 30) not in days
    assert date(2025, 3, 29) in days and date(2025, 3, 31) in days
    assert date(2025, 10, 26) in days
    ny = ZoneInfo("America/New_York")
    fold = [
        t
        for t in iterate(CronTrigger.parse("30 1 * * *", "America/New_York"), START, END)
        if t.astimezone(ny).date() == date(2025, 11, 2)
    ]
    assert fold == [datetime(2025, 11, 2, 5, 30, tzinfo=UTC)]  # 01:30 EDT, the first pass


@pytest.mark.parametrize("zone", ZONES[1:])
@pytest.mark.parametrize("expression", ["*/15 * * * *", "0 * * * *", "30 * * * *"])
def test_wildcard_hours_run_through_both_passes_as_elapsed_time(expression: str, zone: str) -> None:
    trigger = CronTrigger.parse(expression, zone)
    step = 900 if expression.startswith("*/15") else 3600
    gaps: set[float] = set()
    # both changes of 2025, north and south: spring, autumn
    for start, end in [
        (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 10, tzinfo=UTC)),
        (datetime(2025, 9, 25, tzinfo=UTC), datetime(2025, 11, 5, tzinfo=UTC)),
    ]:
        assert len([c for c in _transitions(zone) if start <= c < end]) == 1
        got = list(iterate(trigger, start, end))
        gaps |= {(b - a).total_seconds() for a, b in itertools.pairwise(got)}
    if zone == "Australia/Lord_Howe" and step == 3600:
        # half-hour shifts: a gap (02:00 -> 02:30) or fold (02:00 -> 01:30) puts :00 slots
        # 90 minutes apart once, :30 slots 30 minutes apart once
        assert gaps == ({3600.0, 5400.0} if expression[0] == "0" else {1800.0, 3600.0})
    else:
        assert gaps == {float(step)}  # a slot every step, without a hole or a double


@pytest.mark.parametrize("zone", ZONES[1:])
@pytest.mark.parametrize("expression", ["*/15 * * * *", "0 * * * *", "10,40 */2 * * *"])
def test_wildcard_hours_match_the_oracle_around_each_change(expression: str, zone: str) -> None:
    trigger = CronTrigger.parse(expression, zone)
    changes = _transitions(zone)
    assert len(changes) >= 6
    for change in changes:
        lo, hi = change - timedelta(hours=12), change + timedelta(hours=12)
        got = list(iterate(trigger, lo, hi))
        assert got == cron_oracle(expression, zone, lo, hi, replays=True, shared=False), change


@pytest.mark.parametrize("zone", ZONES[1:])
def test_every_instant_of_a_change_day_is_checked(zone: str) -> None:
    # the 6-field form with seconds: every 20 seconds, an hour around each change
    trigger = CronTrigger.parse("*/20 * * * * *", zone)
    for change in _transitions(zone)[:2]:
        lo, hi = change - timedelta(minutes=30), change + timedelta(minutes=30)
        got = list(iterate(trigger, lo, hi))
        assert {(b - a).total_seconds() for a, b in itertools.pairwise(got)} == {20.0}
        assert got == cron_oracle(
            "*/20 * * * * *", zone, lo, hi, replays=True, seconds_first=True, shared=False
        )


def test_next_after_from_anywhere_inside_a_fold() -> None:
    # New York, 2025-11-02: 01:00-02:00 EDT then 01:00-02:00 EST (05:00-07:00 UTC)
    daily = CronTrigger.parse("30 1 * * *", "America/New_York")
    hourly = CronTrigger.parse("30 * * * *", "America/New_York")
    for minute in range(0, 180, 7):
        after = datetime(2025, 11, 2, 4, 30, tzinfo=UTC) + timedelta(minutes=minute)
        d = daily.next_after(after)
        assert d == (
            datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
            if after < datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
            else datetime(2025, 11, 3, 6, 30, tzinfo=UTC)
        )
        h = hourly.next_after(after)
        assert h is not None and h > after and h - after <= timedelta(hours=1)
        assert h.minute == 30


def test_inside_a_gap_and_at_its_edges() -> None:
    # Berlin, 2025-03-30: 02:00 CET is 03:00 CEST, at 01:00 UTC
    t = CronTrigger.parse("30 2 * * *", "Europe/Berlin")
    change = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    for delta in (-3600, -1, 0, 1, 1800):
        assert t.next_after(change + timedelta(seconds=delta)) == datetime(
            2025, 3, 31, 0, 30, tzinfo=UTC
        )
    three = CronTrigger.parse("0 3 * * *", "Europe/Berlin")
    assert three.next_after(change - timedelta(seconds=1)) == change
    assert three.next_after(change) == datetime(2025, 3, 31, 1, 0, tzinfo=UTC)


def test_after_may_be_in_any_zone_and_have_microseconds() -> None:
    t = CronTrigger.parse("*/5 * * * *", "UTC")
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime(2025, 6, 1, 14, 4, 59, 999_999, tzinfo=berlin)
    assert t.next_after(after) == datetime(2025, 6, 1, 12, 5, tzinfo=UTC)
    assert t.next_after(datetime(2025, 6, 1, 12, 5, tzinfo=UTC)) == datetime(
        2025, 6, 1, 12, 10, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        t.next_after(datetime(2025, 6, 1))


def test_far_future_ends_with_none() -> None:
    t = CronTrigger.parse("0 0 29 2 1", "UTC")  # both restricted: Feb 29 or any Monday
    assert t.next_after(datetime(9999, 12, 27, tzinfo=UTC)) is None
    leap_monday = CronTrigger.parse("0 0 */29 2 1", "UTC")  # '*' first: Feb 29 AND a Monday
    assert leap_monday.next_after(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2027,
        2,
        1,
        tzinfo=UTC,  # */29 is days 1 and 30; Feb 1 2027 is a Monday
    )
