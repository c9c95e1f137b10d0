"""Hostile clients on a real socket: blank lines do not keep an idle client, a flood from
another uid cannot lock root out, and numbers JSON cannot hold are refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobd.control.limits import Limits
from tests.control.conftest import Harness, serve


def test_blank_lines_do_not_reset_the_idle_timeout() -> None:
    with serve(idle_timeout=0.4, request_timeout=0.3) as h, h.raw(timeout=5.0) as c:
        started = time.monotonic()
        try:
            while time.monotonic() - started < 3.0:
                c.send(b"\n")
                time.sleep(0.05)
        except OSError:
            pass  # closed on us, as it should be
        assert time.monotonic() - started < 2.0
        assert c.closed()


def test_a_complete_request_resets_the_idle_timeout() -> None:
    with serve(idle_timeout=0.4, request_timeout=0.3) as h, h.raw(timeout=5.0) as c:
        for i in range(8):  # 0.8 s in all, a request every 0.1 s
            c.request({"jsonrpc": "2.0", "id": i, "method": "status"})
            assert c.message()["id"] == i
            time.sleep(0.1)


def test_numbers_json_cannot_hold_are_refused() -> None:
    with serve() as h, h.raw() as c:
        c.send(b'{"jsonrpc": "2.0", "id": 1e400, "method": "status"}\n')
        line = c.line()
        assert line is not None
        msg = json.loads(line)  # strict JSON: no Infinity came back
        assert msg["id"] is None
        assert msg["error"]["code"] == -32700
        assert "1e400" in msg["error"]["message"]
        c.send(b'{"jsonrpc": "2.0", "id": -1e999, "method": "status"}\n')
        assert json.loads(c.line() or b"")["error"]["code"] == -32700


FLOOD = textwrap.dedent("""\
    import os, socket, sys, time
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)
    held = []
    for _ in range(int(sys.argv[2])):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(sys.argv[1])
        except OSError:
            s.close()
            continue
        held.append(s)
    print(len(held), flush=True)
    sys.stdin.read()
""")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second uid (65534)")
def test_a_flood_from_another_uid_cannot_lock_root_out() -> None:
    limits = Limits(max_clients=64, reserved=8, per_uid=16)
    with serve(socket_mode=0o666, limits=limits) as h:
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, str(h.path), "300"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert flood.stdout is not None
            assert int(flood.stdout.readline()) > 16
            h.healthy(timeout=5.0)
            held = len(h.server.admission)
            assert held <= 16 + 1, held  # nobody's 16, and maybe our own closing one
        finally:
            flood.communicate("", timeout=10)


CLIENT_KINDS = st.sampled_from(["idle", "slow", "bytes", "huge", "blank", "request"])


@pytest.fixture(scope="module")
def tight() -> Iterator[Harness]:
    """Small limits, so every case crosses them: 8 connections, 256 KiB of unfinished bytes."""
    limits = Limits(
        max_clients=8, reserved=2, per_uid=8, max_buffered=256 << 10, per_uid_buffered=128 << 10
    )
    with serve(limits=limits, max_line=64 << 10, request_timeout=0.5, idle_timeout=0.5) as h:
        yield h


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(CLIENT_KINDS, min_size=1, max_size=24), junk=st.binary(min_size=1, max_size=3000)
)
def test_mixed_hostile_clients_never_lock_anyone_out(
    tight: Harness, kinds: list[str], junk: bytes
) -> None:
    held: list[socket.socket] = []
    try:
        for kind in kinds:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2.0)
            held.append(s)
            try:
                s.connect(str(tight.path))
                if kind == "slow":
                    s.sendall(b'{"jsonrpc": "2.0", "method": "status", "x": "' + b"a" * 60000)
                elif kind == "bytes":
                    s.sendall(junk)
                elif kind == "huge":
                    s.sendall(b"x" * (70 << 10))
                elif kind == "blank":
                    s.sendall(b"\n" * 100)
                elif kind == "request":
                    s.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n')
            except OSError:
                pass  # closed on us to make room: allowed
        tight.healthy(timeout=5.0)
        assert len(tight.server.admission) <= 8
        assert tight.server.admission.buffered <= 256 << 10
    finally:
        for s in held:
            s.close()
