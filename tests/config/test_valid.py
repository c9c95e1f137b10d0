"""Valid job files give exactly the expected model."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from jobd._enums import Catchup, Overlap, TriggerRule
from jobd._exceptions import ConfigError
from jobd.config.loader import load_job_file, load_jobs
from jobd.config.model import (
    CommandAction,
    ContainerAction,
    DaemonConfig,
    EntrypointAction,
    JobDef,
    JobSet,
    JobSource,
    MatrixSpec,
    RetryPolicy,
    ScriptAction,
    Stage,
    StagesAction,
    WatchSpec,
)
from jobd.triggers.cadence import CadenceTrigger
from jobd.triggers.cron import CronTrigger

Write = Callable[[Mapping[str, str]], list[Path]]

RICH = """\
# an ETL job with most keys
[jobs.load]
cron = ["*/5 * * * *", "0  3 * * 1"]
every = "day"
timezone = "Europe/Berlin"
watch = ["../inbox/*.csv", "/srv/drop/**/*.json"]
debounce = "2s"
needs = ["extract"]
trigger_rule = "one_success"
command = ["python", "load.py", "--date", "${{ params.date }}"]
workdir = "work"
env = { MODE = "full", WORKERS = 4, DEBUG = false, RATIO = 0.5 }
env_file = "../secrets.env"
user = "etl"
timeout = "1h30m"
kill_grace = "5s"
retries = 3
retry_delay = "10s"
retry_backoff = 1.5
retry_max_delay = "5m"
overlap = "replace"
pool = "db"
priority = 7
catchup = "all"
start_deadline = "2h"
condition = "${{ params.date != '' }}"
params = { date = "", limit = 100 }
enabled = false

[jobs.extract]
command = "curl -fsS https://example.org/data.csv > ../inbox/data.csv"
"""


def test_rich_job(write_jobs: Write, config: DaemonConfig, workdir: Path) -> None:
    (path,) = write_jobs({"etl.toml": RICH})
    jobs = {j.id: j for j in load_job_file(path, config)}
    base = workdir / "jobs.d"
    assert jobs["load"] == JobDef(
        id="load",
        source=JobSource(file=path, line=2, form="jobs"),
        action=CommandAction(command=("python", "load.py", "--date", "${{ params.date }}")),
        time_triggers=(
            CronTrigger.parse("*/5 * * * *", "Europe/Berlin"),
            CronTrigger.parse("0 3 * * 1", "Europe/Berlin"),
            CadenceTrigger.parse("load", "day", "Europe/Berlin"),
        ),
        watch=WatchSpec(
            patterns=(str(workdir / "inbox/*.csv"), "/srv/drop/**/*.json"), debounce=2.0
        ),
        needs=("extract",),
        trigger_rule=TriggerRule.ONE_SUCCESS,
        timezone="Europe/Berlin",
        workdir=base / "work",
        env={"MODE": "full", "WORKERS": "4", "DEBUG": "false", "RATIO": "0.5"},
        env_file=workdir / "secrets.env",
        user="etl",
        timeout=5400.0,
        kill_grace=5.0,
        retry=RetryPolicy(retries=3, delay=10.0, backoff=1.5, max_delay=300.0),
        overlap=Overlap.REPLACE,
        pool="db",
        priority=7,
        catchup=Catchup.ALL,
        start_deadline=7200.0,
        condition="params.date != ''",
        params={"date": "", "limit": "100"},
        enabled=False,
    )
    assert jobs["extract"] == JobDef(
        id="extract",
        source=JobSource(file=path, line=30),
        action=CommandAction(command="curl -fsS https://example.org/data.csv > ../inbox/data.csv"),
        timezone="UTC",
        workdir=base,
    )
    assert jobs["extract"].action.shell  # type: ignore[union-attr]


STAGES_AND_MATRIX = """\
[jobs.test]
every = "30s"
exclude = []
max_parallel = 2
fail_fast = false

[jobs.test.matrix]
python = ["3.11", "3.12"]
os = ["linux"]
include = [{ python = "3.13", experimental = true }]

