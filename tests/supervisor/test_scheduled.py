"""[tool.scheduled] jobs of a pyproject in the real daemon: every period missed while the
daemon was down runs once, oldest first; two projects with the same job name run side by
side. Time is an injected clock: no real waits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from jobd._enums import RunState, TriggerKind
from jobd.config.model import DaemonConfig
from jobd.supervisor.clock import FakeClock

from .conftest import T0, running, settle

MakeConfig = Callable[..., DaemonConfig]


def project(root: Path, name: str, jobs_dir: Path, every: str = "minute") -> Path:
    """A project with ``app/jobs.py`` and a ``[tool.scheduled.cleanup]`` job, linked into
    ``jobs_dir`` as the spec's users do."""
    (root / name / "app").mkdir(parents=True)
    (root / name / "app" / "__init__.py").write_text("")
    (root / name / "app" / "jobs.py").write_text(
        "import os\n"
        "def cleanup():\n"
        "    print('cleanup of', os.environ['JOBD_JOB_ID'], 'for',\n"
        "          os.environ.get('JOBD_SCHEDULED_FOR'))\n"
    )
    (root / name / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1"\n\n'
        f'[tool.scheduled.cleanup]\nevery = "{every}"\nentrypoint = "app.jobs:cleanup"\n'
    )
    (jobs_dir / f"{name}.toml").symlink_to(root / name / "pyproject.toml")
    return root / name


async def test_every_missed_minute_runs_once_after_downtime(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("""
        [jobs.other]
        command = "true"
        """)
    project(tmp_path / "projects", "shop", config.jobs_dir)
    clock = FakeClock(T0)
    async with running(config, clock=clock) as d:
        assert "shop:cleanup" in d.jobset.jobs
        await settle(d)  # first seen: the cursor starts now
    clock.advance(5 * 60)  # the daemon is down for five minutes
    async with running(config, clock=clock) as d:
        await settle(d, within=30)
        runs = sorted(
            await d.journal.list_runs(job_id="shop:cleanup", limit=None), key=lambda r: r.run_id
        )
        logs = [d.log_path(r).read_text() for r in runs]
    assert len(runs) == 5
    assert all(r.trigger is TriggerKind.CATCHUP and r.state is RunState.SUCCEEDED for r in runs)
    slots = [r.scheduled_for for r in runs]
    # oldest first, one a minute, at the offset of the full id: sha256("shop:cleanup") mod 60
    offset = int(hashlib.sha256(b"shop:cleanup").hexdigest(), 16) % 60
    first = T0 + timedelta(seconds=offset if offset else 60)
    assert slots == [first + timedelta(minutes=i) for i in range(5)]
    assert all(T0 < s <= T0 + timedelta(minutes=5) for s in slots if s is not None)
    assert all(log.startswith("cleanup of shop:cleanup for ") for log in logs)


async def test_two_projects_with_the_same_job_name_run_side_by_side(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("""
        [jobs.cleanup]
        command = "echo own"
        """)
    project(tmp_path / "projects", "shop", config.jobs_dir, every="hour")
    project(tmp_path / "projects", "blog", config.jobs_dir, every="hour")
    async with running(config) as d:
        assert d.jobset.invalid == {}
        assert {"shop:cleanup", "blog:cleanup", "cleanup"} <= set(d.jobset.jobs)
        for job_id in ("shop:cleanup", "blog:cleanup", "cleanup"):
            await d.run_job(job_id, {})
        await settle(d, within=30)
        for job_id in ("shop:cleanup", "blog:cleanup"):
            [run] = await d.journal.list_runs(job_id=job_id, limit=None)
            assert run.state is RunState.SUCCEEDED
            assert d.log_path(run).read_text().startswith(f"cleanup of {job_id} for ")
        [own] = await d.journal.list_runs(job_id="cleanup", limit=None)
        assert d.log_path(own).read_text() == "own\n"


async def test_an_id_of_the_spec_alphabet_runs_and_logs_inside_the_logs_dir(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    config = make_config("""
        [jobs.other]
        command = "true"
        """)
    root = project(tmp_path / "projects", "intl", config.jobs_dir, every="day")
    long = "x" * 200
    text = (root / "pyproject.toml").read_text()
    for key in ('"../nettoyage été/.."', long):
        text += f'\n[tool.scheduled.{key}]\nevery = "day"\nentrypoint = "app.jobs:cleanup"\n'
    (root / "pyproject.toml").write_text(text)
    async with running(config) as d:
        assert d.jobset.invalid == {}
        for job_id in ("intl:../nettoyage été/..", f"intl:{long}"):
            await d.run_job(job_id, {})
        await settle(d, within=30)
        for job_id in ("intl:../nettoyage été/..", f"intl:{long}"):
            [run] = await d.journal.list_runs(job_id=job_id, limit=None)
            assert run.state is RunState.SUCCEEDED
            log = d.log_path(run)
            assert log.resolve().parent.parent == config.logs_dir.resolve()
            assert len(log.parent.name.encode()) <= 255
            assert log.read_text().startswith(f"cleanup of {job_id} for ")
