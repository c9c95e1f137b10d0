"""The event loop's stalls, measured exactly and for free: how long each turn of the loop ran
between two polls for I/O. A turn that runs long delays every timer, socket and child exit
behind it, whatever held it (a blocking call, a big batch of callbacks, a GC pause).

On asyncio's selector loops the meter wraps the loop's selector: two clock reads per turn, no
task and no wake-up of its own. Elsewhere (another loop implementation) it measures nothing,
and the sampling loop monitor in ``jobd.metrics`` is the only measure left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STALL_THRESHOLD = 0.010
"""A turn longer than this counts as a stall (``jobd_event_loop_stalls_total``)."""


class StallMeter:
    """The longest turn of the loop, and how many turns were longer than ``threshold``.

    ``turn(seconds)`` is the pure part (fed by the wrapped selector, or by a test);
    ``install()`` wraps the running loop's selector."""

    def __init__(
        self,
        *,
        threshold: float = STALL_THRESHOLD,
        clock: Callable[[], float] = time.perf_counter,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.longest = 0.0
        self.stalls = 0
        self._clock = clock
        self._on_stall = on_stall
        self._undo: Callable[[], None] | None = None
        self._let_go: asyncio.Event | None = None  # set when uninstalled

    def turn(self, seconds: float) -> None:
        """One turn of the loop took ``seconds``."""
        if seconds > self.longest:
            self.longest = seconds
        if seconds > self.threshold:
            self.stalls += 1
            if self._on_stall is not None:
                self._on_stall(seconds)

    @property
    def installed(self) -> bool:
        return self._undo is not None

    def install(self) -> bool:
        """Measure the running asyncio loop's turns from now on. False when the loop has no
        selector to wrap (not an asyncio selector loop)."""
        if self._undo is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        selector = getattr(loop, "_selector", None)
        select = getattr(selector, "select", None)
        if selector is None or select is None:
            return False  # not a selector loop
        previous = vars(selector).get("select")  # another meter's, on the same loop
        clock, turn = self._clock, self.turn
        polled = clock()
        active = True

        def timed_select(timeout: float | None = None) -> Any:
            nonlocal polled
            if active:
                turn(clock() - polled)  # from the last poll's return to this poll: one turn
            try:
                return select(timeout)
            finally:
                polled = clock()

        setattr(selector, "select", timed_select)  # noqa: B010 - an instance attribute over a method

        def undo() -> None:
            nonlocal active
            active = False  # stays in the chain, inert, if another meter wrapped it since
            if vars(selector).get("select") is timed_select:
                if previous is None:
                    delattr(selector, "select")
                else:
                    setattr(selector, "select", previous)  # noqa: B010

        self._undo = undo
        self._let_go = asyncio.Event()
        return True

    def uninstall(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None
        if self._let_go is not None:
            self._let_go.set()
            self._let_go = None

    async def until_uninstalled(self) -> None:
        """Return once the meter no longer measures (at once if it does not)."""
        if self._let_go is not None:
            await self._let_go.wait()

    @contextmanager
    def measuring(self) -> Iterator[bool]:
        """``install`` for the duration of the block; yields whether it could."""
        fresh = not self.installed
        try:
            yield self.install()
        finally:
            if fresh:
                self.uninstall()