[[jobs.test.stages]]
name = "setup"
script = "tools/setup.py"
args = ["--python", "${{ matrix.python }}"]
python = "../venv/bin/python"
env = { STAGE = "1" }

[[jobs.test.stages]]
entrypoint = "tests.run:main"
condition = "matrix.os == 'linux'"
timeout = "10m"
retries = 1
continue_on_error = true
"""


def test_stages_and_matrix(write_jobs: Write, config: DaemonConfig, workdir: Path) -> None:
    (path,) = write_jobs({"ci.toml": STAGES_AND_MATRIX})
    (job,) = load_job_file(path, config)
    base = workdir / "jobs.d"
    assert job.action == StagesAction(
        stages=(
            Stage(
                name="setup",
                action=ScriptAction(
                    script=base / "tools/setup.py",
                    args=("--python", "${{ matrix.python }}"),
                    python=str(workdir / "venv/bin/python"),
                ),
                env={"STAGE": "1"},
            ),
            Stage(
                name="stage-2",
                action=EntrypointAction(entrypoint="tests.run:main", path=(base,)),
                condition="matrix.os == 'linux'",
                timeout=600.0,
                retry=RetryPolicy(retries=1),
                continue_on_error=True,
            ),
        )
    )
    assert job.matrix == MatrixSpec(
        dimensions={"python": ("3.11", "3.12"), "os": ("linux",)},
        include=({"python": "3.13", "experimental": True},),
        exclude=(),
        max_parallel=2,
        fail_fast=False,
    )
    assert job.time_triggers == (CadenceTrigger.parse("test", "30s", "UTC"),)


def test_container_and_entrypoint(write_jobs: Write, config: DaemonConfig, workdir: Path) -> None:
    (path,) = write_jobs(
        {
            "c.toml": """\
[jobs.box]
image = "python:3.12-slim"
command = ["python", "-c", "print(1)"]

[jobs.fn]
entrypoint = "app.tasks:nightly"
python = "python3"
"""
        }
    )
    jobs = {j.id: j for j in load_job_file(path, config)}
    assert jobs["box"].action == ContainerAction(
        image="python:3.12-slim", command=("python", "-c", "print(1)")
    )
    assert jobs["fn"].action == EntrypointAction(
        entrypoint="app.tasks:nightly", python="python3", path=(workdir / "jobs.d",)
    )


def test_condition_forms(write_jobs: Write, config: DaemonConfig) -> None:
    (path,) = write_jobs(
        {
            "c.toml": """\
[jobs.a]
command = "x"
condition = "  ${{ params.x == 'y' }} "
[jobs.b]
command = "x"
condition = "params.x == 'y'"
"""
        }
    )
    jobs = {j.id: j for j in load_job_file(path, config)}
    assert jobs["a"].condition == jobs["b"].condition == "params.x == 'y'"


def test_equal_files_give_equal_jobs(write_jobs: Write, config: DaemonConfig) -> None:
    """Reload finds changes by comparing definitions: the same text must compare equal."""
    (path,) = write_jobs({"etl.toml": RICH})
    assert load_job_file(path, config) == load_job_file(path, config)
    path.write_text(RICH.replace("priority = 7", "priority = 8"))
    second = {j.id: j for j in load_job_file(path, config)}
    path.write_text(RICH)
    first = {j.id: j for j in load_job_file(path, config)}
    assert first["load"] != second["load"] and first["extract"] == second["extract"]


def test_job_timezone_defaults_to_the_daemons(workdir: Path) -> None:
    (workdir / "jobd.toml").write_text('[daemon]\ntimezone = "Asia/Tokyo"\n')
    from jobd.config.loader import load_config

    config = load_config(workdir / "jobd.toml")
    path = workdir / "jobs.d" / "a.toml"
    path.write_text('[jobs.a]\ncron = "0 9 * * *"\ncommand = "x"\n')
    (job,) = load_job_file(path, config)
    assert job.timezone == "Asia/Tokyo"
    assert job.time_triggers == (CronTrigger.parse("0 9 * * *", "Asia/Tokyo"),)


def test_load_job_file_raises_with_every_problem(write_jobs: Write, config: DaemonConfig) -> None:
    (path,) = write_jobs({"a.toml": '[jobs.a]\ncommand = 1\nretries = "x"\n'})
    with pytest.raises(ConfigError) as e:
        load_job_file(path, config)
    assert [p.line for p in e.value.problems] == [2, 3]
    assert [p.key for p in e.value.problems] == ["command", "retries"]
    assert str(e.value).count("\n") == 1


# --- [tool.scheduled] and symlinked pyproject.toml ---------------------------------------

PYPROJECT = """\
[build-system]
requires = ["setuptools"]

