"""Real parts for the remote tests: a redis-server with AOF (appendfsync always) on a private
unix socket, Celery workers as real processes in their own sessions, and a real daemon
process. Skipped when redis-server (Debian's package; .ci/run installs it) is absent."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what}: not within {timeout}s\n{tail}")


class RedisServer:
    """redis-server on a unix socket in a private dir, AOF with fsync on every write."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra  # more redis-server arguments (ACL users)
        self.dir = Path(tempfile.mkdtemp(prefix="jr"))  # short: socket paths are limited
        self.socket = self.dir / "r.sock"
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        assert REDIS is not None
        args = [
            REDIS,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(self.ping, 10, "redis-server ready", self.log)

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.socket.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pool(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self) -> None:
        # SIGKILL of the whole group: a warm shutdown takes seconds, and whatever it ran dies
        # with it (the guard), as the failure tests show
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class World:
    """A daemon config with [celery] (and its key files), jobs, workers and a daemon."""

    root: Path
    redis: RedisServer
    lease: str = "3s"
    workers: list[Worker] = field(default_factory=list)
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "jobd.toml"

    @property
    def journal(self) -> Path:
        return self.root / "var" / "jobd.db"

    def write(self, jobs: str, *, celery_extra: str = "") -> None:
        key = self.root / "signing.key"
        key.write_bytes(os.urandom(32).hex().encode())
        key.chmod(0o600)
        (self.root / "jobs.d").mkdir(exist_ok=True)
        self.config.write_text(
            textwrap.dedent(f"""\
            [daemon]
            jobs_dir = "jobs.d"
            state_dir = "var"
            socket = "var/jobd.sock"
            shutdown_grace = "2s"
            timezone = "UTC"

            [celery]
            broker = "{self.redis.url}"
            signing_key_file = "signing.key"
            lease = "{self.lease}"
            claim_timeout = "60s"
            """)
            + celery_extra
        )
        (self.root / "jobs.d" / "jobs.toml").write_text(textwrap.dedent(jobs))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JOBD_CONFIG": str(self.config),
            "PYTHONPATH": str(REPO),
            "JOBD_LOG_LEVEL": "INFO",
        }

    def start_worker(self, queue: str, concurrency: int = 1, name: str = "w") -> Worker:
        log = self.root / f"worker-{name}-{len(self.workers)}.log"
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "jobd.remote.worker",
            "worker",
            "-Q",
            queue,
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}{len(self.workers)}-{os.getpid()}@%h",
            "--loglevel",
            "INFO",
        ]
        with open(log, "ab") as f:
            proc = subprocess.Popen(
                args, env=self.env(), cwd=self.root, start_new_session=True, stdout=f, stderr=f
            )
        w = Worker(proc, log)
        self.workers.append(w)
        wait_for(
            lambda: b" ready." in log.read_bytes() or proc.poll() is not None,
            30,
            "worker ready",
            log,
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        return w

    def start_daemon(self) -> subprocess.Popen[bytes]:
        notify_path = str(self.root / "notify.sock")
        Path(notify_path).unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify_path)
        sock.settimeout(0.2)
        log = self.root / "daemon.log"
        env = {**self.env(), "NOTIFY_SOCKET": notify_path}
        with open(log, "ab") as f:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobd", "--config", str(self.config)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=f,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if b"READY=1" in sock.recv(4096):
                        self.daemon = proc
                        return proc
                except TimeoutError:
                    assert proc.poll() is None, log.read_text()[-3000:]
            proc.kill()
            raise AssertionError("daemon did not get READY in 20 s")
        finally:
            sock.close()

    def kill_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()

    def stop_daemon(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()

    def jobctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobd.cli.jobctl", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def runs(self, job_id: str | None = None) -> list[sqlite3.Row]:
        if not self.journal.exists():
            return []
        with sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=5) as db:
            db.row_factory = sqlite3.Row
            q = "SELECT * FROM runs" + (" WHERE job_id = ?" if job_id else "") + " ORDER BY run_id"
            return db.execute(q, (job_id,) if job_id else ()).fetchall()

    def wait_state(
        self, job_id: str, states: set[str], n: int = 1, timeout: float = 30
    ) -> list[sqlite3.Row]:
        out: list[sqlite3.Row] = []

        def check() -> bool:
            nonlocal out
            out = [r for r in self.runs(job_id) if r["state"] in states]
            return len(out) >= n

        wait_for(check, timeout, f"{n} runs of {job_id} in {states}", self.root / "daemon.log")
        return out

    def close(self) -> None:
        self.stop_daemon()
        for w in self.workers:
            w.stop()


@pytest.fixture
def world(tmp_path: Path, redis_server: RedisServer) -> Iterator[World]:
    w = World(tmp_path, redis_server)
    yield w
    w.close()


def marker_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (e.g. ``TESTMARK=xyz``)."""
    want = marker.encode()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if want in env and b") Z" not in stat:
            out.append(int(entry))
    return out
