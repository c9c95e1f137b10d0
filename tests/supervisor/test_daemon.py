"""The daemon end to end in one event loop: triggers, limits, overlap, retries, timeouts,
conditions, stages, time slots with an injected clock, reload."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JobNotFound
from jobd.config.model import DaemonConfig
from jobd.journal.abc import RunRecord
from jobd.supervisor.clock import FakeClock
from jobd.supervisor.daemon import Daemon
from jobd.supervisor.events import Trigger

from .conftest import T0, running, settle, started

MakeConfig = Callable[..., DaemonConfig]


async def finished(daemon: Daemon, job_id: str) -> list[RunRecord]:
    runs = await daemon.journal.list_runs(job_id=job_id, limit=None)
    return sorted(runs, key=lambda r: r.run_id)


async def test_manual_run_journals_and_logs(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.hello]
        command = ["sh", "-c", "echo hello from $JOBD_JOB_ID run $JOBD_RUN_ID attempt $JOBD_ATTEMPT"]
        """)
    async with running(config) as d:
        run = await d.run_job("hello", {})
        assert run.state is RunState.QUEUED and run.trigger is TriggerKind.MANUAL
        await settle(d)
        [done] = await finished(d, "hello")
        assert done.state is RunState.SUCCEEDED and done.exit_code == 0
        assert done.started_at is not None and done.finished_at is not None
        text = d.log_path(done).read_text()
        assert f"hello from hello run {run.run_id} attempt 1" in text
        with pytest.raises(JobNotFound):
            await d.run_job("nope", {})
        with pytest.raises(ValueError, match="no param"):
            await d.run_job("hello", {"x": "1"})


async def test_max_parallel_is_never_exceeded(make_config: MakeConfig) -> None:
    config = make_config(
        """
        [jobs.work]
        command = "sleep 0.1"
        overlap = "allow"
        """,
        "max_parallel = 2\n",
    )
    async with running(config) as d:
        peak = 0
        async with d.subscribe() as events:
            for _ in range(20):
                await d.run_job("work", {})

            async def watch() -> None:
                nonlocal peak
                async for _ in events:
                    peak = max(peak, len(d.active))

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await settle(d, 30)
                tg.cancel_scope.cancel()
        runs = await finished(d, "work")
        assert len(runs) == 20 and all(r.state is RunState.SUCCEEDED for r in runs)
        assert peak == 2
        # Never more than 2 at once, read from the journal's own times:
        spans = [(r.started_at, r.finished_at) for r in runs]
        for s, _ in spans:
            assert s is not None
            overlapping = sum(1 for a, b in spans if a is not None and b is not None and a <= s < b)
            assert overlapping <= 2


