"""The slot gate: every run held for one instant is let go in the same turn of the loop (so
their spawns run back to back), a cancel lets one go early, a slot already passed does not
hold at all. Driven by an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

from jobd.executors import Cancel
from jobd.supervisor.clock import FakeClock
from jobd.supervisor.slotgate import SlotGate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def settle() -> None:
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


async def test_the_runs_of_one_slot_go_together_and_a_cancel_goes_alone() -> None:
    clock = FakeClock(T0)
    gate = SlotGate(clock)
    seen: list[tuple[str, int]] = []
    cancels = {i: Cancel() for i in range(7)}

    async def run(i: int, slot: datetime) -> None:
        await gate.wait(slot, cancels[i])
        seen.append(("go", i))
        await anyio.lowlevel.checkpoint()  # a spawn yields after it: no one else may be held
        seen.append(("after", i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(gate.serve)
        for i in range(5):
            tg.start_soon(run, i, T0 + timedelta(seconds=1))
        tg.start_soon(run, 5, T0 + timedelta(seconds=2))
        tg.start_soon(run, 6, T0 + timedelta(seconds=1))
        await settle()
        assert seen == []
        cancels[6].set()
        await settle()
        assert seen == [("go", 6), ("after", 6)]

        seen.clear()
        clock.advance(1)
        await settle()
        assert sorted(seen[:5]) == [("go", i) for i in range(5)]
        assert sorted(seen[5:]) == [("after", i) for i in range(5)]

        seen.clear()
        await gate.wait(T0, Cancel())  # passed: no wait at all
        clock.advance(1)
        await settle()
        assert seen == [("go", 5), ("after", 5)]
        tg.cancel_scope.cancel()


class TickingClock(FakeClock):
    """Time moves a millisecond each time it is read, and sleeping is yielding until then (the
    system clock's last stretch before a slot): waiters that each watched it would see the
    slot come at different turns."""

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while self.now() < when:
            await anyio.lowlevel.checkpoint()


async def test_one_sleeper_for_all_even_when_each_look_at_the_clock_moves_it() -> None:
    clock = TickingClock(T0)
    gate = SlotGate(clock)
    turn = 0
    went: list[int] = []  # the turn of the loop in which each run was let go

    async def count_turns() -> None:
        nonlocal turn
        while True:
            await anyio.lowlevel.checkpoint()
            turn += 1

    async def run() -> None:
        await gate.wait(T0 + timedelta(milliseconds=50), Cancel())
        went.append(turn)

    async with anyio.create_task_group() as tg:
        tg.start_soon(count_turns)
        tg.start_soon(gate.serve)
        for _ in range(5):
            tg.start_soon(run)
        with anyio.fail_after(5):
            while len(went) < 5:
                await anyio.lowlevel.checkpoint()
        assert len(set(went)) == 1, went
        tg.cancel_scope.cancel()
