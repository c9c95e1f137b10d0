"""sd_notify against a real datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobd.supervisor.notify import Notifier


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(5)
    yield s, path
    s.close()


def messages(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_stopping(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    n = Notifier(path)
    assert n.enabled
    n.ready("3 jobs")
    assert messages(sock) == {"READY": "1", "STATUS": "3 jobs", "MAINPID": str(os.getpid())}
    n.status("busy")
    assert messages(sock) == {"STATUS": "busy"}
    n.stopping()
    assert messages(sock)["STOPPING"] == "1"
    n.close()


def test_abstract_namespace_address() -> None:
    name = f"@jobd-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name[1:])
    s.settimeout(5)
    try:
        n = Notifier(name)
        n.send("WATCHDOG=1")
        assert s.recv(100) == b"WATCHDOG=1"
        n.close()
    finally:
        s.close()


def test_without_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    n.ready("x")  # nothing to send to, nothing raised


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert Notifier.watchdog_interval() is None