async def test_priority_decides_when_slots_are_scarce(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    config = make_config(
        f"""
        [jobs.blocker]
        command = "sleep 0.3"
        [jobs.low]
        command = "echo low >> {order}"
        overlap = "allow"
        [jobs.high]
        command = "echo high >> {order}"
        priority = 10
        overlap = "allow"
        """,
        "max_parallel = 1\n",
    )
    async with running(config) as d:
        blocker = await d.run_job("blocker", {})
        await started(d, blocker.run_id)
        for job in ("low", "high", "low", "high", "low", "high"):
            await d.run_job(job, {})
        await settle(d)
    assert order.read_text().split() == ["high"] * 3 + ["low"] * 3


async def test_pool_limit(make_config: MakeConfig) -> None:
    config = make_config(
        """
        [jobs.a]
        command = "sleep 0.05"
        pool = "db"
        overlap = "allow"
        [jobs.b]
        command = "sleep 0.05"
        pool = "db"
        overlap = "allow"
        [jobs.free]
        command = "sleep 0.3"
        """,
        "max_parallel = 4\n[pools.db]\nmax_parallel = 1\n",
    )
    async with running(config) as d:
        await d.run_job("free", {})
        for _ in range(3):
            await d.run_job("a", {})
            await d.run_job("b", {})
        await settle(d)
        runs = await d.journal.list_runs(limit=None)
    pooled = sorted((r.started_at, r.finished_at) for r in runs if r.job_id != "free")
    assert len(pooled) == 6
    for (_, end), (start, _) in itertools.pairwise(pooled):
        assert end is not None and start is not None and end <= start  # pool of 1: serial
    [free] = [r for r in runs if r.job_id == "free"]
    assert free.started_at is not None and pooled[1][0] is not None
    assert free.started_at < pooled[1][0]  # the pool did not hold back the free job


@pytest.mark.parametrize("overlap", ["queue", "skip", "replace", "allow"])
async def test_overlap_policies(make_config: MakeConfig, overlap: str) -> None:
    config = make_config(f"""
        [jobs.slow]
        command = "sleep 0.5"
        overlap = "{overlap}"
        kill_grace = "1s"
        """)
    async with running(config) as d:
        first = await d.run_job("slow", {})
        await started(d, first.run_id)
        for _ in range(3):
            await d.run_job("slow", {})
        await settle(d)
        runs = await finished(d, "slow")
        states = [r.state for r in runs]
    if overlap == "queue":  # three triggers folded into one pending run
        assert states == [RunState.SUCCEEDED, RunState.SUCCEEDED]
    elif overlap == "skip":
        assert states == [RunState.SUCCEEDED] + [RunState.SKIPPED] * 3
        assert runs[1].message is not None and "overlap = skip" in runs[1].message
    elif overlap == "replace":  # each trigger replaces the run it finds (queued ones fold)
        assert len(states) >= 2
        assert states[:-1] == [RunState.CANCELLED] * (len(states) - 1)
        assert states[-1] is RunState.SUCCEEDED
    else:
        assert states == [RunState.SUCCEEDED] * 4


async def test_retries_then_fail(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.flaky]
        command = "echo attempt $JOBD_ATTEMPT; exit 3"
        retries = 2
        retry_delay = "10ms"
        """)
    async with running(config) as d:
        await d.run_job("flaky", {})
        await settle(d)
        [run] = await finished(d, "flaky")
    assert run.state is RunState.FAILED and run.exit_code == 3 and run.attempt == 3
    text = d.log_path(run).read_text()
    assert all(f"attempt {n}\n" in text for n in (1, 2, 3))


async def test_retry_until_success(make_config: MakeConfig, tmp_path: Path) -> None:
    marker = tmp_path / "count"
    config = make_config(f"""
        [jobs.second_time]
        command = "echo x >> {marker}; test $JOBD_ATTEMPT -ge 2"
        retries = 5
        retry_delay = "10ms"
        """)
    async with running(config) as d:
        await d.run_job("second_time", {})
        await settle(d)
        [run] = await finished(d, "second_time")
    assert run.state is RunState.SUCCEEDED and run.attempt == 2
    assert marker.read_text().count("x") == 2


async def test_timeout_and_cancel(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.stuck]
        command = "sleep 30"
        timeout = "200ms"
        kill_grace = "200ms"
        [jobs.long]
        command = ["sleep", "30"]
        """)
    async with running(config) as d:
        await d.run_job("stuck", {})
        run = await d.run_job("long", {})
        await started(d, run.run_id)
        assert await d.cancel_job("long") == [run.run_id]
        await settle(d)
        [stuck] = await finished(d, "stuck")
        [long] = await finished(d, "long")
    assert stuck.state is RunState.TIMED_OUT
    assert long.state is RunState.CANCELLED


async def test_condition_and_params(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.deploy]
        params = { env = "staging" }
        condition = "${{ params.env == 'prod' }}"
        command = ["echo", "deploying to ${{ params.env }}"]
        """)
    async with running(config) as d:
        await d.run_job("deploy", {})
        await d.run_job("deploy", {"env": "prod"})
        await settle(d)
        skipped, ran = await finished(d, "deploy")
    assert skipped.state is RunState.SKIPPED and "condition" in (skipped.message or "")
    assert ran.state is RunState.SUCCEEDED
    assert "deploying to prod" in d.log_path(ran).read_text()


async def test_stages_continue_on_error_and_stop(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.build]
        stages = [
          { name = "lint", command = "exit 1", continue_on_error = true },
          { name = "compile", command = "echo compiled" },
          { name = "test", command = "exit 4" },
          { name = "never", command = "echo never" },
        ]
        """)
    async with running(config) as d:
        await d.run_job("build", {})
        await settle(d)
        [run] = await finished(d, "build")
    assert run.state is RunState.FAILED and run.exit_code == 4
    assert run.message is not None and "stage test" in run.message
    text = d.log_path(run).read_text()
    assert "compiled" in text and "never\n" not in text


async def test_outputs_are_journaled(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.produce]
        command = "echo rows=42 >> $JOBD_OUTPUT; echo 'note=a=b' >> $JOBD_OUTPUT"
        """)
    async with running(config) as d:
        await d.run_job("produce", {})
        await settle(d)
        [run] = await finished(d, "produce")
    assert run.outputs == {"rows": "42", "note": "a=b"}


async def test_time_slots_with_an_injected_clock(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.tick]
        every = "1m"
        command = "true"
        overlap = "allow"
        [jobs.quarter]
        cron = "*/15 * * * *"
        command = "true"
        """)
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        await settle(d)
        for _ in range(30):  # 30 minutes, a minute at a time
            clock.advance(60)
            await settle(d)
        ticks = await finished(d, "tick")
        quarters = await finished(d, "quarter")
    assert len(ticks) == 30
    slots = [r.scheduled_for for r in ticks]
    assert all(s is not None for s in slots)
    assert all((b - a) == timedelta(minutes=1) for a, b in itertools.pairwise(slots))  # type: ignore[operator]
    assert all(r.trigger is TriggerKind.EVERY and r.state is RunState.SUCCEEDED for r in ticks)
    assert [r.scheduled_for for r in quarters] == [
        T0 + timedelta(minutes=15),
        T0 + timedelta(minutes=30),
    ]
    assert all(r.trigger is TriggerKind.CRON for r in quarters)


