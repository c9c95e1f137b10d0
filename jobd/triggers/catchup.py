"""Which time slots are due now: the pure planner the supervisor calls when it starts and
whenever its timer wakes.

The *cursor* is the newest slot already dealt with (run or dropped, and journaled). Slots in
``(cursor, now]`` are due:

- a job seen for the first time (``cursor`` None) starts fresh: nothing runs, the cursor
  becomes ``now``;
- ``start_deadline``: slots older than ``now - start_deadline`` are dropped, at start and
  while running alike (a deadline says "start within this long of the slot, or not at all");
- at start (``at_start``), the remaining slots were missed while the daemon was down; they run
  as ``TriggerKind.CATCHUP`` per ``catchup``: ``all`` runs each (the newest
  ``MAX_CATCHUP_RUNS`` of them; older ones are dropped), ``latest`` runs the newest only,
  ``none`` runs none;
- while running, every remaining slot is due with its trigger's own kind (also capped at
  ``MAX_CATCHUP_RUNS``, for a machine that was suspended for long).

The new cursor is the newest slot considered; it never moves backwards. Slots are found
forward from the cursor with ``next_after``; dropped slots are counted up to ``COUNT_LIMIT``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from jobd._enums import Catchup, TriggerKind
from jobd.triggers.abc import TimeTrigger

__all__ = [
    "COUNT_LIMIT",
    "MAX_CATCHUP_RUNS",
    "DropReason",
    "DroppedSlots",
    "DuePlan",
    "DueSlot",
    "next_due",
    "next_fire_times",
    "plan_due",
]

MAX_CATCHUP_RUNS = 1000
"""At most this many slots run from one plan; older ones are dropped (``DropReason.LIMIT``)."""
COUNT_LIMIT = 10_000
"""Dropped slots are counted up to this many; beyond, ``DroppedSlots.count`` is None."""

_TICK = timedelta(microseconds=1)  # datetimes' resolution: "just before" a slot
_CHUNK = 2000  # slots scanned per step when walking back from ``now``
_MIN_WIDTH = timedelta(seconds=1)


class DropReason(StrEnum):
    """Why a time slot did not run."""

    START_DEADLINE = "start_deadline"  # older than now - start_deadline
    CATCHUP_NONE = "catchup_none"  # missed while down, catchup = "none"
    CATCHUP_LATEST = "catchup_latest"  # missed while down, older than the newest missed one
    LIMIT = "limit"  # beyond MAX_CATCHUP_RUNS


@dataclass(frozen=True, slots=True, kw_only=True)
class DueSlot:
    """A slot to run: ``JOBD_SCHEDULED_FOR`` and ``JOBD_TRIGGER``."""

    scheduled_for: datetime
    kind: TriggerKind


@dataclass(frozen=True, slots=True, kw_only=True)
class DroppedSlots:
    """A run of consecutive slots dropped for one reason."""

    reason: DropReason
    first: datetime
    last: datetime
    count: int | None  # None: more than COUNT_LIMIT


@dataclass(frozen=True, slots=True, kw_only=True)
class DuePlan:
    """What to do now: ``runs`` oldest first, ``dropped`` oldest first, the new ``cursor``
    to journal, and ``next_at``, the first slot after ``now`` (when to wake next)."""

    runs: tuple[DueSlot, ...]
    dropped: tuple[DroppedSlots, ...]
    cursor: datetime
    next_at: datetime | None


def _as_list(triggers: TimeTrigger | Sequence[TimeTrigger]) -> list[TimeTrigger]:
    if isinstance(triggers, Sequence):
        return list(triggers)
    return [triggers]


def _aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment!r}")


def _slots(triggers: Sequence[TimeTrigger], after: datetime) -> Iterator[DueSlot]:
    """Every slot of ``triggers`` strictly after ``after``, ascending, each instant once (its
    kind from the first trigger that has it)."""
    heads = [t.next_after(after) for t in triggers]
    while True:
        live = [h for h in heads if h is not None]
        if not live:
            return
        at = min(live)
        kind = next(t.kind for t, h in zip(triggers, heads, strict=True) if h == at)
        yield DueSlot(scheduled_for=at, kind=kind)
        heads = [t.next_after(at) if h == at else h for t, h in zip(triggers, heads, strict=True)]


def _first(
    triggers: Sequence[TimeTrigger], lo: datetime, hi: datetime, limit: int
) -> tuple[list[DueSlot], bool]:
    """Up to ``limit`` oldest slots in ``(lo, hi]``, and whether there are more."""
    out: list[DueSlot] = []
    for slot in _slots(triggers, lo):
        if slot.scheduled_for > hi:
            return out, False
        if len(out) == limit:
            return out, True
        out.append(slot)
    return out, False


def _newest(triggers: Sequence[TimeTrigger], lo: datetime, hi: datetime, n: int) -> list[DueSlot]:
    """The newest ``n`` slots in ``(lo, hi]``, oldest first, found by walking back from ``hi``
    in windows that widen while empty and narrow while crowded."""
    found: list[DueSlot] = []
    width = timedelta(minutes=1)
    top = hi
    while n > 0 and top > lo:
        start = max(lo, top - width)
        chunk, more = _first(triggers, start, top, _CHUNK)
        if more:
            if width > _MIN_WIDTH:
                width = max(width / 4, _MIN_WIDTH)
                continue
            chunk, _ = _first(triggers, start, top, _CHUNK * 1000)  # a burst; cannot narrow
        taken = chunk[-n:] if chunk else []
        found[:0] = taken
        n -= len(taken)
        top = start
        width *= 2
    return found


def _dropped(
    triggers: Sequence[TimeTrigger], lo: datetime, hi: datetime, reason: DropReason
) -> DroppedSlots | None:
    """The slots in ``(lo, hi]``, as one dropped group; None when there are none."""
    if hi <= lo:
        return None
    counted, more = _first(triggers, lo, hi, COUNT_LIMIT)
    if not counted:
        return None
    last = _newest(triggers, lo, hi, 1)[0].scheduled_for if more else counted[-1].scheduled_for
    return DroppedSlots(
        reason=reason,
        first=counted[0].scheduled_for,
        last=last,
        count=None if more else len(counted),
    )


def plan_due(
    triggers: TimeTrigger | Sequence[TimeTrigger],
    *,
    cursor: datetime | None,
    now: datetime,
    catchup: Catchup,
    start_deadline: float | None,
    at_start: bool,
) -> DuePlan:
    """Plan the slots of one job's time triggers in ``(cursor, now]``; see the module doc.

    ``start_deadline`` is in seconds; ``cursor`` and ``now`` are aware datetimes.
    """
    trigs = _as_list(triggers)
    _aware("now", now)
    if cursor is None:
        return DuePlan(runs=(), dropped=(), cursor=now, next_at=next_due(trigs, now))
    _aware("cursor", cursor)
    if cursor >= now:  # nothing new (or the clock went back): wait for what follows cursor
        return DuePlan(runs=(), dropped=(), cursor=cursor, next_at=next_due(trigs, cursor))
    first = next_due(trigs, cursor)
    if first is None or first > now:  # nothing fell due since the cursor: the common case
        return DuePlan(runs=(), dropped=(), cursor=cursor, next_at=first)

    dropped: list[DroppedSlots] = []
    lo = cursor
    if start_deadline is not None:
        edge = now - timedelta(seconds=start_deadline) - _TICK  # slots <= edge are too old
        if edge > lo:
            late = _dropped(trigs, lo, edge, DropReason.START_DEADLINE)
            if late is not None:
                dropped.append(late)
            lo = edge

    if at_start and catchup is Catchup.NONE:
        keep = 0
        older_reason = DropReason.CATCHUP_NONE
    elif at_start and catchup is Catchup.LATEST:
        keep = 1
        older_reason = DropReason.CATCHUP_LATEST
    else:
        keep = MAX_CATCHUP_RUNS
        older_reason = DropReason.LIMIT
    kept = _newest(trigs, lo, now, keep)
    older_hi = kept[0].scheduled_for - _TICK if kept else now
    older = _dropped(trigs, lo, older_hi, older_reason)
    if older is not None:
        dropped.append(older)

    runs = tuple(
        DueSlot(scheduled_for=s.scheduled_for, kind=TriggerKind.CATCHUP) if at_start else s
        for s in kept
    )
    newest = [d.last for d in dropped] + [s.scheduled_for for s in kept]
    return DuePlan(
        runs=runs,
        dropped=tuple(dropped),
        cursor=max([cursor, *newest]),
        next_at=next_due(trigs, now),
    )


def next_fire_times(triggers: Sequence[TimeTrigger], after: datetime, n: int = 5) -> list[datetime]:
    """The next ``n`` fire times of ``triggers`` strictly after ``after``, merged, each once
    (what ``jobctl show`` prints)."""
    _aware("after", after)
    out: list[datetime] = []
    if n <= 0:
        return out
    for slot in _slots(list(triggers), after):
        out.append(slot.scheduled_for)
        if len(out) == n:
            break
    return out


def next_due(triggers: Sequence[TimeTrigger], after: datetime) -> datetime | None:
    """The first fire time of any of ``triggers`` strictly after ``after``; None if none."""
    times = next_fire_times(triggers, after, 1)
    return times[0] if times else None


def slots_between(
    triggers: Sequence[TimeTrigger], start: datetime, end: datetime, *, limit: int
) -> list[datetime]:
    """The fire times of ``triggers`` in ``[start, end)``, oldest first; when there are more
    than ``limit``, the newest of them in a window ending at ``end`` (halved until they fit),
    so a 1 s cadence over a day costs a few thousand steps, not 86,400 (the timeline)."""
    _aware("start", start)
    _aware("end", end)
    if limit <= 0 or not triggers:
        return []
    since = start
    while True:
        kept: list[datetime] = []
        for slot in _slots(list(triggers), since - timedelta(microseconds=1)):
            if slot.scheduled_for >= end:
                return kept
            kept.append(slot.scheduled_for)
            if len(kept) > limit:
                break
        else:
            return kept
        since = end - (end - since) / 2
