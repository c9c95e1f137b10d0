"""A real daemon in the test's event loop: real SQLite journal, real processes, real files;
only the clock is injected where a test needs to move time."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from jobd.config.loader import load_config
from jobd.config.model import DaemonConfig
from jobd.supervisor.clock import Clock
from jobd.supervisor.daemon import Daemon

T0 = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


def write_config(root: Path, jobs: str, daemon: str = "") -> Path:
    """A config in ``root`` with one job file ``jobs.d/jobs.toml`` holding ``jobs``."""
    (root / "jobs.d").mkdir(parents=True, exist_ok=True)
    (root / "jobs.d" / "jobs.toml").write_text(textwrap.dedent(jobs))
    cfg = root / "jobd.toml"
    extra = textwrap.dedent(daemon)
    if "shutdown_grace" not in extra:
        extra = 'shutdown_grace = "5s"\n' + extra
    cfg.write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        timezone = "UTC"
        """)
        + extra
    )
    return cfg


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DaemonConfig]:
    def make(jobs: str, daemon: str = "") -> DaemonConfig:
        return load_config(write_config(tmp_path, jobs, daemon))

    return make


@asynccontextmanager
async def running(
    config: DaemonConfig, *, clock: Clock | None = None, control: bool = False
) -> AsyncIterator[Daemon]:
    """Start a daemon, yield it once READY, then drain it."""
    daemon = Daemon(
        config, clock=clock, control=control, watch_jobs_dir=False, handle_signals=False
    )
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(10):
            await tg.start(daemon.run)
        try:
            yield daemon
        finally:
            daemon.stop()


async def settle(daemon: Daemon, within: float = 10) -> None:
    """Wait until nothing runs, is queued or is on the bus."""
    with anyio.fail_after(within):
        await anyio.lowlevel.checkpoint()
        await daemon.wait_idle()


async def started(daemon: Daemon, run_id: int, within: float = 5) -> None:
    """Wait until the run is running."""
    with anyio.fail_after(within):
        while run_id not in daemon.active:
            await daemon._wait_change()