async def test_jobs_due_at_one_instant_are_admitted_in_one_batch(
    make_config: MakeConfig,
) -> None:
    # 20 jobs whose slots fall on the same instant: one intake batch, so one queued commit
    config = make_config(
        "".join(f'[jobs.j{i}]\ncron = "* * * * *"\ncommand = "true"\n' for i in range(20))
    )
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        await settle(d)
        batches: list[list[str]] = []
        accept, seen = d.intake.accept, anyio.Event()

        async def observed(batch: Sequence[Trigger]) -> None:
            batches.append(sorted(t.job_id for t in batch))
            seen.set()
            await accept(batch)

        d.intake.accept = observed  # type: ignore[method-assign]
        clock.advance(60)
        with anyio.fail_after(5):  # the timer wakes on its own turn of the loop
            await seen.wait()
        await settle(d)
        runs = [r for i in range(20) for r in await finished(d, f"j{i}")]
    assert batches == [sorted(f"j{i}" for i in range(20))]
    assert len(runs) == 20
    assert {r.scheduled_for for r in runs} == {T0 + timedelta(minutes=1)}
    assert {r.state for r in runs} == {RunState.SUCCEEDED}


@pytest.mark.parametrize(
    ("catchup", "overlap", "expected"),
    [("all", "allow", 10), ("all", "queue", 10), ("latest", "allow", 1), ("none", "allow", 0)],
)
async def test_catch_up_after_downtime(
    make_config: MakeConfig, catchup: str, overlap: str, expected: int
) -> None:
    # catchup = all gives each missed slot its own run, also with overlap = queue
    config = make_config(f"""
        [jobs.tick]
        every = "1m"
        command = "true"
        overlap = "{overlap}"
        catchup = "{catchup}"
        """)
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        await settle(d)  # first seen: the cursor starts now
    clock.advance(10 * 60 + 1)  # ten slots fall while the daemon is down
    async with running(config, clock=clock) as d:
        await settle(d)
        runs = await finished(d, "tick")
    assert len(runs) == expected
    assert all(r.trigger is TriggerKind.CATCHUP for r in runs)
    if expected:
        assert runs[-1].scheduled_for is not None
        assert T0 + timedelta(minutes=9) < runs[-1].scheduled_for <= T0 + timedelta(minutes=11)


async def test_paused_job_persists_and_skips_slots(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.tick]
        every = "1m"
        command = "true"
        """)
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        await settle(d)
        await d.pause("tick")
    async with running(config, clock=clock) as d:
        assert d.paused == {"tick"}
        clock.advance(5 * 60)
        await settle(d)
        assert await finished(d, "tick") == []
        await d.resume("tick")
        clock.advance(61)
        await settle(d)
        assert len(await finished(d, "tick")) == 1


async def test_reload_keeps_a_bad_files_jobs(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.a]
        command = "true"
        """)
    extra = config.jobs_dir / "more.toml"
    async with running(config) as d:
        extra.write_text('[jobs.b]\ncommand = "true"\n')
        status = await d.reload()
        assert status["jobs_loaded"] == 2 and status["invalid_files"] == []
        extra.write_text('[jobs.b]\ncommand = "true"\ncron = "61 * * * *"\n')
        status = await d.reload()
        assert set(d.jobset.jobs) == {"a", "b"}  # b keeps its last good definition
        [bad] = status["invalid_files"]
        assert bad["file"].endswith("more.toml") and "61" in bad["errors"][0]
        extra.unlink()
        status = await d.reload()
        assert set(d.jobset.jobs) == {"a"} and status["invalid_files"] == []


async def test_why_explains_a_skip(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.slow]
        command = "sleep 0.3"
        overlap = "skip"
        """)
    async with running(config) as d:
        first = await d.run_job("slow", {})
        await started(d, first.run_id)
        await d.run_job("slow", {})
        await settle(d)
        why = await d.why("slow")
    text = "\n".join(why["lines"])
    assert "skipped" in text and "overlap = skip" in text
    assert "runs only when asked" in text


async def test_retention_prunes_runs_and_logs(make_config: MakeConfig) -> None:
    config = make_config(
        """
        [jobs.chatty]
        command = "echo hi"
        overlap = "allow"
        """,
        "retention_runs = 2\n",
    )
    async with running(config) as d:
        for _ in range(5):
            await d.run_job("chatty", {})
            await settle(d)
        runs = await finished(d, "chatty")
        assert len(runs) == 5
        assert await d.prune() == 3
        kept = await finished(d, "chatty")
    assert [r.run_id for r in kept] == [r.run_id for r in runs[-2:]]
    assert [d.log_path(r).exists() for r in runs] == [False, False, False, True, True]
