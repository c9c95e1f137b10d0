"""``cron = "..."``: 5-field cron (or 6 with seconds first) in a job's time zone.

Matching is on the local wall clock, mapped to instants exactly across UTC-offset changes:

- a wall time skipped by a spring-forward gap does not run that day (as systemd's
  ``OnCalendar=`` does; ``systemd-analyze calendar`` agrees);
- a wall time repeated by a fall-back fold runs once, in its first pass, unless the hour field
  is a wildcard (``*``, ``*/2``): then the times of the second pass run too, as real time
  passes (Vixie cron and cronie do the same for wildcard jobs);
- day-of-month and day-of-week: when both are restricted (neither starts with ``*``) a day
  matches if either matches, as in Vixie cron.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from jobd._enums import TriggerKind
from jobd.triggers._wallclock import (
    WallPattern,
    floor_seconds,
    from_seconds,
    next_instant,
)
from jobd.triggers.timezones import resolve_timezone

__all__ = ["ALIASES", "CronTrigger"]

ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = {name: i + 1 for i, name in enumerate(_MONTHS)}
_DOW_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MONTH_TITLES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    hint: str | None = None  # the cadence that says what "*/n" too large meant


_SECOND = _Field("second", 0, 59, hint="s")
_MINUTE = _Field("minute", 0, 59, hint="m")
_HOUR = _Field("hour", 0, 23, hint="h")
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DOW = _Field("day-of-week", 0, 7, _DOW_NAMES)


class _Invalid(Exception):
    """A reason, turned into the user-facing ValueError by ``CronTrigger``."""


def _value(text: str, f: _Field) -> int:
    if _NUMBER.fullmatch(text):
        v = int(text)
    elif f.names is not None and text.lower() in f.names:
        return f.names[text.lower()]
    elif f.names is not None:
        first, last = next(iter(f.names)), list(f.names)[-1]
        raise _Invalid(f"{f.name} '{text}' is not a number or a name {first}-{last}")
    else:
        raise _Invalid(f"{f.name} '{text}' is not a number")
    if v > f.high:
        raise _Invalid(f"{f.name} {v} > {f.high}")
    if v < f.low:
        raise _Invalid(f"{f.name} {v} < {f.low}")
    return v


def _item(text: str, f: _Field) -> set[int]:
    base, slash, step_text = text.partition("/")
    step = 1
    if slash:
        if not _NUMBER.fullmatch(step_text):
            raise _Invalid(f"{f.name} step '{step_text}' is not a number")
        step = int(step_text)
        if step < 1:
            raise _Invalid(f"{f.name} step {step} must be at least 1")
    if base in ("*", "?"):
        if base == "?" and f is not _DOM and f is not _DOW:
            raise _Invalid(f"'?' is only allowed for day-of-month and day-of-week, not {f.name}")
        low, high = f.low, (6 if f is _DOW else f.high)
        if step > high - low:
            hint = (
                f'; for a run every {step}{f.hint} use every = "{step}{f.hint}"'
                if f.hint is not None
                else ""
            )
            raise _Invalid(
                f"{f.name} step {step} is too large for {f.name}s {low}-{high}, "
                f"it would only match {low}{hint}"
            )
    elif "-" in base:
        a, _, b = base.partition("-")
        if not a or not b or "-" in b:
            raise _Invalid(f"{f.name} '{base}' is not a number or a range")
        low, high = _value(a, f), _value(b, f)
        if low > high:
            raise _Invalid(
                f"{f.name} range {a}-{b} is backwards; write it as two ranges, "
                f"e.g. {a}-{f.high},{f.low}-{b}"
            )
    else:
        low = _value(base, f)
        high = (6 if f is _DOW else f.high) if slash else low
    values = set(range(low, high + 1, step))
    if f is _DOW and 7 in values:  # 7 is Sunday too
        values.discard(7)
        values.add(0)
    return values


def _field(text: str, f: _Field) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _Invalid(f"empty item in the {f.name} list '{text}'")
        values |= _item(part, f)
    return values


@functools.lru_cache(maxsize=4096)  # job sets repeat expressions; patterns are immutable
def _compile(expression: str) -> tuple[WallPattern, bool]:
    """The wall pattern of ``expression`` and whether it runs in a fold's second pass."""
    text = expression.strip()
    if not text:
        raise _Invalid("it is empty")
    if text.startswith("@"):
        alias = ALIASES.get(text)
        if alias is None:
            known = ", ".join(ALIASES)
            raise _Invalid(f"unknown alias {text}; use one of {known}")
        text = alias
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise _Invalid(
            f"{len(parts)} field{'s' if len(parts) != 1 else ''}; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 with seconds first"
        )
    sec, minute, hour, dom, month, dow = parts
    seconds = _field(sec, _SECOND)  # parsed in order, so the first bad field is named
    minutes = _field(minute, _MINUTE)
    hours = _field(hour, _HOUR)
    doms = _field(dom, _DOM)
    months = _field(month, _MONTH)
    dows = _field(dow, _DOW)
    day_or = not dom.startswith(("*", "?")) and not dow.startswith(("*", "?"))
    pattern = WallPattern(
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        doms=doms,
        months=months,
        dows=dows,
        day_or=day_or,
    )
    if not day_or and not any(d <= _DAYS_IN_MONTH[m - 1] for m in months for d in doms):
        names = ", ".join(_MONTH_TITLES[m - 1] for m in sorted(months))
        days = ", ".join(str(d) for d in sorted(doms))
        raise _Invalid(f"it never matches: there is no day {days} in {names}")
    return pattern, hour.startswith("*")


@dataclass(frozen=True, slots=True, kw_only=True)
class CronTrigger:
    """A cron expression in a time zone (an IANA name); see the module docstring for the
    rules across DST changes. Build with ``CronTrigger.parse``; equal when expression and
    zone are."""

    expression: str
    timezone: str
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _pattern: WallPattern = field(init=False, repr=False, compare=False)
    _replays: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = resolve_timezone(self.timezone)
        try:
            pattern, replays = _compile(self.expression)
        except _Invalid as exc:
            raise ValueError(
                f"'{self.expression}' is not a valid cron expression ({exc})"
            ) from None
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "_replays", replays)

    @classmethod
    def parse(cls, expression: str, timezone: str) -> CronTrigger:
        """Validate ``expression`` and ``timezone``; raise ``ValueError`` with a message fit
        for the user: ``'61 * * * *' is not a valid cron expression (minute 61 > 59)``,
        ``unknown timezone 'Mars/Base'``."""
        return cls(expression=" ".join(expression.split()), timezone=timezone)

    @property
    def kind(self) -> TriggerKind:
        return TriggerKind.CRON

    @property
    def wall_pattern(self) -> WallPattern:
        """The set of local wall-clock times the expression names."""
        return self._pattern

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), as an aware UTC datetime."""
        start = floor_seconds(after) + 1
        try:
            found = next_instant(
                self._zone, start, self._pattern, replays=self._replays, period=None
            )
            return None if found is None else from_seconds(found)
        except OverflowError:
            return None

    def describe(self) -> str:
        return f"cron '{self.expression}' ({self.timezone})"