[project]
name = "shop"

[tool.ruff]
line-length = 100

[tool.scheduled.clean-files]
every = "day"
entrypoint = "shop.jobs:clean_files"

[tool.scheduled.send-digest]
every = "week"
entrypoint = "shop.mail:digest"
"""


def test_symlinked_pyproject_resolves_from_the_project(
    tmp_path: Path, config: DaemonConfig, workdir: Path
) -> None:
    project = tmp_path / "projects" / "shop"
    (project / "shop").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    link = workdir / "jobs.d" / "shop.toml"
    link.symlink_to(project / "pyproject.toml")
    jobset = load_jobs(config)
    assert jobset.invalid == {}
    assert jobset.jobs["shop:clean-files"] == JobDef(
        id="shop:clean-files",
        source=JobSource(file=link, line=10, form="tool.scheduled"),
        action=EntrypointAction(entrypoint="shop.jobs:clean_files", path=(project,)),
        time_triggers=(CadenceTrigger.parse("shop:clean-files", "day", "UTC"),),
        timezone="UTC",
        workdir=project,
        catchup=Catchup.ALL,  # every missed period runs once
    )
    # the offset rule applies to the full id
    assert jobset.jobs["shop:send-digest"].time_triggers == (
        CadenceTrigger.parse("shop:send-digest", "week", "UTC"),
    )


def test_symlinked_pyproject_module_really_imports(
    tmp_path: Path, config: DaemonConfig, workdir: Path
) -> None:
    """The path the loader gives makes the spec's "module:function" importable."""
    import subprocess

    project = tmp_path / "proj"
    (project / "app").mkdir(parents=True)
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "jobs.py").write_text("def clean():\n    print('cleaned')\n")
    (project / "pyproject.toml").write_text(
        '[tool.scheduled.clean]\nevery = "hour"\nentrypoint = "app.jobs:clean"\n'
    )
    (workdir / "jobs.d" / "proj.toml").symlink_to(project / "pyproject.toml")
    job = load_jobs(config).jobs["proj:clean"]  # no [project] name: the project's directory
    assert isinstance(job.action, EntrypointAction)
    module, func = job.action.entrypoint.split(":")
    code = (
        f"import sys; sys.path[:0] = {[str(p) for p in job.action.path]!r}; "
        f"import {module} as m; m.{func}()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=job.workdir,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == "cleaned\n"


def test_relative_paths_follow_the_resolved_file(
    tmp_path: Path, config: DaemonConfig, workdir: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "job.toml").write_text(
        '[jobs.a]\nscript = "tool.py"\nwatch = "in/*.csv"\nenv_file = "a.env"\n'
    )
    (workdir / "jobs.d" / "a.toml").symlink_to(elsewhere / "job.toml")
    job = load_jobs(config).jobs["a"]
    assert job.action == ScriptAction(script=elsewhere / "tool.py")
    assert job.watch == WatchSpec(patterns=(str(elsewhere / "in/*.csv"),))
    assert job.workdir == elsewhere and job.env_file == elsewhere / "a.env"
    assert job.source.file == workdir / "jobs.d" / "a.toml"


def test_pyproject_without_jobs_is_fine(write_jobs: Write, config: DaemonConfig) -> None:
    (path,) = write_jobs({"pyproject.toml": '[project]\nname = "x"\n[tool.other]\na = 1\n'})
    assert load_job_file(path, config) == []
    assert load_jobs(config).invalid == {}


def test_pyproject_may_also_hold_jobd_jobs(write_jobs: Write, config: DaemonConfig) -> None:
    (path,) = write_jobs({"pyproject-like.toml": PYPROJECT + '[jobs.extra]\ncommand = "x"\n'})
    assert sorted(j.id for j in load_job_file(path, config)) == [
        "extra",
        "shop:clean-files",
        "shop:send-digest",
    ]


def test_two_projects_share_a_job_name(tmp_path: Path, config: DaemonConfig, workdir: Path) -> None:
    """Ids are namespaced per project, so two projects may both have [tool.scheduled.cleanup]
    (and a [jobs.cleanup] may exist too); each gets its own offset."""
    for name in ("Shop_App", "blog"):
        project = tmp_path / name
        project.mkdir()
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\n[tool.scheduled.cleanup]\nevery = "hour"\n'
            'entrypoint = "app.jobs:cleanup"\n'
        )
        (workdir / "jobs.d" / f"{name}.toml").symlink_to(project / "pyproject.toml")
    (workdir / "jobs.d" / "own.toml").write_text(
        '[jobs.cleanup]\ncommand = "true"\nneeds = ["blog:cleanup"]\n'
    )
    jobset = load_jobs(config)
    assert jobset.invalid == {}
    assert sorted(jobset.jobs) == ["blog:cleanup", "cleanup", "shop-app:cleanup"]
    shop, blog = jobset.jobs["shop-app:cleanup"], jobset.jobs["blog:cleanup"]
    assert shop.workdir == tmp_path / "Shop_App" and blog.workdir == tmp_path / "blog"
    assert jobset.jobs["cleanup"].needs == ("blog:cleanup",)
    # offsets from the full ids, by hand: sha256(id) mod 3600
    for job in (shop, blog):
        digest = int(hashlib.sha256(job.id.encode()).hexdigest(), 16)
        [trigger] = job.time_triggers
        assert trigger.describe() == (
            f"every hour at :{digest % 3600 // 60:02}:{digest % 60:02} (UTC)"
        )


