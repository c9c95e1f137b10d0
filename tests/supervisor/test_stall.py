"""A real daemon whose loop is really blocked reports the stall in its status and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.lowlevel

from jobd.config.model import DaemonConfig
from tests.supervisor.conftest import running


def _block(seconds: float) -> None:
    time.sleep(seconds)  # holds the event loop, as a blocking call in the daemon would


async def _turns(n: int = 3) -> None:
    for _ in range(n):  # let the loop poll for I/O (and so end the turn) a few times
        await anyio.lowlevel.checkpoint()


async def test_the_daemon_reports_a_stall_of_its_loop(
    make_config: Callable[..., DaemonConfig],
) -> None:
    config = make_config('[jobs.hello]\ncron = "0 0 1 1 *"\ncommand = ["true"]\n')
    async with running(config) as d:
        with anyio.fail_after(10):
            await _turns()
            before = await d.api.status()
            _block(0.25)  # the test shares the daemon's loop: this blocks the daemon
            await _turns()
            after = await d.api.status()
            text = await d.api.metrics_text()
    assert before["loop_stall_max_seconds"] < 0.25
    assert after["loop_stall_max_seconds"] >= 0.25
    assert after["loop_stalls"] >= before["loop_stalls"] + 1
    line = next(x for x in text.splitlines() if x.startswith("jobd_event_loop_stall_max_seconds"))
    assert float(line.split()[1]) >= 0.25
