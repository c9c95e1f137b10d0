"""``Cancel``: set once; waiters and callbacks hear it once; a withdrawn callback does not."""

from __future__ import annotations

import anyio

from jobd.executors import Cancel


async def test_callbacks_hear_the_cancel_once_and_withdrawn_ones_not() -> None:
    cancel = Cancel()
    heard: list[str] = []
    cancel.on_set(lambda: heard.append("a"))
    withdraw = cancel.on_set(lambda: heard.append("b"))
    withdraw()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel.wait)
        await anyio.lowlevel.checkpoint()
        cancel.set()
        cancel.set()
    assert cancel.is_set() and heard == ["a"]
    cancel.on_set(lambda: heard.append("late"))  # already set: called at once
    assert heard == ["a", "late"]
