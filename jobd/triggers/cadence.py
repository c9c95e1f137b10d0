"""``every = "..."``: a cadence whose run falls at a fixed, per-job offset inside each period.

The offset rule (the contract): ``H`` is the SHA-256 digest of the job id (UTF-8) read as a
big-endian integer.

- A duration ``P`` (``"30s"``, ``"90m"``, at least 1s, millisecond precision): slots are the
  instants ``k·P + (H mod P)`` seconds after the Unix epoch, computed exactly in integer
  milliseconds (``H mod P`` is a whole number of seconds when ``P`` is).
- ``minute``, ``hour``, ``day``, ``week`` (from Monday 00:00), ``month``: the slot is
  ``N = H mod P`` seconds (``P`` = 60, 3600, 86400, 604800; 28 days for ``month``) after the
  start of each period in the job's time zone, counted on the local wall clock: ``day`` with
  ``N = 11565`` runs when the local clock reads 03:12:45. Across DST changes:

  - a slot whose wall time a gap skips runs at the end of the gap (the first instant after
    it), if that is still inside its period; a period skipped whole (the hour a spring-forward
    gap removes) has no slot;
  - a slot whose wall time a fold repeats runs once, in the first pass, for ``day``, ``week``
    and ``month``; ``minute`` and ``hour`` run in both passes, as they are real periods.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from jobd._enums import TriggerKind
from jobd.durations import format_duration, parse_duration
from jobd.triggers._wallclock import (
    EPOCH,
    WallPattern,
    floor_seconds,
    from_seconds,
    next_instant,
)
from jobd.triggers.timezones import resolve_timezone

__all__ = ["CALENDAR_PERIODS", "MIN_PERIOD", "CadenceTrigger", "job_hash"]

CALENDAR_PERIODS: dict[str, int] = {
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
    "month": 28 * 86400,  # the offset's modulus; months themselves are 28-31 days
}
MIN_PERIOD = timedelta(seconds=1)
"""The shortest duration cadence: a run per second at most."""

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MICROSECOND = timedelta(microseconds=1)


def job_hash(job_id: str) -> int:
    """``H``: the SHA-256 digest of the job id (UTF-8) as a big-endian integer."""
    return int.from_bytes(hashlib.sha256(job_id.encode("utf-8")).digest(), "big")


def _minute_key(wall: int) -> int:
    return wall // 60


def _hour_key(wall: int) -> int:
    return wall // 3600


def _day_key(wall: int) -> int:
    return wall // 86400


def _week_key(wall: int) -> int:
    return (wall // 86400 + 3) // 7  # day 0 (1970-01-01) was a Thursday


def _month_key(wall: int) -> int:
    d = date.fromordinal(wall // 86400 + _EPOCH_ORDINAL)
    return d.year * 12 + d.month


def _pattern(unit: str, offset: int) -> WallPattern:
    days, sod = divmod(offset, 86400)
    h, rest = divmod(sod, 3600)
    m, s = divmod(rest, 60)
    every_hour, every_minute = range(24), range(60)
    all_doms, all_months, all_dows = range(1, 32), range(1, 13), range(7)
    if unit == "minute":
        return WallPattern(
            seconds=[s],
            minutes=every_minute,
            hours=every_hour,
            doms=all_doms,
            months=all_months,
            dows=all_dows,
            day_or=False,
        )
    if unit == "hour":
        return WallPattern(
            seconds=[s],
            minutes=[m],
            hours=every_hour,
            doms=all_doms,
            months=all_months,
            dows=all_dows,
            day_or=False,
        )
    if unit == "day":
        return WallPattern(
            seconds=[s],
            minutes=[m],
            hours=[h],
            doms=all_doms,
            months=all_months,
            dows=all_dows,
            day_or=False,
        )
    if unit == "week":
        return WallPattern(
            seconds=[s],
            minutes=[m],
            hours=[h],
            doms=all_doms,
            months=all_months,
            dows=[(days + 1) % 7],
            day_or=False,
        )
    return WallPattern(
        seconds=[s],
        minutes=[m],
        hours=[h],
        doms=[days + 1],
        months=all_months,
        dows=all_dows,
        day_or=False,
    )


_KEYS = {
    "minute": _minute_key,
    "hour": _hour_key,
    "day": _day_key,
    "week": _week_key,
    "month": _month_key,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CadenceTrigger:
    """``every``: a calendar period (``minute`` ... ``month``) in ``timezone``, or a duration.
    Build with ``CadenceTrigger.parse``; equal when job id, ``every`` and zone are."""

    job_id: str
    every: str
    timezone: str
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _unit: str | None = field(init=False, repr=False, compare=False)
    _period_ms: int = field(init=False, repr=False, compare=False)
    _offset_ms: int = field(init=False, repr=False, compare=False)
    _pattern: WallPattern | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = resolve_timezone(self.timezone)
        h = job_hash(self.job_id)
        text = self.every.strip()
        unit: str | None
        if text in CALENDAR_PERIODS:
            unit = text
            period_ms = CALENDAR_PERIODS[text] * 1000
            offset_ms = (h % CALENDAR_PERIODS[text]) * 1000
        else:
            try:
                seconds = parse_duration(text)
            except ValueError:
                raise ValueError(
                    f"'{self.every}' is not a cadence; use minute, hour, day, week, month "
                    'or a duration such as "30s", "15m", "2h"'
                ) from None
            period_ms = round(seconds * 1000)
            if period_ms < MIN_PERIOD // timedelta(milliseconds=1):
                raise ValueError(
                    f"'{self.every}' is too short; the shortest cadence is "
                    f"{format_duration(MIN_PERIOD.total_seconds())}"
                )
            unit = None
            # H mod P for P = period_ms / 1000 seconds, exactly: (H·1000 mod period_ms) ms
            offset_ms = (h * 1000) % period_ms
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_unit", unit)
        object.__setattr__(self, "_period_ms", period_ms)
        object.__setattr__(self, "_offset_ms", offset_ms)
        object.__setattr__(self, "_pattern", None)  # built when first needed

    @classmethod
    def parse(cls, job_id: str, every: str, timezone: str) -> CadenceTrigger:
        """Validate ``every`` and ``timezone``; raise ``ValueError`` with a message fit for the
        user (``'fortnight' is not a cadence; ...``, ``unknown timezone 'Mars/Base'``)."""
        return cls(job_id=job_id, every=every.strip(), timezone=timezone)

    @property
    def kind(self) -> TriggerKind:
        return TriggerKind.EVERY

    @property
    def unit(self) -> str | None:
        """``minute`` ... ``month`` for a calendar cadence; None for a duration."""
        return self._unit

    @property
    def period(self) -> timedelta:
        """``P``: the duration, or the calendar period's nominal length (28 days for month)."""
        return timedelta(milliseconds=self._period_ms)

    @property
    def offset(self) -> timedelta:
        """``H mod P``: where the slot falls in each period (wall-clock for calendar ones)."""
        return timedelta(milliseconds=self._offset_ms)

    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after ``after`` (aware), as an aware UTC datetime."""
        if self._unit is None:
            floor_seconds(after)  # refuses a naive datetime
            period_us = self._period_ms * 1000
            offset_us = self._offset_ms * 1000
            after_us = (after - EPOCH) // _MICROSECOND
            k = (after_us - offset_us) // period_us + 1
            try:
                return EPOCH + timedelta(microseconds=k * period_us + offset_us)
            except OverflowError:
                return None
        start = floor_seconds(after) + 1
        pattern = self._pattern
        if pattern is None:
            pattern = _pattern(self._unit, self._offset_ms // 1000)
            object.__setattr__(self, "_pattern", pattern)
        try:
            found = next_instant(
                self._zone,
                start,
                pattern,
                replays=self._unit in ("minute", "hour"),
                period=_KEYS[self._unit],
            )
            return None if found is None else from_seconds(found)
        except OverflowError:
            return None

    def describe(self) -> str:
        n = self._offset_ms // 1000
        days, sod = divmod(n, 86400)
        h, rest = divmod(sod, 3600)
        m, s = divmod(rest, 60)
        zone = f"({self.timezone})"
        match self._unit:
            case None:
                return (
                    f"every {format_duration(self._period_ms / 1000)} "
                    f"(+{format_duration(self._offset_ms / 1000)})"
                )
            case "minute":
                return f"every minute at :{s:02d} {zone}"
            case "hour":
                return f"every hour at :{m:02d}:{s:02d} {zone}"
            case "day":
                return f"every day at {h:02d}:{m:02d}:{s:02d} {zone}"
            case "week":
                return f"every week on {_WEEKDAYS[days]} at {h:02d}:{m:02d}:{s:02d} {zone}"
            case _:
                return f"every month on day {days + 1} at {h:02d}:{m:02d}:{s:02d} {zone}"
