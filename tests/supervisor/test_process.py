"""The daemon as a process: exit codes at start-up, and SIGTERM draining a running job so
that the next start re-runs it as ``recovery``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.journal.sqlite import SQLiteJournal

from .conftest import write_config


def start(cfg: Path, notify: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "JOBD_LOG_LEVEL": "INFO"}
    env.pop("NOTIFY_SOCKET", None)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    return subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(sock: socket.socket, proc: subprocess.Popen[str]) -> None:
    sock.settimeout(0.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if b"READY=1" in sock.recv(4096):
                return
        except TimeoutError:
            assert proc.poll() is None, proc.communicate()
    raise AssertionError("no READY")


def notify_socket(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    return s, path


def test_invalid_config_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[jobs.a]\ncommand = "true"\n', 'max_parallel = "eight"\n')
    p = start(cfg)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 1
    assert "max_parallel" in err and "Traceback" not in err


def test_second_daemon_on_one_journal_exits_3(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, '[jobs.a]\ncommand = "true"\n')
    sock, path = notify_socket(tmp_path)
    first = start(cfg, path)
    try:
        wait_ready(sock, first)
        second = start(cfg)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 3, err
        assert "in use by another jobd" in err and "Traceback" not in err
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
        sock.close()
    assert first.returncode == 0


def test_sigterm_drains_and_the_next_start_recovers(tmp_path: Path) -> None:
    marker = tmp_path / "attempts"
    cfg = write_config(
        tmp_path,
        f"""
        [jobs.long]
        command = "echo $JOBD_ATTEMPT $JOBD_TRIGGER >> {marker}; sleep 30"
        kill_grace = "200ms"
        """,
        'shutdown_grace = "300ms"\n',
    )
    sock, path = notify_socket(tmp_path)
    daemon = start(cfg, path)
    try:
        wait_ready(sock, daemon)
        from jobd.control.protocol import Client

        with Client(tmp_path / "var" / "jobd.sock") as client:
            run = client.call("run", job_id="long")
        run_id = run["run_id"] if "run_id" in run else run["run"]["run_id"]
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err
        assert time.monotonic() - t0 < 10  # grace 300ms + kill_grace 200ms, not 30s of sleep

        async def read() -> RunState:
            async with SQLiteJournal(tmp_path / "var" / "jobd.db") as j:
                r = await j.get_run(run_id)
                assert r is not None
                return r.state

        assert anyio.run(read) is RunState.RUNNING  # left for recovery

        daemon = start(cfg, path)
        wait_ready(sock, daemon)
        deadline = time.monotonic() + 10
        while len(marker.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
        assert marker.read_text().splitlines() == ["1 manual", f"2 {TriggerKind.RECOVERY}"], err
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=30)
        sock.close()
