"""Independent oracles for the trigger tests: croniter matches naive wall-clock times, and
zoneinfo's PEP 495 ``fold`` says which instants carry a wall time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from croniter import croniter

from jobd.triggers.abc import TimeTrigger


def instants_of(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants whose local wall time is ``wall``: none (gap), one, or two (fold,
    first pass first)."""
    found = []
    for fold in (0, 1):
        u = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if u.astimezone(zone).replace(tzinfo=None) == wall and u not in found:
            found.append(u)
    return sorted(found)


def cron_oracle(
    expression: str,
    zone_name: str,
    start: datetime,
    end: datetime,
    *,
    replays: bool,
    seconds_first: bool = False,
    shared: bool = True,
) -> list[datetime]:
    """The fire times in ``(start, end]``: croniter's naive matches (Vixie day rules), each at
    the instants carrying it; a fold's second pass only when ``replays``. ``shared``: scan a
    zone-independent range of wall times, computed once for all zones (long ranges of sparse
    expressions); else just the zone's local range (short windows of dense ones)."""
    zone = ZoneInfo(zone_name)
    if shared:  # every zone's local times lie within 15 hours of UTC's
        lo = start.astimezone(UTC).replace(tzinfo=None) - timedelta(hours=15)
        hi = end.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=15)
    else:  # folds are at most 7 hours long
        lo = start.astimezone(zone).replace(tzinfo=None) - timedelta(hours=8)
        hi = end.astimezone(zone).replace(tzinfo=None) + timedelta(hours=8)
    out: set[datetime] = set()
    for wall in _walls(expression, lo, hi, seconds_first):
        at = instants_of(wall, zone)
        for u in at if replays else at[:1]:
            if start < u <= end:
                out.add(u)
    return sorted(out)


@cache
def _walls(expression: str, lo: datetime, hi: datetime, seconds_first: bool) -> list[datetime]:
    it = croniter(expression, lo, implement_cron_bug=True, second_at_beginning=seconds_first)
    out = []
    while (wall := it.get_next(datetime)) <= hi:
        out.append(wall)
    return out


def iterate(trigger: TimeTrigger, start: datetime, end: datetime) -> Iterator[datetime]:
    """``trigger``'s fire times in ``(start, end]``, by chaining ``next_after``."""
    at: datetime | None = start
    while True:
        assert at is not None
        nxt = trigger.next_after(at)
        if nxt is None or nxt > end:
            return
        assert nxt > at, (at, nxt)
        assert nxt.utcoffset() == timedelta(0)
        yield nxt
        at = nxt


def transitions(zone_name: str, start: datetime, end: datetime) -> list[datetime]:
    """The instants in ``[start, end)`` at which the zone's UTC offset changes (hourly scan,
    then bisection to the second)."""
    zone = ZoneInfo(zone_name)

    def off(t: datetime) -> timedelta | None:
        return t.astimezone(zone).utcoffset()

    found = []
    t = start
    step = timedelta(hours=1)
    while t < end:
        if off(t) != off(t + step):
            lo, hi = t, t + step
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if off(mid) == off(lo):
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t += step
    return found
