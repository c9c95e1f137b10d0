"""Stale jobs: the pure judgement with hand-written instants, then a daemon on a fake clock
across two lives: on_failure fires once per episode, never again after a restart."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.config.model import DaemonConfig
from jobd.supervisor.clock import FakeClock
from jobd.supervisor.daemon import Daemon
from jobd.supervisor.stale import judge
from tests.control.conftest import REPO

from .conftest import T0, running, settle

MakeConfig = Callable[..., DaemonConfig]
H = 3600.0
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_not_stale_before_the_deadline() -> None:
    s = judge(
        stale_after=26 * H,
        last_success=NOON,
        first_seen=NOON - timedelta(days=9),
        now=datetime(2026, 3, 3, 13, 59, 59, tzinfo=UTC),
        fired_for=None,
    )
    assert not s.stale and not s.fire
    assert s.since == NOON and s.due_at == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


def test_stale_fires_once_per_episode() -> None:
    at = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
    first = judge(stale_after=26 * H, last_success=NOON, first_seen=NOON, now=at, fired_for=None)
    assert first.stale and first.fire
    again = judge(
        stale_after=26 * H,
        last_success=NOON,
        first_seen=NOON,
        now=at + timedelta(days=3),
        fired_for=NOON,
    )
    assert again.stale and not again.fire
    # a success starts a new episode, which fires again when it too goes stale
    later = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    new = judge(
        stale_after=26 * H,
        last_success=later,
        first_seen=NOON,
        now=datetime(2026, 3, 6, 10, 0, tzinfo=UTC),
        fired_for=NOON,
    )
    assert new.stale and new.fire and new.since == later


def test_a_job_that_never_succeeded_counts_from_first_seen() -> None:
    s = judge(
        stale_after=H,
        last_success=None,
        first_seen=NOON,
        now=datetime(2026, 3, 2, 13, 0, tzinfo=UTC),
        fired_for=None,
    )
    assert s.stale and s.fire and s.since == NOON


async def _jobctl(d: Daemon, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = await anyio.run_process(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(d.config.socket), *args], env=env
    )
    return done.stdout.decode()


async def _wait_for(d: Daemon, predicate: Callable[[], object], within: float = 10) -> None:
    with anyio.fail_after(within):
        while not predicate():
            await d._wait_change()


async def test_a_stale_job_fires_once_across_restarts(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    config = make_config(f"""
        [jobs.backup]
        description = "Nightly backup"
        command = "true"
        stale_after = "26h"
        on_failure = ["notify"]

        [jobs.notify]
        command = 'echo "$JOBD_FAILED_JOB $JOBD_FAILED_STATE" >> {ledger}'
        """)
    clock = FakeClock(T0)
    async with running(config, clock=clock, control=True) as d:
        await d.run_job("backup", {})
        await settle(d)
        await _wait_for(d, lambda: "backup" in d.alerts.staleness)
        assert not d.alerts.staleness["backup"].stale
        clock.advance(25 * H)
        await anyio.sleep(0.05)
        await settle(d)
        assert not ledger.exists()
        clock.advance(1 * H + 1)
        await _wait_for(d, lambda: ledger.exists())
        await settle(d)
        assert (await d.status())["stale"] == ["backup"]
        [listed] = [j for j in await d.list_jobs() if j["job_id"] == "backup"]
        assert listed["stale"] is True and listed["description"] == "Nightly backup"
        text = d.metrics.render_metrics().decode()
        assert 'jobd_job_stale{job="backup"} 1.0' in text
        listed_text = await _jobctl(d, "list")
        [row] = [line for line in listed_text.splitlines() if line.startswith("backup")]
        assert row.endswith("stale")
        assert re.search(r"^stale\s+backup$", await _jobctl(d, "status"), re.M)
        clock.advance(5 * H)  # still the same episode
        await anyio.sleep(0.05)
        await settle(d)
    assert ledger.read_text() == "backup stale\n"

    # A second life, later still: the episode already fired, so nothing fires.
    clock = FakeClock(T0 + timedelta(hours=40))
    async with running(config, clock=clock) as d:
        await _wait_for(d, lambda: "backup" in d.alerts.staleness)
        assert d.alerts.staleness["backup"].stale
        await settle(d)
        assert ledger.read_text() == "backup stale\n"
        # A success ends the episode; going stale again fires again, once.
        await d.run_job("backup", {})
        await settle(d)
        await _wait_for(d, lambda: not d.alerts.staleness["backup"].stale)
        clock.advance(27 * H)
        await _wait_for(d, lambda: ledger.read_text().count("\n") == 2)
        await settle(d)
        hooks = await d.journal.list_runs(job_id="notify", limit=None)
        assert [r.trigger for r in hooks] == [TriggerKind.HOOK] * 2
        assert all(r.state is RunState.SUCCEEDED for r in hooks)
        # A paused job is expected not to succeed: it is not stale.
        await d.pause("backup")
        await _wait_for(d, lambda: "backup" not in d.alerts.staleness)
        assert (await d.status())["stale"] == []
