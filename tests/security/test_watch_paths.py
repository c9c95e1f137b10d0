"""Watches never leave their declared roots through symlinks, live or after a restart."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio

from jobd.config.model import DaemonConfig
from jobd.supervisor.daemon import Daemon
from tests.supervisor.conftest import make_config, running, settle

__all__ = ["make_config"]  # the fixture, shared with tests/supervisor

MakeConfig = Callable[..., DaemonConfig]


async def _paths_after(d: Daemon, job_id: str, marker: Path) -> set[str]:
    """Every changed path of the job's runs, once ``marker`` (a control change) has run."""
    await anyio.Path(marker).write_text("control")
    with anyio.fail_after(15):
        while True:
            runs = await d.journal.list_runs(job_id=job_id, limit=None)
            seen = {p for r in runs if r.state.finished for p in r.changed_paths}
            if str(marker) in seen:
                break
            await d._wait_change()
    await settle(d)
    runs = await d.journal.list_runs(job_id=job_id, limit=None)
    return {p for r in runs for p in r.changed_paths}


async def test_symlinks_inside_the_tree_are_not_followed(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    drop, outside = tmp_path / "drop", tmp_path / "outside"
    drop.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("1")
    (drop / "link").symlink_to(outside)
    config = make_config(f"""
        [jobs.ingest]
        watch = ["{drop}/**"]
        command = "true"
        """)
    async with running(config) as d:
        await settle(d)
        (outside / "secret.csv").write_text("changed live")
        (outside / "new.csv").write_text("new live")
        (drop / "late").symlink_to(outside)  # a link made live: itself a change, not followed
        live = await _paths_after(d, "ingest", drop / "a.csv")
    assert live == {str(drop / "a.csv"), str(drop / "late")}
    (outside / "secret.csv").write_text("changed while down, longer")
    (outside / "down.csv").write_text("new while down")
    async with running(config) as d:
        after = await _paths_after(d, "ingest", drop / "b.csv")
    assert after == live | {str(drop / "b.csv")}  # nothing below the links, after a restart


async def test_a_watched_directory_swapped_for_a_symlink_is_not_followed(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    inbox, secret = tmp_path / "drop" / "in", tmp_path / "secret"
    inbox.mkdir(parents=True)
    secret.mkdir()
    config = make_config(f"""
        [jobs.ingest]
        watch = ["{inbox}/*.csv"]
        command = "true"
        """)
    async with running(config) as d:
        await settle(d)
        os.rename(inbox, tmp_path / "old")
        inbox.symlink_to(secret)
        await anyio.sleep(0.2)
        (secret / "key.csv").write_text("live")
        await anyio.sleep(0.2)
        inbox.unlink()
        inbox.mkdir()
        live = await _paths_after(d, "ingest", inbox / "ok.csv")
    assert live == {str(inbox / "ok.csv")}
    inbox.rename(tmp_path / "older")
    inbox.symlink_to(secret)  # swapped while the daemon is down: refused at load as well
    (secret / "key2.csv").write_text("while down")
    async with running(config) as d:
        await settle(d)
        (secret / "key3.csv").write_text("live again")
        inbox.unlink()
        inbox.mkdir()
        after = await _paths_after(d, "ingest", inbox / "ok2.csv")
    # ok.csv went with the directory swapped away: its removal is a change too
    assert after == {str(inbox / "ok.csv"), str(inbox / "ok2.csv")}
