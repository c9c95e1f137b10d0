"""The jobs directory's watch: a real directory, real inotify, a real daemon that reloads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from jobd.config.model import DaemonConfig
from jobd.supervisor import services
from jobd.supervisor.daemon import Daemon
from jobd.supervisor.dirwatch import DirWatch
from jobd.supervisor.services import jobs_dir_loop


class Reloads:
    def __init__(self) -> None:
        self.count = 0
        self._changed = anyio.Event()

    async def __call__(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = anyio.Event()

    async def next(self) -> None:
        with anyio.fail_after(5):
            await self._changed.wait()


async def test_a_new_file_reloads_and_quiet_does_not(tmp_path: Path) -> None:
    reloads = Reloads()
    async with anyio.create_task_group() as tg:
        await tg.start(jobs_dir_loop, tmp_path, reloads)
        await anyio.sleep(0.3)
        assert reloads.count == 0  # nothing changed: nothing reloads
        (tmp_path / "a.toml").write_text('[jobs.a]\ncommand = "true"\n')
        await reloads.next()
        (tmp_path / "a.toml").unlink()
        await reloads.next()
        (tmp_path / "b.tmp").write_text("x")
        (tmp_path / "b.tmp").rename(tmp_path / "b.toml")  # an editor's save
        await reloads.next()
        tg.cancel_scope.cancel()


async def test_a_change_below_the_directory_is_not_a_change(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with DirWatch(tmp_path) as w:
        (tmp_path / "sub" / "x.toml").write_text("")  # job files are read from the top only
        assert not w.drain()
        (tmp_path / "y.toml").write_text("")
        assert w.drain() and not w.gone


def test_a_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"watch .*nope"):
        DirWatch(tmp_path / "nope")


async def test_the_directory_replaced_is_watched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "REWATCH", 0.05)
    jobs = tmp_path / "jobs.d"
    reloads = Reloads()
    async with anyio.create_task_group() as tg:
        await tg.start(jobs_dir_loop, jobs, reloads)
        shutil.rmtree(jobs)
        await reloads.next()  # gone: the daemon reloads (and keeps its jobs)
        jobs.mkdir()
        await reloads.next()  # back: reloaded once it is watched again
        (jobs / "a.toml").write_text("")
        await reloads.next()
        tg.cancel_scope.cancel()


async def test_the_daemon_loads_a_job_file_dropped_in(
    make_config: Callable[..., DaemonConfig],
) -> None:
    config = make_config('[jobs.hello]\ncron = "0 0 1 1 *"\ncommand = ["true"]\n')
    daemon = Daemon(config, control=False, handle_signals=False)  # watches its jobs_dir
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(10):
            await tg.start(daemon.run)
        try:
            assert set(daemon.loaded.jobs) == {"hello"}
            (config.jobs_dir / "more.toml").write_text(
                '[jobs.more]\ncron = "0 0 1 1 *"\ncommand = ["true"]\n'
            )
            with anyio.fail_after(10):
                while "more" not in daemon.loaded.jobs:  # noqa: ASYNC110 - no event says it
                    await anyio.sleep(0.01)
        finally:
            daemon.stop()
