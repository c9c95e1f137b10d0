"""The daemon's small services: signals, the jobs directory watch, retention passes."""

from __future__ import annotations

import errno
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from jobd.supervisor.dirwatch import DirWatch

log = logging.getLogger("jobd")

PRUNE_EVERY = 3600.0  # seconds between retention passes
SETTLE = 0.01  # a burst of job-file changes is over after this long without another
MAX_GROUP = 0.2  # ... or this long after its first change
REWATCH = 2.0  # seconds between looks for a jobs directory that went away


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
    """Reload when a file in the jobs directory changes: once the changes have been quiet for
    ``SETTLE`` seconds, or ``MAX_GROUP`` after the first (docs/running.md). Blocks on an
    inotify descriptor: no wake-up while nothing changes."""
    await anyio.Path(jobs_dir).mkdir(parents=True, exist_ok=True)
    watch: DirWatch | None = None
    try:
        watch = DirWatch(jobs_dir)
    except OSError as exc:  # inotify limits (ENOSPC, EMFILE): run on, and keep trying
        limits = (
            " (inotify limits: sysctl fs.inotify.max_user_instances, max_user_watches)"
            if exc.errno in (errno.ENOSPC, errno.EMFILE)
            else ""
        )
        log.error(
            "cannot watch the jobs directory: %s%s; until it can be, job-file changes need "
            "jobctl reload or SIGHUP (retrying every %gs)",
            exc.strerror,
            limits,
            REWATCH,
        )
    task_status.started()
    try:
        while True:
            if watch is None:
                watch = await _rewatch(jobs_dir)
            else:
                await watch.changed()
                await _settle(watch)
                if watch.gone:
                    log.warning("jobs directory %s is gone; watching for it again", jobs_dir)
                    watch.close()
                    watch = None
            log.info("job files changed: reloading")
            await reload()
    finally:
        if watch is not None:
            watch.close()


async def _settle(watch: DirWatch) -> None:
    """Wait until the burst of changes is over (an editor writes, renames, sets modes)."""
    until = anyio.current_time() + MAX_GROUP
    while not watch.gone and (left := until - anyio.current_time()) > 0:
        with anyio.move_on_after(min(SETTLE, left)) as quiet:
            await watch.changed()
        if quiet.cancelled_caught:
            return


async def _rewatch(jobs_dir: Path) -> DirWatch:
    """The jobs directory was removed or renamed away: look for it every ``REWATCH`` seconds
    (only in that state), and watch it again once it is back."""
    while True:
        await anyio.sleep(REWATCH)
        try:
            return DirWatch(jobs_dir)
        except OSError:
            continue


async def prune_loop(prune: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            await prune()
        except Exception:  # retention must never stop the daemon
            log.exception("retention: pruning failed; trying again in an hour")
        await anyio.sleep(PRUNE_EVERY)
