"""Cadences and the offset rule: exact slots, stable offsets, even spread, and DST."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._enums import TriggerKind
from jobd.triggers.cadence import CadenceTrigger, job_hash
from tests.triggers._oracle import instants_of, iterate

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"

job_ids = st.text(min_size=1, max_size=40)
instants = st.datetimes(
    min_value=datetime(1975, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(job_ids, st.integers(min_value=1000, max_value=10**10), instants, instants)
def test_duration_slots_are_exact(job_id: str, period_ms: int, a: datetime, b: datetime) -> None:
    t = CadenceTrigger.parse(job_id, f"{period_ms}ms", "UTC")
    offset = Fraction(job_hash(job_id)) % Fraction(period_ms, 1000)  # H mod P, in seconds
    assert t.offset == timedelta(milliseconds=int(offset * 1000))
    assert t.period == timedelta(milliseconds=period_ms)
    for after in (a, b):  # the same offset whatever ``after``
        slot = t.next_after(after)
        assert slot is not None
        assert slot > after >= slot - t.period
        since_epoch = Fraction((slot - EPOCH) // US, 10**6)
        assert (since_epoch - offset) % Fraction(period_ms, 1000) == 0
        nxt = t.next_after(slot)
        assert nxt is not None and nxt - slot == t.period
        assert t.next_after(slot - US) == slot


def _resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose local wall time is ``wall`` or later."""
    at = instants_of(wall, zone)
    if at:
        return at[0]
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the gap
    hi = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # after it
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) // 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi


def _period_start(unit: str, d: date) -> date:
    if unit == "week":
        return d - timedelta(days=d.weekday())
    if unit == "month":
        return d.replace(day=1)
    return d


def _next_period(unit: str, d: date) -> date:
    if unit == "week":
        return d + timedelta(days=7)
    if unit == "month":
        return (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return d + timedelta(days=1)


def _prev_period(unit: str, d: date) -> date:
    return _period_start(unit, d - timedelta(days=1))


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
]


@settings(max_examples=150, deadline=None)
@given(
    job_ids,
    st.sampled_from(["day", "week", "month"]),
    st.sampled_from(ZONES),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
)
def test_calendar_slots_sit_at_the_offset_inside_each_period(
    job_id: str, unit: str, zone_name: str, after: datetime
) -> None:
    zone = ZoneInfo(zone_name)
    t = CadenceTrigger.parse(job_id, unit, zone_name)
    n = job_hash(job_id) % {"day": 86400, "week": 604800, "month": 28 * 86400}[unit]
    assert t.offset == timedelta(seconds=n)
    start = _prev_period(unit, _period_start(unit, after.astimezone(zone).date()))
    expected = []
    for _ in range(3):
        wall = datetime(start.year, start.month, start.day) + timedelta(seconds=n)
        slot = _resolve(wall, zone)
        expected.append(slot)
        local = slot.astimezone(zone).replace(tzinfo=None)
        # inside its period, at the offset unless a gap moved it later
        end = _next_period(unit, start)
        assert datetime(start.year, start.month, start.day) <= local
        assert local < datetime(end.year, end.month, end.day)
        assert local >= wall
        start = end
    assert t.next_after(after) == min(s for s in expected if s > after)


