"""The supervisor's pure plans: what recovery does with the runs an earlier life left, and
what a reload changed. Expected values written by hand from the contract (CONTRACT.md:
"at least once": an interrupted run re-runs as ``recovery`` with its next attempt)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobd._enums import RunState, TriggerKind
from jobd.config.model import (
    Action,
    CommandAction,
    ContainerAction,
    DaemonConfig,
    JobDef,
    JobSource,
    PoolConfig,
)
from jobd.executors.abc import RunRef
from jobd.journal.abc import RunRecord
from jobd.supervisor.recovery import GONE_JOB_GRACE, Leftover, RecoveryPlan, plan_recovery
from jobd.supervisor.reload import JobsDiff, diff_jobs, merge_config
from jobd.triggers.cadence import CadenceTrigger

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
SRC = JobSource(file=Path("/etc/jobd/jobs.d/a.toml"), line=1)


TRUE = CommandAction(command="true")


def job(job_id: str, action: Action = TRUE, **kw: Any) -> JobDef:
    return JobDef(id=job_id, source=SRC, action=action, **kw)


def rec(run_id: int, job_id: str, state: RunState, **kw: Any) -> RunRecord:
    return RunRecord(
        run_id=run_id, job_id=job_id, trigger=TriggerKind.CRON, state=state, queued_at=T0, **kw
    )


def test_an_interrupted_run_has_its_leftovers_stopped_and_runs_again() -> None:
    running = rec(
        7, "a", RunState.RUNNING, attempt=2, pid=4242, pid_start=99, started_at=T0, message=None
    )
    plan = plan_recovery([running], {"a": job("a", kill_grace=3.0)}, now=NOW, instance="/j.db")
    again = RunRecord(
        run_id=7,
        job_id="a",
        trigger=TriggerKind.RECOVERY,
        state=RunState.QUEUED,
        queued_at=T0,
        attempt=3,
        started_at=T0,
        message="re-run: the daemon stopped during attempt 2",
    )
    assert plan == RecoveryPlan(
        stop=(
            Leftover(
                ref=RunRef(
                    run_id=7,
                    instance="/j.db",
                    pid=4242,
                    pid_start=99,
                    action=CommandAction(command="true"),
                ),
                grace=3.0,
            ),
        ),
        writes=(again,),
        queue=(again,),
        notes=(("a", "run 7 re-queued as recovery (attempt 3)"),),
    )


def test_a_queued_run_is_queued_again_unchanged() -> None:
    queued = rec(8, "a", RunState.QUEUED)
    assert plan_recovery([queued], {"a": job("a")}, now=NOW, instance="i") == RecoveryPlan(
        queue=(queued,)
    )


def test_runs_of_a_job_that_is_gone_are_cancelled_leftovers_still_stopped() -> None:
    running = rec(1, "gone", RunState.RUNNING, pid=10, pid_start=5)
    queued = rec(2, "gone", RunState.QUEUED)
    plan = plan_recovery([running, queued], {}, now=NOW, instance="i")
    assert plan.stop == (
        Leftover(ref=RunRef(run_id=1, instance="i", pid=10, pid_start=5), grace=GONE_JOB_GRACE),
    )
    assert plan.writes == (
        running.evolve(
            state=RunState.CANCELLED, finished_at=NOW, message="interrupted, and its job is gone"
        ),
        queued.evolve(
            state=RunState.CANCELLED, finished_at=NOW, message="queued, but its job is gone"
        ),
    )
    assert plan.queue == () and plan.notes == ()


def test_a_gone_job_does_not_stop_the_plan() -> None:
    runs = [rec(1, "gone", RunState.QUEUED), rec(2, "a", RunState.QUEUED)]
    assert [
        r.run_id for r in plan_recovery(runs, {"a": job("a")}, now=NOW, instance="i").queue
    ] == [2]


def test_the_queue_keeps_the_journal_order_and_a_container_job_names_its_action() -> None:
    image = ContainerAction(image="alpine:3")
    runs = [
        rec(3, "b", RunState.QUEUED),
        rec(4, "c", RunState.RUNNING),
        rec(5, "b", RunState.QUEUED),
    ]
    plan = plan_recovery(runs, {"b": job("b"), "c": job("c", action=image)}, now=NOW, instance="i")
    assert [r.run_id for r in plan.queue] == [3, 4, 5]
    assert [s.ref.action for s in plan.stop] == [image]


def every(job_id: str, text: str) -> CadenceTrigger:
    return CadenceTrigger.parse(job_id, text, "UTC")


def test_the_job_set_diff() -> None:
    old = {
        "same": job("same"),
        "gone": job("gone"),
        "env": job("env", env={"A": "1"}),
        "timed": job("timed", time_triggers=(every("timed", "1h"),)),
    }
    new = {
        "same": job("same"),
        "env": job("env", env={"A": "2"}),
        "timed": job("timed", time_triggers=(every("timed", "2h"),)),
        "new": job("new", time_triggers=(every("new", "1h"),)),
    }
    assert diff_jobs(old, new) == JobsDiff(
        gone=frozenset({"gone"}),
        changed=frozenset({"env", "timed", "new"}),
        retimed=frozenset({"timed"}),
    )
    assert diff_jobs(old, old) == JobsDiff(
        gone=frozenset(), changed=frozenset(), retimed=frozenset()
    )


def test_a_reload_takes_the_limits_and_leaves_the_paths_for_the_next_start() -> None:
    current = DaemonConfig(
        jobs_dir=Path("/a/jobs.d"),
        state_dir=Path("/a/var"),
        socket=Path("/a/s"),
        path=Path("/a/jobd.toml"),
    )
    changes: dict[str, Any] = {
        "max_parallel": 3,
        "pools": {"db": PoolConfig(name="db", max_parallel=1)},
        "shutdown_grace": 9.0,
        "timezone": "Europe/Berlin",
        "log_max_bytes": 1024,
        "retention_runs": 5,
        "retention_days": 2.0,
    }
    fresh = replace(current, jobs_dir=Path("/b/jobs.d"), socket=Path("/b/s"), **changes)
    merged, later = merge_config(current, fresh)
    assert later == ["daemon.jobs_dir", "daemon.socket"]  # as the config file names them
    assert merged == replace(current, **changes)
