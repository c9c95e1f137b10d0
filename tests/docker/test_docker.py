"""The container executor against a real Docker engine (tests/docker/setup-docker.sh)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import anyio
import pytest

from jobd.config.model import ContainerAction
from jobd.executors.abc import Cancel
from jobd.executors.docker import (
    DockerExecutor,
    find_container_leftovers,
    remove_containers,
)
from tests.docker.conftest import IMAGE, NETWORK, SpecFactory, docker_cli


def executor(url: str, instance: str) -> DockerExecutor:
    return DockerExecutor(url=url, network=NETWORK, instance=instance)


def log_of(spec_log: Path) -> str:
    return spec_log.read_text()


async def test_exit_codes_and_output(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    ex = executor(docker_url, instance)
    ok_spec, bad_spec = make_spec(run_id=1), make_spec(run_id=2)
    started: list[int] = []

    async def on_started(pid: int, ticks: int | None) -> None:
        started.append(pid)

    with anyio.fail_after(20):
        ok = await ex.run_container(
            ContainerAction(image=IMAGE, command=("echo", "hello", "$HOME")),
            ok_spec,
            on_started=on_started,
        )
        bad = await ex.run_container(
            ContainerAction(image=IMAGE, command="echo out; echo err >&2; exit 3"), bad_spec
        )
    assert ok.ok and ok.exit_code == 0 and ok.error is None
    assert len(started) == 1  # its pid, or 0 when it had already exited
    assert log_of(ok_spec.log_path) == "hello $HOME\n"  # exec form: no shell expansion
    assert bad.exit_code == 3 and not bad.ok
    assert sorted(log_of(bad_spec.log_path).splitlines()) == ["err", "out"]


async def test_env_is_the_jobs_own_only(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    spec = make_spec(run_id=7, env={"GREETING": "hi there", "JOBD_ATTEMPT": "2"})
    with anyio.fail_after(20):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image=IMAGE, command="env"), spec, passthrough={"GREETING"}
        )
    assert result.ok, result
    env = dict(line.split("=", 1) for line in log_of(spec.log_path).splitlines())
    assert env["GREETING"] == "hi there"
    assert env["JOBD_RUN_ID"] == "7" and env["JOBD_ATTEMPT"] == "2"
    assert env["JOBD_JOB_ID"] == "job" and env["JOBD_INSTANCE"] == instance
    assert "DAEMON_SECRET" not in env  # the daemon's environment stays outside
    assert env["PATH"] == "/bin"  # the image's, not the daemon's


async def test_missing_image_is_a_clear_error(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    spec = make_spec()
    with anyio.fail_after(10):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image="jobd-test-no-such-image:1", command="true"), spec
        )
    assert result.exit_code is None and not result.ok
    assert result.error == (
        "image 'jobd-test-no-such-image:1' is not present on the Docker "
        "host (jobd does not pull; docker pull it first)"
    )
    assert f"[jobd: {result.error}]" in log_of(spec.log_path)


async def test_unreachable_engine_is_an_error(tmp_path: Path, make_spec: SpecFactory) -> None:
    url = f"unix://{tmp_path}/nothing.sock"
    with anyio.fail_after(10):
        result = await DockerExecutor(url=url).run_container(
            ContainerAction(image=IMAGE, command="true"), make_spec()
        )
    assert result.exit_code is None
    assert result.error is not None
    assert result.error.startswith(f"cannot reach the Docker engine at {url}")


async def test_command_not_found(docker_url: str, instance: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    with anyio.fail_after(20):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image=IMAGE, command=("no-such-program",)), spec
        )
    assert result.exit_code == 127 and result.error is None  # as a shell says it
    assert "exec no-such-program failed" in log_of(spec.log_path)  # docker-init's message


async def test_timeout_stops_and_removes_it(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    spec = make_spec(timeout=1.0, kill_grace=1.0)
    begun = time.monotonic()
    with anyio.fail_after(20):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image=IMAGE, command="echo begun; sleep 30"), spec
        )
    assert result.timed_out and not result.cancelled and not result.ok
    assert time.monotonic() - begun < 10
    assert result.signal == 15  # SIGTERM reached sleep through the init: no SIGKILL needed
    log = log_of(spec.log_path)
    assert log.startswith("begun\n")
    assert "[jobd: timed out after 1s: stopping the container" in log
    assert docker_cli("ps", "-aq", "--filter", f"label=jobd.instance={instance}") == ""


async def test_sigkill_after_the_grace(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    spec = make_spec(timeout=0.5, kill_grace=1.0)
    with anyio.fail_after(20):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image=IMAGE, command="trap '' TERM; echo ready; sleep 30 & wait"), spec
        )
    assert result.timed_out and result.signal == 9
    assert "[jobd: still running 1s after SIGTERM: SIGKILL sent]" in log_of(spec.log_path)


async def test_cancel(docker_url: str, instance: str, make_spec: SpecFactory) -> None:
    spec = make_spec()
    cancel = Cancel()

    init: list[bytes] = []

    async def on_started(pid: int, ticks: int | None) -> None:
        # the container's init (docker-init), as the host sees it
        cmdline = await anyio.Path(f"/proc/{pid}/cmdline").read_bytes()
        init.append(cmdline.split(b"\0")[0])
        cancel.set()

    with anyio.fail_after(20):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(image=IMAGE, command=("sleep", "30")),
            spec,
            on_started=on_started,
            cancel=cancel,
        )
    assert result.cancelled and not result.timed_out and not result.ok
    assert "[jobd: cancelled: stopping the container" in log_of(spec.log_path)
    assert init == [b"/sbin/docker-init"]


async def test_scope_cancellation_stops_and_removes_it(
    docker_url: str, instance: str, make_spec: SpecFactory
) -> None:
    started = anyio.Event()

    async def on_started(pid: int, ticks: int | None) -> None:
        started.set()

    ex = executor(docker_url, instance)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: ex.run_container(
                    ContainerAction(image=IMAGE, command=("sleep", "30")),
                    make_spec(),
                    on_started=on_started,
                )
            )
            await started.wait()
            tg.cancel_scope.cancel()
    # the autouse sweep fails the test if its container was left behind


async def test_log_cap_with_a_flood(docker_url: str, instance: str, make_spec: SpecFactory) -> None:
    spec = make_spec(log_max_bytes=1000)
    with anyio.fail_after(30):
        result = await executor(docker_url, instance).run_container(
            ContainerAction(
                image=IMAGE, command="head -c 20000000 /dev/zero | tr '\\0' x; echo; echo done"
            ),
            spec,
        )
    assert result.ok, result
    data = spec.log_path.read_bytes()
    assert data == b"x" * 1000 + b"\n[jobd: output truncated after 1000 bytes]\n"


async def test_leftovers_found_and_removed(docker_url: str, instance: str) -> None:
    # a container as a crashed daemon would leave it: labelled, running, never removed
    cid = docker_cli(
        "run",
        "-d",
        "--network",
        NETWORK,
        "--label",
        f"jobd.instance={instance}",
        "--label",
        "jobd.run_id=42",
        IMAGE,
        "sleep",
        "30",
    ).strip()
    docker_cli(
        "create",
        "--network",
        NETWORK,
        "--label",
        f"jobd.instance={instance}",
        "--label",
        "jobd.run_id=43",
        IMAGE,
        "true",
    )
    with anyio.fail_after(20):
        found = await find_container_leftovers(instance, 42, url=docker_url)
        assert found == [cid]
        assert await remove_containers(found, 1.0, url=docker_url) == []
        assert await find_container_leftovers(instance, 42, url=docker_url) == []
        assert len(await find_container_leftovers(instance, 43, url=docker_url)) == 1
        assert (
            await remove_containers(
                await find_container_leftovers(instance, 43, url=docker_url), 1.0, url=docker_url
            )
            == []
        )
        assert await remove_containers(["0" * 64], 1.0, url=docker_url) == []  # gone: fine
    with pytest.raises(subprocess.CalledProcessError):
        docker_cli("inspect", cid)