@settings(max_examples=100, deadline=None)
@given(
    job_ids,
    st.sampled_from(["minute", "hour"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
    instants,
)
def test_minute_and_hour_run_every_real_minute_and_hour(
    job_id: str, unit: str, zone_name: str, after: datetime
) -> None:
    p = 60 if unit == "minute" else 3600
    t = CadenceTrigger.parse(job_id, unit, zone_name)
    n = job_hash(job_id) % p
    slot = t.next_after(after)
    assert slot is not None
    # in whole-hour zones a local minute or hour is a UTC one: slots are k·P + N, DST or not
    assert ((slot - EPOCH) // timedelta(seconds=1) - n) % p == 0
    assert slot > after >= slot - timedelta(seconds=p)


def test_hourly_through_dst_changes_in_berlin_is_every_3600s() -> None:
    t = CadenceTrigger.parse("reindex", "hour", "Europe/Berlin")
    got = list(iterate(t, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC)))
    assert {b - a for a, b in itertools.pairwise(got)} == {timedelta(hours=1)}


def test_spring_gap_moves_a_daily_slot_to_the_end_of_the_gap() -> None:
    # 'reindex' runs at 02:14:20 Berlin time; on 2025-03-30 02:00-03:00 does not exist
    t = CadenceTrigger.parse("reindex", "day", "Europe/Berlin")
    assert t.describe() == "every day at 02:14:20 (Europe/Berlin)"
    got = list(iterate(t, datetime(2025, 3, 28, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)))
    assert got == [
        datetime(2025, 3, 28, 1, 14, 20, tzinfo=UTC),  # 02:14:20 CET
        datetime(2025, 3, 29, 1, 14, 20, tzinfo=UTC),
        datetime(2025, 3, 30, 1, 0, 0, tzinfo=UTC),  # 03:00:00 CEST, the end of the gap
        datetime(2025, 3, 31, 0, 14, 20, tzinfo=UTC),  # 02:14:20 CEST
    ]
    # inside the gap day, after the moved slot, the next is the next day's
    assert t.next_after(datetime(2025, 3, 30, 1, 0, tzinfo=UTC)) == got[3]
    for before in (timedelta(seconds=1), timedelta(microseconds=1), timedelta(hours=5)):
        assert t.next_after(got[2] - before) == got[2]


def test_autumn_fold_runs_a_daily_slot_once() -> None:
    t = CadenceTrigger.parse("reindex", "day", "Europe/Berlin")
    got = list(iterate(t, datetime(2025, 10, 25, tzinfo=UTC), datetime(2025, 10, 28, tzinfo=UTC)))
    assert got == [
        datetime(2025, 10, 25, 0, 14, 20, tzinfo=UTC),
        datetime(2025, 10, 26, 0, 14, 20, tzinfo=UTC),  # 02:14:20 CEST, the first pass
        datetime(2025, 10, 27, 1, 14, 20, tzinfo=UTC),  # 02:14:20 CET
    ]
    # from inside the second pass, nothing more that day
    assert t.next_after(datetime(2025, 10, 26, 1, 30, tzinfo=UTC)) == got[2]


def test_hour_in_a_half_hour_gap_moves_within_its_hour() -> None:
    # Lord Howe, 2025-10-05: 02:00 (+10:30) becomes 02:30 (+11) at 15:30 UTC the day before
    jid = next(j for j in (f"job{i}" for i in range(1000)) if job_hash(j) % 3600 < 1800)
    t = CadenceTrigger.parse(jid, "hour", "Australia/Lord_Howe")
    change = datetime(2025, 10, 4, 15, 30, tzinfo=UTC)
    assert t.next_after(change - timedelta(minutes=31)) == change  # the hour 02:00-03:00
    zone = ZoneInfo("Australia/Lord_Howe")
    assert change.astimezone(zone).replace(tzinfo=None) == datetime(2025, 10, 5, 2, 30)


def _chi_square(counts: list[int]) -> float:
    expected = sum(counts) / len(counts)
    return sum((c - expected) ** 2 / expected for c in counts)


@cache
def _ids() -> list[str]:
    rnd = random.Random(20250101)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
    ids = {"".join(rnd.choices(alphabet, k=rnd.randint(3, 24))) for _ in range(10_050)}
    return sorted(ids)[:10_000]


# chi-square critical values at p = 0.001, by degrees of freedom
_CRITICAL = {9: 27.877, 6: 22.458}


@pytest.mark.parametrize("every", ["hour", "day", "week", "month", "30s", "7s"])
def test_offsets_spread_evenly_over_10000_ids(every: str) -> None:
    ids = _ids()
    assert len(ids) == 10_000
    triggers = [CadenceTrigger.parse(j, every, "UTC") for j in ids]
    buckets = min(10, int(triggers[0].period.total_seconds()))  # 7s has 7 possible offsets
    counts = [0] * buckets
    for t in triggers:
        counts[t.offset * buckets // t.period] += 1
    assert _chi_square(counts) < _CRITICAL[buckets - 1], counts
    assert max(abs(c - len(ids) / buckets) for c in counts) < len(ids) / buckets * 0.1


def test_the_worked_example_of_the_docs() -> None:
    h = job_hash("backup")
    assert f"{h:064x}" == "54d00d867758cef816bc4685f58e327b949712b07ebd17c3485f3ffc9e9f5133"
    assert (h % 86400, h % 30, h % 900, h % 604800, h % (28 * 86400)) == (
        56755,
        25,
        55,
        56755,
        1871155,
    )
    day = CadenceTrigger.parse("backup", "day", "Europe/Berlin")
    assert day.describe() == "every day at 15:45:55 (Europe/Berlin)"
    assert day.next_after(datetime(2025, 3, 29, 12, tzinfo=UTC)) == datetime(
        2025, 3, 29, 14, 45, 55, tzinfo=UTC
    )
    assert day.next_after(datetime(2025, 3, 30, tzinfo=UTC)) == datetime(
        2025, 3, 30, 13, 45, 55, tzinfo=UTC
    )
    assert CadenceTrigger.parse("backup", "30s", "UTC").describe() == "every 30s (+25s)"
    assert CadenceTrigger.parse("backup", "15m", "UTC").describe() == "every 15m (+55s)"
    assert (
        CadenceTrigger.parse("backup", "week", "UTC").describe()
        == "every week on Monday at 15:45:55 (UTC)"
    )
    assert (
        CadenceTrigger.parse("backup", "month", "UTC").describe()
        == "every month on day 22 at 15:45:55 (UTC)"
    )
    text = DOCS.read_text(encoding="utf-8")
    for fact in (
        "54d00d867758cef8",
        "56755",
        "15:45:55",
        "2025-03-29 14:45:55",
        "2025-03-30 13:45:55",
        "every 30s (+25s)",
        "every 15m (+55s)",
        "on day 22",
        "02:14:20",
        "03:00:00",
    ):
        assert fact in text, fact


@pytest.mark.parametrize(
    ("every", "message"),
    [
        (
            "fortnight",
            "'fortnight' is not a cadence; use minute, hour, day, week, month or a "
            'duration such as "30s", "15m", "2h"',
        ),
        ("Day", "'Day' is not a cadence"),
        ("", "'' is not a cadence"),
        ("30", "'30' is not a cadence"),
        ("500ms", "'500ms' is too short; the shortest cadence is 1s"),
        ("0s", "'0s' is too short"),
    ],
)
def test_bad_cadences(every: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        CadenceTrigger.parse("job", every, "UTC")
    assert str(info.value).startswith(message)


def test_bad_zone_and_the_basics() -> None:
    with pytest.raises(ValueError, match=r"^unknown timezone 'Mars/Base'$"):
        CadenceTrigger.parse("job", "day", "Mars/Base")
    t = CadenceTrigger.parse("job", " day ", "UTC")
    assert t.every == "day" and t.unit == "day" and t.kind is TriggerKind.EVERY
    assert t == CadenceTrigger.parse("job", "day", "UTC")
    assert t != CadenceTrigger.parse("job2", "day", "UTC")
    assert CadenceTrigger.parse("job", "1500ms", "UTC").describe().startswith("every 1s500ms (+")
    with pytest.raises(ValueError, match="naive"):
        t.next_after(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        CadenceTrigger.parse("job", "30s", "UTC").next_after(datetime(2025, 1, 1))
    assert (
        CadenceTrigger.parse("job", "30s", "UTC").next_after(
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
        )
        is None
    )
