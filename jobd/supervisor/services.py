"""The daemon's small services: signals, the jobs directory watch, retention passes."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

log = logging.getLogger("jobd")

PRUNE_EVERY = 3600.0  # seconds between retention passes


async def signal_loop(
    reload: Callable[[], Awaitable[Any]],
    stop: Callable[[], None],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """SIGHUP reloads; SIGTERM and SIGINT drain."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
        task_status.started()
        async for signum in sigs:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading")
                await reload()
            else:
                log.info("%s: draining", signal.Signals(signum).name)
                stop()


async def jobs_dir_loop(
    jobs_dir: Path,
    reload: Callable[[], Awaitable[Any]],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Reload when a file in the jobs directory changes (debounced)."""
    from watchfiles import awatch

    await anyio.Path(jobs_dir).mkdir(parents=True, exist_ok=True)
    stop = anyio.Event()
    task_status.started()
    async for _changes in awatch(
        jobs_dir, debounce=200, step=20, stop_event=stop, rust_timeout=1000, yield_on_timeout=False
    ):
        log.info("job files changed: reloading")
        await reload()


async def prune_loop(prune: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            await prune()
        except Exception:  # retention must never stop the daemon
            log.exception("retention: pruning failed; trying again in an hour")
        await anyio.sleep(PRUNE_EVERY)
