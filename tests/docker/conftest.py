"""Fixtures for the container executor tests: a real Docker engine on a private socket.

``setup-docker.sh`` (beside this file) starts a private dockerd and imports the tiny test image
once per session. When it fails, every test here fails with its output; only a run that is not
root (and so cannot start a dockerd) skips."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from jobd.executors.abc import ProcessSpec

SETUP = Path(__file__).with_name("setup-docker.sh")
SOCKET = Path(os.environ.get("JOBD_TEST_DOCKER_DIR", "/tmp/jobd-test-docker")) / "docker.sock"
URL = f"unix://{SOCKET}"
IMAGE = "jobd-test-busybox:latest"
NETWORK = "none"  # the test dockerd runs with --bridge=none
SpecFactory = Callable[..., ProcessSpec]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call that jobd makes inside the event loop, but for those the
    executor makes on purpose (the same as the local executor's)."""
    with blockbuster_ctx("jobd") as bb:
        # log writes land in the page cache; a thread hop per chunk would cost more than they do
        bb.functions["os.write"].can_block_in("jobd/executors/_logsink.py", "_write")
        bb.functions["os.mkdir"].can_block_in("jobd/executors/_logsink.py", "open_log")
        yield bb


@pytest.fixture(scope="session")
def docker_url() -> str:
    """The test engine's URL, after setup-docker.sh made it and the image ready."""
    if os.geteuid() != 0:
        pytest.skip("the Docker tests start a private dockerd and need root")
    proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=300,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"{SETUP.name} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}",
                    pytrace=False)
    return URL


def docker_cli(*args: str) -> str:
    """The docker client on the test engine: an independent view of what the executor did."""
    out = subprocess.run(["docker", "-H", URL, *args], capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout


@pytest.fixture
def instance() -> str:
    """A per-test instance label, so tests see only their own containers."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_spec(tmp_path: Path, instance: str) -> SpecFactory:
    def make(run_id: int = 1, **kwargs: Any) -> ProcessSpec:
        env = {"JOBD_JOB_ID": "job", "JOBD_RUN_ID": str(run_id), "JOBD_INSTANCE": instance,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "DAEMON_SECRET": "s3cret"}
        env.update(kwargs.pop("env", {}))
        defaults: dict[str, Any] = {"argv": ("unused",), "env": env, "cwd": tmp_path,
                                    "log_path": tmp_path / "logs" / f"{run_id}.log",
                                    "kill_grace": 1.0}
        defaults.update(kwargs)
        return ProcessSpec(**defaults)
    return make


@pytest.fixture(autouse=True)
def sweep(request: pytest.FixtureRequest, instance: str) -> Iterator[None]:
    """Remove whatever containers a test left (found by label with the docker client) and
    fail the test if there were any: the executor must always remove its container."""
    yield
    if "docker_url" not in request.fixturenames:
        return
    left = docker_cli("ps", "-aq", "--filter", f"label=jobd.instance={instance}").split()
    if left:
        docker_cli("rm", "-f", *left)
        pytest.fail(f"containers left behind: {left}")
