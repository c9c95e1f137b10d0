"""Wall-clock patterns and their exact mapping to instants across UTC-offset changes.

Times are integers: an *instant* is whole seconds since the Unix epoch; a *wall* time is whole
seconds since 1970-01-01 00:00 on a naive local clock (instant + UTC offset). A zone's history
is walked as segments of constant offset. Between two segments a *gap* (offset grows: local
times skipped) or a *fold* (offset shrinks: local times repeat, the second time a *replay*).

Transitions are found by probing the offset every ``PROBE`` seconds and bisecting, which is
exact when two transitions are never closer than ``PROBE``; in the tz database (2026) they
are at least 6.9 days apart from 1970 on. Folds are at most 7 hours long (Antarctica/Vostok,
1994); ``LOOKBACK`` covers them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TypeVar, cast
from zoneinfo import ZoneInfo

PROBE = 86400
LOOKBACK = 8 * 3600
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_DAYS_SCANNED = 146_097  # one 400-year Gregorian cycle: every date/weekday pair occurs
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


_Values = TypeVar("_Values", tuple[int, ...], frozenset[int])
_SHARED: dict[object, object] = {}


def _shared(values: _Values) -> _Values:
    """One object for equal field values across patterns: 10,000 jobs mostly share their
    ``*`` fields, and a set of 31 days costs 2 KB."""
    got = _SHARED.get(values)
    if got is None:
        if len(_SHARED) >= 4096:  # a bound across reloads; correctness does not depend on it
            _SHARED.clear()
        _SHARED[values] = got = values
    return cast(_Values, got)


class WallPattern:
    """A set of local wall-clock times, as a cron expression describes them.

    Day matching follows Vixie cron: when both day fields are restricted (neither starts with
    ``*``), a day matches if *either* matches; otherwise both must match.
    """

    __slots__ = ("_day_or", "_doms", "_dows", "_hours", "_minutes", "_months", "_seconds")

    def __init__(
        self,
        *,
        seconds: Collection[int],
        minutes: Collection[int],
        hours: Collection[int],
        doms: Collection[int],
        months: Collection[int],
        dows: Collection[int],
        day_or: bool,
    ) -> None:
        self._seconds = _shared(tuple(sorted(set(seconds))))
        self._minutes = _shared(tuple(sorted(set(minutes))))
        self._hours = _shared(tuple(sorted(set(hours))))
        self._doms = _shared(frozenset(doms))
        self._months = _shared(tuple(sorted(set(months))))
        self._dows = _shared(frozenset(dows))  # 0 = Sunday
        self._day_or = day_or
        if not (self._seconds and self._minutes and self._hours and self._months):
            raise ValueError("empty wall pattern")

    def day_matches(self, d: date) -> bool:
        dom = d.day in self._doms
        dow = d.isoweekday() % 7 in self._dows
        return (dom or dow) if self._day_or else (dom and dow)

    def matches(self, wall: int) -> bool:
        days, sod = divmod(wall, 86400)
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        d = date.fromordinal(days + _EPOCH_ORDINAL)
        return (
            s in self._seconds
            and m in self._minutes
            and h in self._hours
            and d.month in self._months
            and self.day_matches(d)
        )

    def _first_time_of_day(self, sod: int) -> int | None:
        """The first matching second of the day at or after ``sod``, if any."""
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        i = bisect_left(hours, h)
        if i == len(hours):
            return None
        if hours[i] == h:
            j = bisect_left(minutes, m)
            if j < len(minutes):
                if minutes[j] == m:
                    k = bisect_left(seconds, s)
                    if k < len(seconds):
                        return h * 3600 + m * 60 + seconds[k]
                    j += 1
                if j < len(minutes):
                    return h * 3600 + minutes[j] * 60 + seconds[0]
            i += 1
            if i == len(hours):
                return None
        return hours[i] * 3600 + minutes[0] * 60 + seconds[0]

    def first_at_or_after(self, wall: int) -> int | None:
        """The first matching wall time at or after ``wall``; None past the year 9999."""
        first_tod = self._hours[0] * 3600 + self._minutes[0] * 60 + self._seconds[0]
        days, sod = divmod(wall, 86400)
        tod = self._first_time_of_day(sod)
        if tod is None:
            days += 1
            tod = first_tod
        try:
            d = date.fromordinal(days + _EPOCH_ORDINAL)
            for _ in range(_MAX_DAYS_SCANNED):
                if d.month not in self._months:
                    i = bisect_left(self._months, d.month)
                    if i < len(self._months):
                        d = date(d.year, self._months[i], 1)
                    else:
                        d = date(d.year + 1, self._months[0], 1)
                    tod = first_tod
                    continue
                if self.day_matches(d):
                    return (d.toordinal() - _EPOCH_ORDINAL) * 86400 + tod
                d += timedelta(days=1)
                tod = first_tod
        except (OverflowError, ValueError):  # beyond date.max
            return None
        return None


def offset_at(zone: ZoneInfo, instant: int) -> int:
    """The zone's UTC offset in seconds at ``instant``."""
    off = datetime.fromtimestamp(instant, zone).utcoffset()
    assert off is not None
    return off // _SECOND