def test_the_spec_id_alphabet(tmp_path: Path, config: DaemonConfig, workdir: Path) -> None:
    """The spec's ids are TOML keys: any letters, spaces, dots, and longer than 64."""
    long = "nightly-" + "x" * 100
    (workdir / "jobs.d" / "intl.toml").write_text(
        '[project]\nname = "intl"\n'
        '[tool.scheduled."nettoyage-été"]\nevery = "day"\nentrypoint = "a.b:c"\n'
        '[tool.scheduled."日次 レポート"]\nevery = "day"\nentrypoint = "a.b:c"\n'
        '[tool.scheduled."a/b.c"]\nevery = "day"\nentrypoint = "a.b:c"\n'
        f'[tool.scheduled.{long}]\nevery = "day"\nentrypoint = "a.b:c"\n'
    )
    jobset = load_jobs(config)
    assert jobset.invalid == {}
    assert sorted(jobset.jobs) == sorted(
        ["intl:nettoyage-été", "intl:日次 レポート", "intl:a/b.c", f"intl:{long}"]
    )


def test_hidden_and_other_files_are_not_read(write_jobs: Write, config: DaemonConfig) -> None:
    write_jobs(
        {
            ".#a.toml": "broken",
            "b.toml.swp": "broken",
            "notes.txt": "x",
            "ok.toml": '[jobs.ok]\ncommand = "x"\n',
        }
    )
    (config.jobs_dir / "sub").mkdir()
    (config.jobs_dir / "sub" / "deep.toml").write_text("broken")
    jobset = load_jobs(config)
    assert list(jobset.jobs) == ["ok"] and jobset.invalid == {}


def test_missing_jobs_dir(write_jobs: Write, config: DaemonConfig) -> None:
    (path,) = write_jobs({"a.toml": '[jobs.a]\ncommand = "x"\n'})
    first = load_jobs(config)
    path.unlink()
    config.jobs_dir.rmdir()
    problem = ("jobs.d: cannot read jobs_dir: No such file or directory",)
    assert load_jobs(config) == JobSet(jobs={}, invalid={config.jobs_dir: problem})
    # a directory that cannot be read is not one that was emptied: keep what was loaded
    assert load_jobs(config, previous=first) == JobSet(
        jobs=first.jobs, invalid={config.jobs_dir: problem}
    )
