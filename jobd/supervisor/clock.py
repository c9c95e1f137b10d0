"""The clock is injected: the daemon reads time only through it, so tests drive time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio

# Sleep at most this long at once, so a wall-clock jump (NTP, suspend) is noticed.
MAX_SLEEP = 3600.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at or after ``when`` (or earlier; callers re-check ``now()``)."""
        ...

    @property
    def lead(self) -> timedelta:
        """How long before a time slot its run may be admitted and journaled, so that only
        the spawn is left at the slot (docs/scheduling.md, "On time")."""
        ...


# The event loop wakes timers up to ~1 ms late (epoll's millisecond timeout, rounded up); the
# last stretch before a slot is crossed by yielding to the loop instead, so slots start on time.
PRECISE = 0.002

# Two fsync'd commits and a run's files take 2-3 ms; the margin covers a slow disk's commit.
LEAD = timedelta(milliseconds=20)


class SystemClock:
    lead = LEAD

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > PRECISE:
            await anyio.sleep(min(delay - PRECISE, MAX_SLEEP))
            return  # the caller looks at now() again and comes back for the rest
        while self.now() < when:
            await anyio.lowlevel.checkpoint()


class FakeClock:
    """A clock that moves only when told; sleepers wake when it passes their deadline."""

    def __init__(self, start: datetime, *, lead: timedelta = timedelta(0)) -> None:
        self._now = start
        self.lead = lead
        self._moved = anyio.Event()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            moved = self._moved
            await moved.wait()

    def set(self, when: datetime) -> None:
        self._now = when
        self._moved.set()
        self._moved = anyio.Event()

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))


async def sleep_or_wake(clock: Clock, when: datetime, wake: anyio.Event) -> None:
    """Return when the clock reaches ``when`` or ``wake`` is set, whichever is first."""
    async with anyio.create_task_group() as tg:

        async def sleeper() -> None:
            await clock.sleep_until(when)
            tg.cancel_scope.cancel()

        tg.start_soon(sleeper)
        await wake.wait()
        tg.cancel_scope.cancel()
