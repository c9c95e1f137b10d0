"""Fixtures for the executor tests: a spec factory whose processes carry a per-test marker,
and a sweep that kills whatever a test left behind (found without the code under test)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from jobd.executors import INSTANCE_VAR, RUN_ID_VAR, LocalExecutor, ProcessSpec

PATH = "/usr/local/bin:/usr/bin:/bin"
SpecFactory = Callable[..., ProcessSpec]


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call that jobd makes inside the event loop, but for those it makes
    on purpose (docs/executors.md, "What runs on the event loop")."""
    with blockbuster_ctx("jobd") as bb:
        # Popen waits on a pipe until the child has exec'd (measured: faster than a thread hop)
        bb.functions["os.read"].can_block_in("subprocess.py", "_execute_child")
        # log writes land in the page cache; a thread hop per chunk would cost more than they do
        bb.functions["os.write"].can_block_in("jobd/executors/_logsink.py", "_write")
        # /proc/PID/stat is generated from memory: it never waits on a disk
        bb.functions["io.BufferedReader.read"].can_block_in(
            "jobd/executors/process.py", "process_start_ticks"
        )
        # rare paths: a missing log directory, explaining why a start failed
        bb.functions["os.mkdir"].can_block_in("jobd/executors/_logsink.py", "open_log")
        bb.functions["os.stat"].can_block_in("jobd/executors/local.py", "_start_error")
        # (moving the new process into its run's leaf runs in a worker thread: it waits on a
        # cgroup migration) and at the end: one rmdir of the leaf, which fails if anything is
        # left in it (then the kill goes to a thread)
        bb.functions["os.rmdir"].can_block_in("jobd/executors/contain.py", "_drop")
        # once per process: where the cgroups are (/proc/self, cgroupfs: both in memory)
        for name in ("io.TextIOWrapper.read", "os.stat", "os.mkdir", "os.rmdir", "os.access"):
            if name in bb.functions:
                bb.functions[name].can_block_in("jobd/executors/contain.py", "detect")
        yield bb


@pytest.fixture
def marker() -> str:
    return f"jobd-test-{uuid.uuid4()}"


@pytest.fixture(autouse=True)
def _sweep(marker: str) -> Iterator[None]:
    yield
    needle = f"{INSTANCE_VAR}={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            if needle in env:
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.fixture
def env(marker: str) -> dict[str, str]:
    """A small, exact environment that marks the test's processes."""
    return {"PATH": PATH, RUN_ID_VAR: "1", INSTANCE_VAR: marker}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "run.log"


@pytest.fixture
def make_spec(tmp_path: Path, env: dict[str, str], log: Path) -> SpecFactory:
    def make(argv: Sequence[str], **kw: Any) -> ProcessSpec:
        kw.setdefault("cwd", tmp_path)
        kw.setdefault("log_path", log)
        return ProcessSpec(argv=tuple(argv), env={**env, **kw.pop("env", {})}, **kw)

    return make


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor(drain_timeout=0.5)


@pytest.fixture
def popen() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start helper processes directly; each is killed and reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
