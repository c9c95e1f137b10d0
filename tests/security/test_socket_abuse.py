"""The real daemon under a 1,024 descriptor limit, against thousands of idle and slow clients
and a starved descriptor table: it stays up, answers ``jobctl status`` and keeps its memory."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobd.control import protocol as p
from tests.control.conftest import REPO, run_jobctl

CONFIG = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
"""


def _nofile_1024() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def daemon() -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    root = Path(tempfile.mkdtemp(prefix="jobd-abuse-"))
    (root / "jobs.d").mkdir()
    (root / "jobd.toml").write_text(CONFIG)
    (root / "jobs.d" / "a.toml").write_text('[jobs.a]\ncommand = ["true"]\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JOBD_SOCKET", None)
    err = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")],
        cwd=root,
        env=env,
        stdout=err,
        stderr=err,
        preexec_fn=_nofile_1024,
    )
    try:
        deadline = time.monotonic() + 15
        while run_jobctl("--socket", str(root / "var" / "jobd.sock"), "status").returncode:
            assert proc.poll() is None, (root / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.1)
        yield root, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()


def _connect(path: str) -> socket.socket | None:
    """A connection, waiting while the daemon's backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    deadline = time.monotonic() + 5
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:  # the listen backlog is full: the daemon is catching up
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        except OSError:
            break
    s.close()
    return None


def test_thousands_of_idle_and_slow_clients_under_1024_descriptors(
    daemon: tuple[Path, subprocess.Popen[bytes]],
) -> None:
    root, proc = daemon
    path = str(root / "var" / "jobd.sock")
    print(f"daemon RSS at rest {_rss_kb(proc.pid) / 1024:.1f} MB")
    held: list[socket.socket] = []
    try:
        # idle: connect and say nothing
        held.extend(s for _ in range(2000) if (s := _connect(path)) is not None)
        chunk = b'{"jsonrpc": "2.0", "method": "status", "params": {"x": "' + b"a" * 65536
        for _ in range(1000):  # slow: an unfinished request line of up to 1 MB
            if (s := _connect(path)) is None:
                continue
            held.append(s)
            for _ in range(16):
                try:
                    s.send(chunk)
                except OSError:  # its buffer is full, or the daemon closed it
                    break
        assert proc.poll() is None
        print(f"{len(held)} connections made")
        started = time.monotonic()
        with p.Client(path, timeout=30) as c:
            assert c.call("status")["pid"] == proc.pid
        print(
            f"status answered in {(time.monotonic() - started) * 1000:.1f} ms "
            "(behind the backlog of the flood)"
        )
        for _ in range(3):
            started = time.monotonic()
            with p.Client(path, timeout=30) as c:
                c.call("status")
            print(f"status answered again in {(time.monotonic() - started) * 1000:.1f} ms")
        started = time.monotonic()
        out = run_jobctl("--socket", path, "--json", "status", timeout=30)
        took = time.monotonic() - started
        assert out.returncode == 0, out.stderr
        assert '"pid"' in out.stdout
        print(f"jobctl status answered in {took * 1000:.0f} ms (process start included)")
        rss = _rss_kb(proc.pid)
        print(f"daemon RSS {rss / 1024:.1f} MB")
        assert rss < 100 * 1024
    finally:
        for s in held:
            s.close()
    out = run_jobctl("--socket", path, "status", timeout=30)
    assert out.returncode == 0, out.stderr
    assert proc.poll() is None
    assert "Traceback" not in (root / "daemon.log").read_text()


SERVER = textwrap.dedent("""\
    import resource, sys
    import anyio
    from pathlib import Path
    from jobd.config.model import DaemonConfig
    from jobd.control.limits import Limits
    from jobd.control.server import ControlServer
    from tests.control.fakeapi import FakeDaemon

    async def main() -> None:
        root = Path(sys.argv[1])
        config = DaemonConfig(path=None, jobs_dir=root, state_dir=root,
                              socket=root / "s.sock")
        api = FakeDaemon(root)
        server = ControlServer(api, config, limits=Limits(max_clients=10_000,
                               reserved=16, per_uid=10_000))
        async with anyio.create_task_group() as tg:
            await tg.start(api.serve)
            await tg.start(server.serve)
            # fewer descriptors than the limits allow: accept() itself fails (EMFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            print("ready", flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
""")


def test_descriptor_exhaustion_is_survived(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    err = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=err
    )
    held: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", (tmp_path / "server.log").read_text()
        path = str(tmp_path / "s.sock")
        for _ in range(300):  # far more than 64 descriptors
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except OSError:
                s.close()
                continue
            held.append(s)
        time.sleep(0.3)
        assert proc.poll() is None
        out = run_jobctl("--socket", path, "status", timeout=30)
        assert out.returncode == 0, out.stderr + (tmp_path / "server.log").read_text()
        assert proc.poll() is None
        log = (tmp_path / "server.log").read_text()
        assert log.count("accept failed") == 1, log  # logged once while it lasts
        assert "Traceback" not in log
    finally:
        for s in held:
            s.close()
        proc.kill()
        proc.wait()
        err.close()
        if proc.stdout is not None:
            proc.stdout.close()