def first_change(zone: ZoneInfo, start: int, end: int, off: int) -> int | None:
    """The first instant in ``(start, end]`` whose offset is not ``off`` (the offset at
    ``start``), or None. From the zone's changes of each year, found once (a daemon's jobs
    share a few zones and a year or two: 10,000 jobs a slot ~180 days away probed 940,000
    offsets without it)."""
    try:
        first, last = _year(start), _year(end)
    except (OverflowError, ValueError, OSError):
        return _probe_change(zone, start, end, off)
    if first < _CACHED_YEARS[0] or last > _CACHED_YEARS[1]:
        return _probe_change(zone, start, end, off)
    for year in range(first, last + 1):
        for t in _year_changes(zone, year):
            if start < t <= end and offset_at(zone, t) != off:
                return t
            if t > end:
                return None
    return None


_CACHED_YEARS = (1971, 9998)  # away from the ends of ``datetime``'s range


def _year(instant: int) -> int:
    return datetime.fromtimestamp(instant, UTC).year


@lru_cache(maxsize=256)
def _year_changes(zone: ZoneInfo, year: int) -> tuple[int, ...]:
    """Every instant in the UTC year's ``(start, end]`` at which the zone's offset changes."""
    lo = int((datetime(year, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
    out: list[int] = []
    off = offset_at(zone, lo)
    while (t := _probe_change(zone, lo, end, off)) is not None:
        out.append(t)
        lo, off = t, offset_at(zone, t)
    return tuple(out)


def _probe_change(zone: ZoneInfo, start: int, end: int, off: int) -> int | None:
    """``first_change`` by probing every ``PROBE`` seconds and bisecting."""
    lo = start
    while lo < end:
        hi = min(lo + PROBE, end)
        if offset_at(zone, hi) != off:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset_at(zone, mid) != off:
                    hi = mid
                else:
                    lo = mid
            return hi
        lo = hi
    return None


def next_instant(
    zone: ZoneInfo,
    start: int,
    pattern: WallPattern,
    *,
    replays: bool,
    period: Callable[[int], int] | None,
) -> int | None:
    """The first instant at or after ``start`` whose local wall time ``pattern`` matches.

    ``replays``: whether wall times repeated by a fold match again (the second pass).
    ``period``: None to skip wall times lost in a gap; else a function giving a wall time's
    period number, and a matching wall time lost in a gap moves to the end of the gap (the
    transition instant) when that is still in the same period.
    """
    a = start
    off = offset_at(zone, a)
    replay_below: int | None = None  # walls below this, in the current segment, are replays
    gap_from: int | None = None  # the segment starts at a gap that skipped [gap_from, a + off)
    back = a - LOOKBACK
    off_back = offset_at(zone, back)
    if off_back != off:
        f = first_change(zone, back, a, off_back)
        assert f is not None
        if off_back > off:
            replay_below = f + off_back
        elif f == a:
            gap_from = f + off_back
    while True:
        wall_a = a + off
        if gap_from is not None and period is not None:
            w = pattern.first_at_or_after(gap_from)
            if w is not None and w < wall_a and period(w) == period(wall_a):
                return a
        lo = wall_a
        if replay_below is not None and not replays and lo < replay_below:
            lo = replay_below
        w = pattern.first_at_or_after(lo)
        if w is None:
            return None
        candidate = w - off
        f = first_change(zone, a, candidate, off)
        if f is None:
            return candidate
        new = offset_at(zone, f)
        replay_below = f + off if new < off else None
        gap_from = f + off if new > off else None
        a, off = f, new


def floor_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down; ``moment`` must be aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is a naive datetime; time triggers need an aware one")
    return (moment - EPOCH) // _SECOND


def from_seconds(instant: int) -> datetime:
    return EPOCH + timedelta(seconds=instant)
