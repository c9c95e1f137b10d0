"""A real daemon process: with no ``[http]`` it opens no port and imports none of the web
stack; with it, it listens on exactly the one port configured."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WEB_MODULES = ("starlette", "uvicorn", "jinja2", "h11", "jobd.web")
CONFIG = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_tcp_ports(pid: int) -> set[int]:
    """Ports the process's own sockets listen on (its fds matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def run_daemon(tmp_path: Path, extra: str) -> tuple[set[int], str]:
    """Start ``python -X importtime -m jobd``, wait until it serves, read its listening
    ports, stop it; the ports and its import log."""
    (tmp_path / "jobs.d").mkdir(exist_ok=True)
    (tmp_path / "jobs.d" / "a.toml").write_text('[jobs.a]\ncommand = "true"\n')
    cfg = tmp_path / "jobd.toml"
    cfg.write_text(CONFIG + extra)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG")}
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "jobd", "--config", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "var" / "jobd.sock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "no daemon"
            time.sleep(0.05)
        time.sleep(0.3)  # the socket appears before the last services start
        ports = listening_tcp_ports(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    return ports, err


def imported(log: str) -> set[str]:
    return {
        line.split("|")[-1].strip() for line in log.splitlines() if line.startswith("import time:")
    }


@pytest.mark.slow
def test_without_http_no_port_and_no_web_import(tmp_path: Path) -> None:
    ports, log = run_daemon(tmp_path, "")
    assert ports == set()
    modules = imported(log)
    assert "jobd.supervisor.daemon" in modules  # the import log is read right
    assert [m for m in modules if m.split(".")[0] in WEB_MODULES or m == "jobd.web"] == []


@pytest.mark.slow
def test_with_http_one_port_and_the_web_stack(tmp_path: Path) -> None:
    port = free_port()
    ports, log = run_daemon(tmp_path, f'\n[http]\nlisten = "127.0.0.1:{port}"\n')
    assert ports == {port}
    assert {"starlette", "uvicorn", "jinja2", "jobd.web"} <= imported(log)
    assert f"dashboard at http://127.0.0.1:{port}/" in log
