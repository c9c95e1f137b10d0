"""Fixtures for the control socket: a real ``ControlServer`` over a ``FakeDaemon``, served on a
real unix socket from an event loop in a background thread, so tests can drive it with plain
blocking sockets, with the real ``jobctl`` in a subprocess, or from a forked child."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from jobd.config.model import DaemonConfig
from jobd.control import protocol as p
from jobd.control.server import ControlServer
from tests.control.fakeapi import FakeDaemon, FakeJob

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Harness:
    portal: BlockingPortal
    api: FakeDaemon
    server: ControlServer
    dir: Path

    @property
    def path(self) -> Path:
        return self.server.path

    def client(self, timeout: float = 5.0) -> p.Client:
        return p.Client(self.path, timeout=timeout)

    def call(self, method: str, **params: Any) -> Any:
        with self.client() as c:
            return c.call(method, **params)

    def raw(self, timeout: float = 5.0) -> RawClient:
        return RawClient(str(self.path), timeout)

    def jobctl(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 20.0,
        socket_arg: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return run_jobctl(
            *(("--socket", str(self.path)) if socket_arg else ()), *args, env=env, timeout=timeout
        )

    def healthy(self, timeout: float = 3.0) -> None:
        """A fresh client gets a ``status`` answer within ``timeout``."""
        with self.client(timeout=timeout) as c:
            assert c.call("status")["version"] == "0.0-test"


def run_jobctl(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("JOBD_SOCKET", "JOBD_CONFIG", "NO_COLOR")
    }
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


class RawClient:
    """Bytes in, JSON lines out: for malformed input."""

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, obj: Any) -> None:
        self.send(json.dumps(obj).encode() + b"\n")

    def line(self) -> bytes | None:
        """The next line, or None when the server closed the connection."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def message(self) -> dict[str, Any]:
        line = self.line()
        assert line is not None, "the server closed the connection"
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    def closed(self) -> bool:
        """Has the server closed the connection (reading what remains)?"""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True


@contextmanager
def serve(
    *, socket_mode: int = 0o660, socket_group: str | None = None, **server_options: Any
) -> Iterator[Harness]:
    d = Path(tempfile.mkdtemp(prefix="jobd-ctl-"))  # short: unix socket paths are limited
    d.chmod(0o755)
    config = DaemonConfig(
        path=None,
        jobs_dir=d / "jobs.d",
        state_dir=d / "var",
        socket=d / "run" / "jobd.sock",
        socket_mode=socket_mode,
        socket_group=socket_group,
    )
    api = FakeDaemon(d / "var")
    api.add(FakeJob("hello", output=[b"hello\n", b"world\n"], cron="0 * * * *"))
    api.add(FakeJob("fails", output=[b"oops\n"], exit_code=3))
    api.add(FakeJob("slow", output=[b"one\n", b"two\n", b"three\n"], step=0.15))
    api.add(FakeJob("hold", output=[b"waiting\n"], hold=True))
    api.add(FakeJob("params", params={"name": "world"}))
    server = ControlServer(api, config, **server_options)
    try:
        with start_blocking_portal() as portal:
            api_task, _ = portal.start_task(api.serve)
            server_task, _ = portal.start_task(server.serve)
            try:
                yield Harness(portal, api, server, d)
            finally:
                server_task.cancel()
                api_task.cancel()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def harness() -> Iterator[Harness]:
    with serve() as h:
        yield h


@pytest.fixture
def fast_harness() -> Iterator[Harness]:
    """Short timeouts, for idle and stalled clients."""
    with serve(idle_timeout=0.5, request_timeout=0.3, write_timeout=0.5) as h:
        yield h
