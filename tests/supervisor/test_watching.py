"""Watch triggers in the real daemon: real files, real inotify, the real journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.config.model import DaemonConfig
from jobd.supervisor.daemon import Daemon

from .conftest import running, settle

MakeConfig = Callable[..., DaemonConfig]


async def wait_runs(d: Daemon, job_id: str, n: int, within: float = 10) -> None:
    with anyio.fail_after(within):
        while (
            len(
                [
                    r
                    for r in await d.journal.list_runs(job_id=job_id, limit=None)
                    if r.state.finished
                ]
            )
            < n
        ):
            await d._wait_change()


async def test_a_change_runs_the_job_with_its_paths(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = make_config(f"""
        [jobs.ingest]
        watch = ["{inbox}/*.csv"]
        command = "echo \\"$JOBD_CHANGED_PATHS\\""
        """)
    async with running(config) as d:
        (inbox / "a.csv").write_text("1\n")
        (inbox / "ignored.txt").write_text("x")
        await wait_runs(d, "ingest", 1)
        await settle(d)
        [run] = await d.journal.list_runs(job_id="ingest", limit=None)
    assert run.trigger is TriggerKind.WATCH and run.state is RunState.SUCCEEDED
    assert run.changed_paths == (str(inbox / "a.csv"),)
    assert str(inbox / "a.csv") in d.log_path(run).read_text()


async def test_burst_straddling_a_running_job_loses_no_path(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = make_config(f"""
        [jobs.slow]
        watch = ["{inbox}"]
        command = "sleep 0.3"
        """)
    names = [inbox / f"f{i:04}" for i in range(1000)]
    async with running(config) as d:
        for i, p in enumerate(names):
            p.write_text(str(i))
            if i % 250 == 249:
                await anyio.sleep(0.35)  # the job is running between parts of the burst
        with anyio.fail_after(30):
            while True:
                await settle(d)
                runs = await d.journal.list_runs(job_id="slow", limit=None)
                seen = {p for r in runs for p in r.changed_paths}
                if seen >= {str(p) for p in names}:
                    break
                await anyio.sleep(0.05)
    assert 2 <= len(runs) < 100  # coalesced, yet every path reached a run


async def test_changes_while_down_trigger_at_start(make_config: MakeConfig, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "old.csv").write_text("before jobd ever ran")
    config = make_config(f"""
        [jobs.ingest]
        watch = ["{inbox}/*.csv"]
        command = "true"
        """)
    async with running(config) as d:
        await settle(d)
        assert await d.journal.list_runs(job_id="ingest", limit=None) == []  # baseline only
    (inbox / "new.csv").write_text("written while jobd was down")
    (inbox / "old.csv").write_text("changed while down, and longer")
    async with running(config) as d:
        await wait_runs(d, "ingest", 1)
        await settle(d)
        [run] = await d.journal.list_runs(job_id="ingest", limit=None)
    assert set(run.changed_paths) == {str(inbox / "new.csv"), str(inbox / "old.csv")}
    async with running(config) as d:  # nothing changed since: nothing runs
        await settle(d)
        assert len(await d.journal.list_runs(job_id="ingest", limit=None)) == 1
