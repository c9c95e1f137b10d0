"""The loop-stall meter: the pure count, then real stalls of a real event loop, then a real
daemon's status and metrics after its loop was really blocked."""

from __future__ import annotations

import asyncio
import time

import anyio
import anyio.lowlevel

from jobd.loopstall import StallMeter
from jobd.metrics import Metrics


def _selector() -> object:
    return asyncio.get_running_loop()._selector  # type: ignore[attr-defined]


def _block(seconds: float) -> None:
    time.sleep(seconds)  # holds the event loop, as a blocking call in the daemon would


async def _turns(n: int = 3) -> None:
    for _ in range(n):  # let the loop poll for I/O (and so end the turn) a few times
        await anyio.lowlevel.checkpoint()


def test_turns_count_the_longest_and_those_over_the_threshold() -> None:
    seen: list[float] = []
    m = StallMeter(threshold=0.010, on_stall=seen.append)
    for t in (0.002, 0.050, 0.010, 0.011, 0.0):
        m.turn(t)
    assert m.longest == 0.050
    assert m.stalls == 2 and seen == [0.050, 0.011]  # 0.010 is not over 0.010


def test_outside_a_loop_nothing_is_installed() -> None:
    m = StallMeter()
    assert m.install() is False and not m.installed


async def test_a_real_stall_is_measured_whole() -> None:
    m = StallMeter()
    with m.measuring() as installed:
        assert installed
        await _turns()
        quiet = m.longest
        _block(0.2)
        await _turns()
    assert m.longest >= 0.2 and m.stalls >= 1
    assert quiet < 0.2
    selector = _selector()
    assert "select" not in vars(selector)  # let go: the loop's own select again


async def test_a_stall_between_monitor_ticks_is_seen_too() -> None:
    # The sampling monitor ticks once a second; a short stall between two ticks is lost to
    # it, never to the meter.
    m = Metrics()
    async with anyio.create_task_group() as tg:
        tg.start_soon(m.loop_monitor, 1.0)
        with m.stall_meter.measuring():
            await anyio.sleep(0.05)
            _block(0.05)
            await _turns()
        tg.cancel_scope.cancel()
    text = m.render_metrics().decode()
    assert m.stall_max() >= 0.05
    assert "jobd_event_loop_stalls_total 1.0" in text
    assert f"jobd_event_loop_stall_max_seconds {m.stall_max()!r}" in text


async def test_two_meters_on_one_loop_let_go_in_any_order() -> None:
    a, b = StallMeter(), StallMeter()
    selector = _selector()
    assert a.install() and b.install()
    a.uninstall()  # out of order: a stays in the chain, inert
    _block(0.03)
    await _turns()
    assert b.longest >= 0.03 and a.longest < 0.03
    b.uninstall()
    assert "select" in vars(selector)  # a's wrapper, inert: it only passes the poll on
    _block(0.05)
    await _turns()
    assert a.longest < 0.03 and b.longest < 0.05


async def test_while_measured_the_stall_is_the_meters_not_the_monitors_lag() -> None:
    m = Metrics()
    m._tick(0.5)  # a late tick: the system did not run the process, say
    assert m.stall_max() == 0.5  # all there is without the meter
    with m.stall_meter.measuring():
        await _turns()
        assert m.stall_max() < 0.5 and m.loop_status()["loop_stalls"] == 0
