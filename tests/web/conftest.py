"""A real daemon in the test's event loop with its dashboard on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from jobd.config.loader import load_config
from jobd.supervisor.daemon import Daemon
from tests.supervisor.conftest import running, write_config


@asynccontextmanager
async def dashboard(
    root: Path, jobs: str, http: str = 'listen = "127.0.0.1:0"', daemon: str = ""
) -> AsyncIterator[tuple[Daemon, str]]:
    """The daemon and its dashboard's URL (``http://127.0.0.1:PORT``, no slash)."""
    cfg = write_config(root, jobs, daemon)
    cfg.write_text(cfg.read_text() + f"\n[http]\n{http}\n")
    async with running(load_config(cfg)) as d:
        assert d.http_url is not None
        yield d, d.http_url.rstrip("/")
