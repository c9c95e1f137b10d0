"""The control server over a real unix socket: every method, errors, robustness, lifecycle."""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from jobd._exceptions import ConfigError
from jobd.config.model import DaemonConfig
from jobd.control import protocol as p
from jobd.control.server import ControlServer
from tests.control.conftest import Harness, serve
from tests.control.fakeapi import FakeDaemon, FakeJob


def wait_state(h: Harness, run_id: int, *states: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = h.call("logs", run_id=run_id, max_bytes=0)["run"]
        if run["state"] in states:
            return dict(run)
        assert time.monotonic() < deadline, f"run {run_id} stayed {run['state']}"
        time.sleep(0.02)


# --- every method ------------------------------------------------------------------------


def test_read_methods(harness: Harness) -> None:
    st = harness.call("status")
    assert st["jobs_loaded"] == 5 and st["pid"] == os.getpid()
    harness.api.invalid_files = [{"file": "jobs.d/bad.toml", "errors": ["jobs.d/bad.toml:1: x"]}]
    listed = harness.call("list")
    assert [j["job_id"] for j in listed["jobs"]] == ["fails", "hello", "hold", "params", "slow"]
    assert listed["invalid_files"] == harness.api.invalid_files
    shown = harness.call("show", job_id="hello")
    assert shown["job_id"] == "hello" and shown["next_fire_times"] == [
        f"2030-01-01T0{h}:00:00+00:00" for h in range(5)
    ]
    assert harness.call("why", job_id="hello")["lines"][0] == "'hello' has not run yet."
    assert harness.call("runs") == {"runs": []}


def test_run_runs_logs_cancel(harness: Harness) -> None:
    run = harness.call("run", job_id="hello")["run"]
    assert {
        "run_id",
        "job_id",
        "trigger",
        "scheduled_for",
        "attempt",
        "state",
        "exit_code",
        "started_at",
        "finished_at",
    } <= set(run)
    assert (run["job_id"], run["trigger"], run["state"]) == ("hello", "manual", "queued")
    done = wait_state(harness, run["run_id"], "succeeded")
    assert done["exit_code"] == 0
    runs = harness.call("runs", job_id="hello", limit=5, state="succeeded")["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert harness.call("runs", state="failed") == {"runs": []}
    logs = harness.call("logs", run_id=run["run_id"])
    assert (logs["data"], logs["eof"], logs["size"], logs["next_offset"]) == (
        "hello\nworld\n",
        True,
        12,
        12,
    )
    part = harness.call("logs", job_id="hello", offset=6, max_bytes=3, encoding="base64")
    assert base64.b64decode(part["data"]) == b"wor" and not part["eof"]
    assert part["next_offset"] == 9

    held = harness.call("run", job_id="hold")["run"]["run_id"]
    wait_state(harness, held, "running")
    assert harness.call("cancel", job_id="hold") == {"cancelled": [held]}
    wait_state(harness, held, "cancelled")
    assert harness.call("cancel", run_id=held) == {"cancelled": []}


def test_run_with_params(harness: Harness) -> None:
    run = harness.call("run", job_id="params", params={"name": "x"})["run"]
    assert run["params"] == {"name": "x"}
    with harness.client() as c, pytest.raises(p.RPCError) as e:
        c.call("run", job_id="params", params={"nope": "x"})
    assert e.value.code == p.INVALID_PARAMS and "no param 'nope'" in e.value.message


def test_pause_resume_reload(harness: Harness) -> None:
    assert harness.call("pause", job_id="hello") == {"job_id": "hello", "paused": True}
    assert harness.api.paused == {"hello"}
    assert harness.call("status")["paused"] == ["hello"]
    assert harness.call("resume", job_id="hello") == {"job_id": "hello", "paused": False}
    assert harness.api.paused == set()
    assert harness.call("reload")["jobs_loaded"] == 5
    assert ("reload", "") in harness.api.changes


def test_logs_text_never_splits_a_character(harness: Harness) -> None:
    harness.api.add(FakeJob("utf", output=["€uro\n".encode(), b"\xff bad\n"]))
    rid = harness.call("run", job_id="utf")["run"]["run_id"]
    wait_state(harness, rid, "succeeded")
    first = harness.call("logs", run_id=rid, max_bytes=2)  # the middle of "€"
    assert (first["data"], first["next_offset"], first["eof"]) == ("", 0, False)
    whole = harness.call("logs", run_id=rid)
    assert whole["data"] == "€uro\n\ufffd bad\n"


# --- errors ------------------------------------------------------------------------------


def test_errors_keep_the_connection(harness: Harness) -> None:
    with harness.raw() as c:
        c.send(b"\xff\xfe\n")
        assert c.message()["error"]["code"] == p.PARSE_ERROR
        c.send(b'{"jsonrpc": "2.0", "method": "status", "id": 1\n')
        msg = c.message()
        assert (msg["id"], msg["error"]["code"]) == (None, p.PARSE_ERROR)
        assert msg["error"]["message"].startswith("parse error: Expecting")
        c.send(b"[]\n")
        err = c.message()["error"]
        assert err["code"] == p.INVALID_REQUEST and "batches" in err["message"]
        c.request({"jsonrpc": "2.0", "method": "frobnicate", "id": "x"})
        assert c.message()["error"]["code"] == p.METHOD_NOT_FOUND
        c.request({"jsonrpc": "2.0", "method": "show", "params": {"job_id": 1}, "id": 2})
        assert c.message()["error"]["code"] == p.INVALID_PARAMS
        c.request({"jsonrpc": "2.0", "method": "show", "params": {"job_id": "nope"}, "id": 3})
        assert c.message() == {
            "jsonrpc": "2.0",
            "id": 3,
            "error": {"code": p.NOT_FOUND, "message": "no job 'nope'", "data": {"job_id": "nope"}},
        }
        c.request({"jsonrpc": "2.0", "method": "logs", "params": {"run_id": 99}, "id": 4})
        assert c.message()["error"]["code"] == p.NOT_FOUND
        c.request({"jsonrpc": "2.0", "method": "logs", "params": {"job_id": "hello"}, "id": 5})
        err = c.message()["error"]
        assert err["code"] == p.NOT_FOUND and "no runs yet" in err["message"]
        c.send(b"\n  \n")  # blank lines are ignored
        c.request({"jsonrpc": "2.0", "method": "status", "id": 6})
        assert c.message()["result"]["jobs_loaded"] == 5


def test_internal_error_then_goes_on(harness: Harness) -> None:
    harness.api.fail_status = RuntimeError("disk on fire")
    with harness.client() as c:
        with pytest.raises(p.RPCError) as e:
            c.call("status")
        assert e.value.code == p.INTERNAL_ERROR and "disk on fire" in e.value.message
        assert c.call("status")["jobs_loaded"] == 5


def test_notification_gets_no_response(harness: Harness) -> None:
    with harness.raw() as c:
        c.request({"jsonrpc": "2.0", "method": "pause", "params": {"job_id": "hello"}})
        c.request({"jsonrpc": "2.0", "method": "show", "params": {"job_id": "nope"}})
        c.request({"jsonrpc": "2.0", "method": "frobnicate"})
        c.request({"jsonrpc": "2.0", "method": "show", "params": [1]})
        c.request({"jsonrpc": "2.0", "method": "status", "id": 1})
        assert c.message()["id"] == 1
    assert harness.api.paused == {"hello"}


def test_unencodable_result_is_an_internal_error(harness: Harness) -> None:
    async def bad_why(job_id: str) -> dict[str, Any]:
        return {"lines": [object()]}

    harness.api.why = bad_why  # type: ignore[method-assign]
    with harness.client() as c:
        with pytest.raises(p.RPCError) as e:
            c.call("why", job_id="hello")
        assert e.value.code == p.INTERNAL_ERROR
        assert c.call("status")["jobs_loaded"] == 5


def test_line_too_long_is_refused_and_closed() -> None:
    with serve(max_line=1024) as h, h.raw() as c:
        c.send(b'{"x": "' + b"a" * 5000)
        err = c.message()["error"]
        assert err["code"] == p.INVALID_REQUEST and "longer than 1024" in err["message"]
        assert c.closed()
        h.healthy()


def test_last_request_without_newline_on_half_close(harness: Harness) -> None:
    with harness.raw() as c:
        c.send(b'{"jsonrpc":"2.0","method":"status","id":9}')
        c.sock.shutdown(socket.SHUT_WR)
        assert c.message()["id"] == 9
        assert c.closed()


def test_stalled_request_and_idle_client_are_closed(fast_harness: Harness) -> None:
    h = fast_harness
    with h.raw() as stalled, h.raw() as idle, h.raw() as trickle:
        stalled.send(b'{"jsonrpc": "2.0", "met')
        t0 = time.monotonic()
        err = stalled.message()["error"]
        assert "not completed within" in err["message"]
        assert stalled.closed()
        for _ in range(6):  # a byte at a time never resets the request's deadline
            try:
                trickle.send(b" ")
            except BrokenPipeError:
                break
            time.sleep(0.1)
        assert trickle.closed()
        assert idle.closed()
        assert time.monotonic() - t0 < 3
        h.healthy()


def test_client_that_does_not_read_is_dropped(fast_harness: Harness) -> None:
    h = fast_harness
    with h.raw() as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # ask for far more answers than the socket buffers hold, and never read them
        req = p.encode(p.request("list", None, 1)) * 3000
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                c.send(req)
        h.healthy()


def test_many_concurrent_clients(harness: Harness) -> None:
    clients = [harness.raw(timeout=10) for _ in range(200)]
    try:
        for i, c in enumerate(clients):
            c.request({"jsonrpc": "2.0", "method": "status", "id": i})
        for i, c in enumerate(clients):
            assert c.message()["id"] == i
    finally:
        for c in clients:
            c.sock.close()


# --- subscriptions -----------------------------------------------------------------------


def collect(c: p.Client, sid: int) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for msg in c.notifications():
        params = msg["params"]
        if params["subscription"] == sid:
            out.append((msg["method"], params))
            if msg["method"] == "end":
                return out
    raise AssertionError("connection closed before the end")


def test_subscribe_follows_a_run_and_its_log(harness: Harness) -> None:
    with harness.client(timeout=10) as c:
        run = c.call("run", job_id="slow")["run"]
        sub = c.call("subscribe", run_id=run["run_id"], logs=True)
        assert sub["run"]["run_id"] == run["run_id"]
        events = collect(c, sub["subscription"])
        log = "".join(params["data"] for m, params in events if m == "log")
        assert log == "one\ntwo\nthree\n"
        states = [params["run"]["state"] for m, params in events if m == "run"]
        assert states[-1] == "succeeded" and "running" in [*states[:-1], sub["run"]["state"]]
        _method, end = events[-1]
        assert end["reason"] == "finished" and end["run"]["state"] == "succeeded"
        offsets = [(params["offset"], params["next_offset"]) for m, params in events if m == "log"]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(offsets))
        # the connection serves requests after the subscription ended
        assert c.call("status")["jobs_loaded"] == 5


def test_subscribe_to_a_finished_run_sends_the_rest_and_ends(harness: Harness) -> None:
    rid = harness.call("run", job_id="hello")["run"]["run_id"]
    wait_state(harness, rid, "succeeded")
    with harness.client() as c:
        sub = c.call("subscribe", job_id="hello", logs=True, offset=6, encoding="base64")
        events = collect(c, sub["subscription"])
        assert [m for m, _ in events] == ["log", "end"]
        assert base64.b64decode(events[0][1]["data"]) == b"world\n"


def test_subscribe_to_all_runs_and_unsubscribe(harness: Harness) -> None:
    with harness.client(timeout=10) as c:
        sid = c.call("subscribe")["subscription"]
        sid_job = c.call("subscribe", job_id="fails")["subscription"]
        rid = harness.call("run", job_id="hello")["run"]["run_id"]
        fid = harness.call("run", job_id="fails")["run"]["run_id"]
        seen: dict[int, list[tuple[int, str]]] = {sid: [], sid_job: []}
        for msg in c.notifications():
            params = msg["params"]
            seen[params["subscription"]].append((params["run"]["run_id"], params["run"]["state"]))
            if {(fid, "failed"), (rid, "succeeded")} <= set(seen[sid]) and (fid, "failed") in seen[
                sid_job
            ]:
                break
        assert (rid, "succeeded") in seen[sid] and (rid, "queued") in seen[sid]
        assert {r for r, _ in seen[sid_job]} == {fid}
        assert c.call("unsubscribe", subscription=sid) == {"unsubscribed": True}
        assert c.call("unsubscribe", subscription=sid) == {"unsubscribed": False}
        with pytest.raises(p.RPCError) as e:
            c.call("subscribe", job_id="nope")
        assert e.value.code == p.NOT_FOUND


def test_vanished_subscribers_do_not_stall_the_server(harness: Harness) -> None:
    ids = []
    for _ in range(20):
        c = harness.client()
        rid = c.call("run", job_id="slow")["run"]["run_id"]
        ids.append(rid)
        c.call("subscribe", run_id=rid, logs=True)
        c.call("subscribe")
        c.close()  # gone without a word, mid-stream
    harness.healthy()
    # One runs, one waits, the next ones fold into the waiting one (overlap = "queue").
    assert ids[:2] == [1, 2] and len(set(ids)) < len(ids)
    for rid in sorted(set(ids)):
        wait_state(harness, rid, "succeeded")
    harness.healthy()


# --- lifecycle ---------------------------------------------------------------------------


def test_socket_mode_and_removal() -> None:
    with serve(socket_mode=0o600) as h:
        path = h.path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(path.stat().st_mode)
    assert not path.exists()  # removed on exit


def _config(d: Path, **kw: Any) -> DaemonConfig:
    return DaemonConfig(path=None, jobs_dir=d, state_dir=d, socket=d / "s" / "jobd.sock", **kw)


def test_stale_socket_replaced_live_one_refused() -> None:
    d = Path(tempfile.mkdtemp(prefix="jobd-ctl-"))
    config = _config(d, socket_group="nogroup")
    (d / "s").mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(config.socket))
    stale.close()  # a socket file nobody listens on
    api = FakeDaemon(d)

    async def serve_twice() -> None:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(api.serve)
                await tg.start(ControlServer(api, config).serve)
                assert (await anyio.Path(config.socket).stat()).st_gid == 65534  # socket_group
                with pytest.raises(OSError, match="another daemon is listening"):
                    await ControlServer(api, config).serve()
                assert await anyio.Path(config.socket).exists()  # the live one is left alone
                tg.cancel_scope.cancel()

    async def serve_once(config: DaemonConfig) -> None:
        with anyio.fail_after(5):
            await ControlServer(api, config).serve()

    try:
        anyio.run(serve_twice)
        assert not config.socket.exists()
        config.socket.write_text("not a socket")
        with pytest.raises(OSError, match="not a socket"):
            anyio.run(serve_once, config)
        with pytest.raises(ConfigError, match="no group"):
            anyio.run(serve_once, _config(d, socket_group="no-such-group-x"))
    finally:
        shutil.rmtree(d)


def test_server_survives_threads_of_abuse(harness: Harness) -> None:
    """Many clients at once, each doing something different and rude."""

    def rude(i: int) -> None:
        try:
            with harness.raw(timeout=5) as c:
                if i % 4 == 0:
                    c.send(os.urandom(3000))
                elif i % 4 == 1:
                    c.send(b'{"jsonrpc":"2.0","method":"status","id":1}\n')
                    c.sock.shutdown(socket.SHUT_RDWR)
                elif i % 4 == 2:
                    c.request({"jsonrpc": "2.0", "method": "subscribe", "id": 1})
                else:
                    c.send(b"[" * 10000 + b"\n")
                    c.message()
        except OSError:
            pass

    threads = [threading.Thread(target=rude, args=(i,)) for i in range(80)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    harness.healthy()
