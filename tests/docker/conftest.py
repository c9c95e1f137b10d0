"""Fixtures for the container executor tests: a real Docker engine on a private socket.

``setup-docker.sh`` (beside this file; ``.ci/run`` calls it as root) installs Debian's docker.io,
starts a private dockerd and imports the tiny test image. The tests never install or start
anything themselves: when no engine with the image answers, they skip and say so, unless
``JOBD_TEST_REQUIRE_DOCKER=1`` (set by ``.ci/run`` after the setup) makes that a failure."""

from __future__ import annotations

import os
import shutil
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


def engine_problem() -> str | None:
    """Why the test engine cannot serve the tests, or None when it answers with the image."""
    if shutil.which("docker") is None:
        return "the docker client is not installed"
    try:
        proc = subprocess.run(
            ["docker", "-H", URL, "image", "inspect", IMAGE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no Docker engine answers on {URL} within 30s"
    if proc.returncode != 0:
        return f"no Docker engine with {IMAGE} answers on {URL} ({proc.stderr.strip()[:200]})"
    return None


@pytest.fixture(scope="session")
def docker_url() -> str:
    """The test engine's URL, once it answers with the test image (setup-docker.sh made it)."""
    problem = engine_problem()
    if problem is not None:
        why = f"{problem}: run tests/docker/{SETUP.name} as root first (.ci/run does)"
        if os.environ.get("JOBD_TEST_REQUIRE_DOCKER") == "1":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return URL


def docker_cli(*args: str) -> str:
    """The docker client on the test engine: an independent view of what the executor did."""
    out = subprocess.run(
        ["docker", "-H", URL, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout


@pytest.fixture
def instance() -> str:
    """A per-test instance label, so tests see only their own containers."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_spec(tmp_path: Path, instance: str) -> SpecFactory:
    def make(run_id: int = 1, **kwargs: Any) -> ProcessSpec:
        env = {
            "JOBD_JOB_ID": "job",
            "JOBD_RUN_ID": str(run_id),
            "JOBD_INSTANCE": instance,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "DAEMON_SECRET": "s3cret",
        }
        env.update(kwargs.pop("env", {}))
        defaults: dict[str, Any] = {
            "argv": ("unused",),
            "env": env,
            "cwd": tmp_path,
            "log_path": tmp_path / "logs" / f"{run_id}.log",
            "kill_grace": 1.0,
        }
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
