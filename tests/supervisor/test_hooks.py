"""Hooks: on_failure, on_success and on_retry run their jobs with the triggering run's facts;
the decision is pure, the runs are real processes in a real daemon."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from jobd._enums import RunState, TriggerKind
from jobd.config.model import CommandAction, DaemonConfig, JobDef, JobSource
from jobd.journal.abc import RunRecord
from jobd.supervisor.hooks import HookEvent, event_for, hook_env, plan_hooks

from .conftest import running, settle

MakeConfig = Callable[..., DaemonConfig]
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _job(**kw: object) -> JobDef:
    return JobDef(
        id="etl",
        source=JobSource(file=Path("x.toml"), line=1),
        action=CommandAction(command="true"),
        **kw,  # type: ignore[arg-type]
    )


def _run(state: RunState, **kw: object) -> RunRecord:
    return RunRecord(
        run_id=7,
        job_id="etl",
        trigger=TriggerKind.CRON,
        state=state,
        queued_at=T,
        **kw,  # type: ignore[arg-type]
    )


def test_which_states_fire_which_hooks() -> None:
    assert event_for(RunState.FAILED) is HookEvent.FAILED
    assert event_for(RunState.TIMED_OUT) is HookEvent.FAILED
    assert event_for("upstream_failed") is HookEvent.FAILED  # Airflow's, counted as failed
    assert event_for(RunState.SUCCEEDED) is HookEvent.SUCCEEDED
    assert event_for(RunState.CANCELLED) is None
    assert event_for(RunState.SKIPPED) is None


def test_plan_carries_the_facts() -> None:
    job = _job(on_failure=("mail", "page"), on_success=("ok",))
    run = _run(
        RunState.FAILED, exit_code=3, log_path="/var/log/7.log", attempt=2, message="exit code 3"
    )
    calls = plan_hooks(job, run, HookEvent.FAILED)
    assert [c.job_id for c in calls] == ["mail", "page"]
    assert calls[0].facts == {
        "JOBD_FAILED_JOB": "etl",
        "JOBD_FAILED_RUN_ID": "7",
        "JOBD_FAILED_STATE": "failed",
        "JOBD_FAILED_EXIT_CODE": "3",
        "JOBD_FAILED_LOG": "/var/log/7.log",
        "JOBD_FAILED_ATTEMPT": "2",
        "JOBD_FAILED_MESSAGE": "exit code 3",
    }
    [ok] = plan_hooks(job, _run(RunState.SUCCEEDED, exit_code=0), HookEvent.SUCCEEDED)
    assert ok.job_id == "ok" and ok.facts["JOBD_SUCCEEDED_STATE"] == "succeeded"
    assert plan_hooks(job, run, None) == []
    assert plan_hooks(None, run, HookEvent.FAILED) == []


def test_a_hook_run_sets_off_no_hooks() -> None:
    job = _job(on_failure=("mail",))
    hook_run = _run(RunState.FAILED).evolve(trigger=TriggerKind.HOOK)
    assert plan_hooks(job, hook_run, HookEvent.FAILED) == []


def test_only_hook_runs_export_their_facts() -> None:
    params = {"JOBD_FAILED_JOB": "etl", "other": "x"}
    assert hook_env(_run(RunState.QUEUED, params=params).evolve(trigger=TriggerKind.HOOK)) == {
        "JOBD_FAILED_JOB": "etl"
    }
    assert hook_env(_run(RunState.QUEUED, params=params)) == {}


DUMP = (
    'env | grep -E "^JOBD_(FAILED|SUCCEEDED|RETRIED)_|^JOBD_TRIGGER=" | sort '
    "> {out}/$JOBD_RUN_ID.env"
)


def _facts(out: Path) -> list[dict[str, str]]:
    return [
        dict(line.split("=", 1) for line in f.read_text().splitlines())
        for f in sorted(out.glob("*.env"), key=lambda p: int(p.stem))
    ]


def _read(path: str) -> str:
    return Path(path).read_text()


async def test_on_failure_runs_the_hook_with_the_facts(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    out = tmp_path / "facts"
    out.mkdir()
    config = make_config(f"""
        [jobs.broken]
        command = "echo oops; exit 3"
        on_failure = ["notify"]
        on_success = ["cheer"]

        [jobs.notify]
        command = '{DUMP.format(out=out)}'

        [jobs.cheer]
        command = '{DUMP.format(out=out)}'
        """)
    async with running(config) as d:
        run = await d.run_job("broken", {})
        await settle(d)
        [facts] = _facts(out)
        failed = await d.get_run(run.run_id)
        assert facts == {
            "JOBD_TRIGGER": "hook",
            "JOBD_FAILED_JOB": "broken",
            "JOBD_FAILED_RUN_ID": str(run.run_id),
            "JOBD_FAILED_STATE": "failed",
            "JOBD_FAILED_EXIT_CODE": "3",
            "JOBD_FAILED_LOG": str(d.log_path(failed)),
            "JOBD_FAILED_ATTEMPT": "1",
            "JOBD_FAILED_MESSAGE": "exit code 3",
        }
        assert "oops" in _read(facts["JOBD_FAILED_LOG"])
        [hook] = await d.journal.list_runs(job_id="notify")
        assert hook.trigger is TriggerKind.HOOK and hook.state is RunState.SUCCEEDED
        assert await d.journal.list_runs(job_id="cheer") == []


async def test_on_success_and_on_retry(make_config: MakeConfig, tmp_path: Path) -> None:
    out = tmp_path / "facts"
    out.mkdir()
    flag = tmp_path / "flag"
    config = make_config(f"""
        [jobs.flaky]
        command = "test -e {flag} || {{ touch {flag}; exit 5; }}"
        retries = 1
        retry_delay = "10ms"
        on_retry = ["note"]
        on_success = ["note"]
        on_failure = ["note"]

        [jobs.note]
        command = '{DUMP.format(out=out)}'
        """)
    async with running(config) as d:
        run = await d.run_job("flaky", {})
        await settle(d)
        retried, succeeded = _facts(out)
        assert retried["JOBD_RETRIED_JOB"] == "flaky"
        assert retried["JOBD_RETRIED_RUN_ID"] == str(run.run_id)
        assert retried["JOBD_RETRIED_STATE"] == "failed"
        assert retried["JOBD_RETRIED_EXIT_CODE"] == "5"
        assert retried["JOBD_RETRIED_ATTEMPT"] == "1"
        assert succeeded["JOBD_SUCCEEDED_STATE"] == "succeeded"
        assert succeeded["JOBD_SUCCEEDED_ATTEMPT"] == "2"
        assert succeeded["JOBD_SUCCEEDED_EXIT_CODE"] == "0"


async def test_a_failing_hook_does_not_notify_itself_and_paused_hooks_do_not_run(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    out = tmp_path / "facts"
    out.mkdir()
    config = make_config(f"""
        [jobs.a]
        command = "exit 1"
        on_failure = ["b"]

        [jobs.b]
        command = '{DUMP.format(out=out)}; exit 1'
        on_failure = ["a"]
        """)
    async with running(config) as d:
        await d.run_job("a", {})
        await settle(d)
        assert len(_facts(out)) == 1  # b ran once, and its failure set off nothing
        assert len(await d.journal.list_runs(job_id="a")) == 1
        await d.pause("b")
        await d.run_job("a", {})
        await settle(d)
        assert len(_facts(out)) == 1
        assert any("not run: the job is paused" in line for line in d.decisions.of("b"))


async def test_upstream_failed_fires_on_failure(make_config: MakeConfig, tmp_path: Path) -> None:
    out = tmp_path / "facts"
    out.mkdir()
    config = make_config(f"""
        [jobs.extract]
        command = "exit 1"

        [jobs.load]
        needs = ["extract"]
        command = "true"
        on_failure = ["notify"]

        [jobs.notify]
        command = '{DUMP.format(out=out)}'
        """)
    async with running(config) as d:
        await d.run_job("extract", {})
        await settle(d)
        [load] = await d.journal.list_runs(job_id="load")
        assert str(load.state) == "upstream_failed"
        [facts] = _facts(out)
        assert facts["JOBD_FAILED_JOB"] == "load"
        assert facts["JOBD_FAILED_RUN_ID"] == str(load.run_id)
        assert facts["JOBD_FAILED_STATE"] == "upstream_failed"
        assert facts["JOBD_FAILED_EXIT_CODE"] == ""
