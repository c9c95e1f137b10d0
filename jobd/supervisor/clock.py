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


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await anyio.sleep(min(delay, MAX_SLEEP))


class FakeClock:
    """A clock that moves only when told; sleepers wake when it passes their deadline."""

    def __init__(self, start: datetime) -> None:
        self._now = start
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
