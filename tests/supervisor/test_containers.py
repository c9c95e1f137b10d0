"""Container jobs in the real daemon, against the test Docker engine (tests/docker)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobd._enums import RunState
from jobd.config.model import DaemonConfig
from tests.docker.conftest import IMAGE, docker_cli, docker_url

from .conftest import running, settle

MakeConfig = Callable[..., DaemonConfig]

__all__ = ["docker_url"]  # the fixture, used by name


async def test_container_job_runs_with_its_env_and_leaves_nothing(
    make_config: MakeConfig, docker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME_SECRET", "leaked")  # the daemon's env must not reach the container
    config = make_config(
        f"""
        [jobs.boxed]
        image = "{IMAGE}"
        command = "echo hello from $JOBD_JOB_ID run $JOBD_RUN_ID, greeting=$GREETING secret=$HOME_SECRET; exit 3"
        env = {{ GREETING = "${{{{ params.who }}}}" }}
        params = {{ who = "world" }}
        """,
        f'docker_host = "{docker_url}"\ndocker_network = "none"\n',
    )
    async with running(config) as d:
        run = await d.run_job("boxed", {})
        await settle(d, 60)
        done = await d.journal.get_run(run.run_id)
    assert done is not None and done.state is RunState.FAILED and done.exit_code == 3
    text = d.log_path(done).read_text()
    assert f"hello from boxed run {run.run_id}, greeting=world secret=\n" in text
    left = docker_cli("ps", "-a", "-q", "--filter", f"label=jobd.instance={d.instance}")
    assert left.strip() == ""


async def test_container_shell_command_gets_values_as_data(
    make_config: MakeConfig, docker_url: str
) -> None:
    """A string command runs under the container's /bin/sh: values reach it as variables."""
    config = make_config(
        f"""
        [jobs.boxed]
        image = "{IMAGE}"
        command = "echo [${{{{ params.x }}}}]; ls /tmp/pwned 2>&1 || echo clean"
        params = {{ x = "" }}
        """,
        f'docker_host = "{docker_url}"\ndocker_network = "none"\n',
    )
    async with running(config) as d:
        run = await d.run_job("boxed", {"x": "$(touch /tmp/pwned) `touch /tmp/pwned`"})
        await settle(d, 60)
        done = await d.journal.get_run(run.run_id)
    assert done is not None and done.state is RunState.SUCCEEDED, done
    text = d.log_path(done).read_text()
    assert "[$(touch /tmp/pwned) `touch /tmp/pwned`]\n" in text
    assert "clean\n" in text
