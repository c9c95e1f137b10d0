"""Fuzzing the server over a real socket: whatever a client sends, and however it leaves, the
server neither crashes nor stalls: after every case a fresh ``status`` answers in bounded time."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobd.control import protocol as p
from tests.control.conftest import Harness, serve

FUZZ = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def shared() -> Iterator[Harness]:
    with serve(max_line=64 * 1024, request_timeout=0.2, idle_timeout=0.3, write_timeout=1.0) as h:
        yield h


# Only what JSON can hold: json.dumps would write Infinity, which the server refuses as a
# parse error (tests/security/test_socket_fuzz.py covers that).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
params = st.dictionaries(
    st.sampled_from(
        [
            "job_id",
            "run_id",
            "limit",
            "state",
            "params",
            "offset",
            "max_bytes",
            "encoding",
            "logs",
            "subscription",
            "x",
        ]
    ),
    json_values | st.sampled_from(["hello", "slow", "fails", 1, 2, -1, 10**30, True]),
    max_size=4,
)
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2])},
    optional={
        "id": st.integers() | st.text(max_size=5) | st.none() | st.lists(st.integers()),
        "method": st.sampled_from(sorted(p.METHODS)) | st.text(max_size=10) | json_values,
        "params": params | json_values,
    },
)


def check_alive(h: Harness) -> None:
    h.healthy(timeout=3.0)


def send_and_leave(h: Harness, chunks: list[bytes], how: str) -> None:
    """Send the chunks, then read a little and leave in the way named by ``how``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(str(h.path))
        for chunk in chunks:
            s.sendall(chunk)
        if how == "half-close":
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):  # the server answers what it read, then closes
                pass
        elif how == "read-some":
            s.recv(100)
        elif how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass  # the server may close on us: that is allowed
    finally:
        s.close()


hows = st.sampled_from(["close", "half-close", "read-some", "reset"])


@FUZZ
@given(data=st.lists(st.binary(max_size=2000), max_size=5), how=hows)
def test_random_bytes(shared: Harness, data: list[bytes], how: str) -> None:
    send_and_leave(shared, data, how)
    check_alive(shared)


@FUZZ
@given(reqs=st.lists(requests, min_size=1, max_size=6), how=hows)
def test_random_requests(shared: Harness, reqs: list[dict[str, Any]], how: str) -> None:
    # never the changing methods' effects on the shared daemon we rely on: pause/resume are
    # harmless, runs of the fake jobs finish by themselves
    lines = [json.dumps(r).encode() + b"\n" for r in reqs]
    send_and_leave(shared, lines, how)
    check_alive(shared)


@FUZZ
@given(reqs=st.lists(requests, min_size=1, max_size=4))
def test_every_request_gets_one_well_formed_answer(
    shared: Harness, reqs: list[dict[str, Any]]
) -> None:
    with shared.raw(timeout=3.0) as c:
        expected = 0
        for r in reqs:
            if r.get("method") == "subscribe":
                r["method"] = "status"  # streams would interleave; covered elsewhere
            c.request(r)
            # a valid notification gets no answer; every other message gets exactly one
            if not (
                "id" not in r and r.get("jsonrpc") == "2.0" and isinstance(r.get("method"), str)
            ):
                expected += 1
        c.request({"jsonrpc": "2.0", "method": "status", "id": "final"})
        answers = []
        while True:
            msg = c.message()
            if msg.get("id") == "final":
                break
            answers.append(msg)
        assert len(answers) == expected
        for msg in answers:
            assert msg["jsonrpc"] == "2.0" and "id" in msg
            assert ("result" in msg) != ("error" in msg)
            if "error" in msg:
                assert isinstance(msg["error"]["code"], int)
                assert isinstance(msg["error"]["message"], str)
                assert msg["error"]["code"] != p.INTERNAL_ERROR, msg


@FUZZ
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=300 * 1024), newline=st.booleans())
def test_huge_lines(shared: Harness, size: int, newline: bool) -> None:
    with shared.raw(timeout=3.0) as c:
        with contextlib.suppress(OSError):  # closed mid-send: allowed
            c.send(b"x" * size + (b"\n" if newline else b""))
        line = c.line()
        if line is not None:
            err = json.loads(line)["error"]
            assert err["code"] == p.INVALID_REQUEST and "longer than" in err["message"]
        assert c.closed()
    check_alive(shared)


def test_many_clients_at_once_while_others_misbehave(shared: Harness) -> None:
    rude = [shared.raw(timeout=5.0) for _ in range(50)]
    polite = [shared.raw(timeout=5.0) for _ in range(150)]
    try:
        for i, c in enumerate(rude):
            c.send(b'{"jsonrpc": "2.0", "method": "sta' if i % 2 else b"\xff" * 100 + b"\n")
        for i, c in enumerate(polite):
            c.request({"jsonrpc": "2.0", "method": "status", "id": i})
        for i, c in enumerate(polite):
            assert c.message()["id"] == i
    finally:
        for c in rude + polite:
            c.sock.close()
    check_alive(shared)
