"""One set of control-API scenarios, run against both the real daemon and the fake behind the
jobctl tests (``fakeapi.FakeDaemon``), through a real ``ControlServer`` on a unix socket: the
fake cannot drift from the daemon without a test failing, and every JSON-RPC response shape
is pinned (exact keys, no "this or that")."""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from jobd.config.loader import load_config
from jobd.control import protocol as p
from jobd.control.server import ControlServer
from jobd.supervisor.daemon import Daemon
from tests.control.fakeapi import FakeDaemon, FakeJob

JOBS = """\
    [jobs.hello]
    command = "printf 'hello\\\\nworld\\\\n'"
    cron = "0 * * * *"
    [jobs.fails]
    command = "echo oops; exit 3"
    [jobs.hold]
    command = "echo waiting; exec sleep 30"
    kill_grace = "2s"
    [jobs.params]
    command = "true"
    params = { name = "world" }
    """

FAKE_JOBS = [
    FakeJob("hello", output=[b"hello\n", b"world\n"], cron="0 * * * *"),
    FakeJob("fails", output=[b"oops\n"], exit_code=3),
    FakeJob("hold", output=[b"waiting\n"], hold=True),
    FakeJob("params", params={"name": "world"}),
]

STATUS_KEYS = {
    "pid",
    "version",
    "started_at",
    "uptime_seconds",
    "jobs_loaded",
    "runs_running",
    "runs_queued",
    "paused",
    "stale",
    "journal_fault",
    "loop_stall_max_seconds",
    "loop_stalls",
    "invalid_files",
}
JOB_KEYS = {
    "job_id",
    "file",
    "triggers",
    "next_run",
    "last_run",
    "paused",
    "enabled",
    "description",
    "timezone",
    "stale",
}
SHOW_KEYS = {
    "job_id",
    "file",
    "line",
    "definition",
    "paused",
    "next_fire_times",
    "description",
    "timezone",
    "stale",
}
RUN_KEYS = {
    "run_id",
    "job_id",
    "flow_id",
    "trigger",
    "scheduled_for",
    "attempt",
    "state",
    "exit_code",
    "queued_at",
    "started_at",
    "finished_at",
    "params",
    "changed_paths",
    "matrix",
    "outputs",
    "pid",
    "message",
    "folded_slots",
    "run_key",
}
LOGS_KEYS = {"run", "offset", "next_offset", "size", "eof", "encoding", "data"}
WHY_KEYS = {"job_id", "lines", "facts"}
FACT_KEYS = {
    "last_run",
    "decisions",
    "paused",
    "enabled",
    "next_run",
    "running",
    "queued",
    "timezone",
    "stale_since",
}


class Rpc:
    """A JSON-RPC client over one unix-socket connection, in the test's event loop."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.next_id = 0

    async def message(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            self.buf += await self.stream.receive()
        line, _, self.buf = self.buf.partition(b"\n")
        msg = json.loads(line)
        assert isinstance(msg, dict)
        return msg

    async def call(self, method: str, **params: Any) -> Any:
        self.next_id += 1
        await self.stream.send(json.dumps(p.request(method, params, self.next_id)).encode() + b"\n")
        while True:
            msg = await self.message()
            if msg.get("id") == self.next_id:
                break
        if "error" in msg:
            assert set(msg) == {"jsonrpc", "id", "error"}, msg
            assert set(msg["error"]) <= {"code", "message", "data"}, msg
            raise p.RPCError(msg["error"]["code"], msg["error"]["message"])
        assert set(msg) == {"jsonrpc", "id", "result"}, msg
        return msg["result"]


@dataclass
class Target:
    kind: str
    socket: Path
    rpc: Rpc
    define: Callable[[str], None]  # a new job that runs ``true``, seen at the next reload
    remove: Callable[[str], None]  # a job gone, seen at the next reload

    async def state_of(self, run_id: int, *states: str) -> dict[str, Any]:
        """The run once it is in one of ``states``."""
        with anyio.fail_after(10):
            while True:
                run = (await self.rpc.call("logs", run_id=run_id, max_bytes=0))["run"]
                if run["state"] in states:
                    return dict(run)
                await anyio.sleep(0.01)


@asynccontextmanager
async def target(kind: str) -> AsyncIterator[Target]:
    root = Path(tempfile.mkdtemp(prefix="jobd-ct-"))  # short: unix socket paths are limited
    try:
        (root / "jobs.d").mkdir()
        (root / "jobs.d" / "jobs.toml").write_text(textwrap.dedent(JOBS))
        (root / "jobd.toml").write_text(
            textwrap.dedent("""\
            [daemon]
            jobs_dir = "jobs.d"
            state_dir = "var"
            socket = "var/jobd.sock"
            timezone = "UTC"
            shutdown_grace = "5s"
            """)
        )
        config = load_config(root / "jobd.toml")
        async with anyio.create_task_group() as tg:
            if kind == "real":
                daemon = Daemon(config, watch_jobs_dir=False, handle_signals=False)
                with anyio.fail_after(10):
                    await tg.start(daemon.run)

                def define(job_id: str) -> None:
                    (root / "jobs.d" / f"{job_id}.toml").write_text(
                        f'[jobs.{job_id}]\ncommand = "true"\n'
                    )

                def remove(job_id: str) -> None:
                    text = (root / "jobs.d" / "jobs.toml").read_text()
                    head, _, tail = text.partition(f"[jobs.{job_id}]\n")
                    rest = tail.partition("\n[")[2]
                    (root / "jobs.d" / "jobs.toml").write_text(head + ("[" + rest if rest else ""))

                stop = daemon.stop
            else:
                fake = FakeDaemon(config.state_dir)
                for job in FAKE_JOBS:
                    fake.add(FakeJob(**{**job.__dict__}))
                server = ControlServer(fake, config)
                await tg.start(fake.serve)
                await tg.start(server.serve)

                def define(job_id: str) -> None:
                    fake.staged[job_id] = FakeJob(job_id)

                def remove(job_id: str) -> None:
                    fake.staged[job_id] = None

                stop = tg.cancel_scope.cancel
            try:
                async with await anyio.connect_unix(config.socket) as stream:
                    yield Target(kind, config.socket, Rpc(stream), define, remove)
            finally:
                stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


BOTH = pytest.mark.parametrize("kind", ["fake", "real"])


def states(events: list[dict[str, Any]]) -> list[str]:
    """The states a run went through, each once (a pid update repeats ``running``)."""
    out: list[str] = []
    for e in events:
        if not out or out[-1] != e["state"]:
            out.append(e["state"])
    return out


@BOTH
async def test_status_list_and_show(kind: str) -> None:
    async with target(kind) as t:
        st = await t.rpc.call("status")
        assert set(st) == STATUS_KEYS
        assert isinstance(st["loop_stall_max_seconds"], float) and st["loop_stall_max_seconds"] >= 0
        assert isinstance(st["loop_stalls"], int) and st["loop_stalls"] >= 0
        assert (
            st["jobs_loaded"],
            st["runs_running"],
            st["runs_queued"],
            st["paused"],
            st["invalid_files"],
        ) == (4, 0, 0, [], [])
        listed = await t.rpc.call("list")
        assert set(listed) == {"jobs", "invalid_files"}
        jobs = {j["job_id"]: j for j in listed["jobs"]}
        assert list(jobs) == ["fails", "hello", "hold", "params"]
        assert all(set(j) == JOB_KEYS for j in jobs.values())
        assert jobs["hello"]["triggers"] == ["cron '0 * * * *' (UTC)"]
        assert jobs["params"]["triggers"] == ["manual"]
        assert jobs["hello"]["next_run"].endswith(":00:00+00:00")
        assert jobs["params"]["next_run"] is None and jobs["params"]["last_run"] is None
        shown = await t.rpc.call("show", job_id="params")
        assert set(shown) == SHOW_KEYS and shown["next_fire_times"] == []
        assert shown["definition"]["params"] == {"name": "world"}
        assert shown["file"].endswith(".toml") and shown["line"] >= 1
        hello = await t.rpc.call("show", job_id="hello")
        assert len(hello["next_fire_times"]) == 5
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("show", job_id="nope")
        assert (e.value.code, e.value.message) == (p.NOT_FOUND, "no job 'nope'")


@BOTH
async def test_a_run_is_journaled_then_published_to_its_end(kind: str) -> None:
    async with target(kind) as t:
        follower = Rpc(await anyio.connect_unix(t.socket))
        async with follower.stream:
            sub = await follower.call("subscribe")
            assert set(sub) == {"subscription", "run"} and sub["run"] is None
            run = (await t.rpc.call("run", job_id="hello"))["run"]
            assert set(run) == RUN_KEYS
            assert (run["job_id"], run["trigger"], run["state"], run["params"], run["attempt"]) == (
                "hello",
                "manual",
                "queued",
                {},
                1,
            )
            events: list[dict[str, Any]] = []
            with anyio.fail_after(10):
                while not events or events[-1]["state"] != "succeeded":
                    msg = await follower.message()
                    assert set(msg) == {"jsonrpc", "method", "params"}
                    assert msg["method"] == "run"
                    events.append(msg["params"]["run"])
        assert {e["run_id"] for e in events} == {run["run_id"]}
        assert states(events) == ["queued", "running", "succeeded"]
        done = events[-1]
        assert (done["exit_code"], done["message"]) == (0, None)
        logs = await t.rpc.call("logs", run_id=run["run_id"])
        assert set(logs) == LOGS_KEYS
        assert (logs["data"], logs["eof"], logs["size"]) == ("hello\nworld\n", True, 12)
        runs = await t.rpc.call("runs", job_id="hello", limit=5, state=None)
        assert set(runs) == {"runs"} and [r["run_id"] for r in runs["runs"]] == [run["run_id"]]
        last = {j["job_id"]: j for j in (await t.rpc.call("list"))["jobs"]}["hello"]["last_run"]
        assert set(last) == {"run_id", "state", "finished_at"}
        assert (last["run_id"], last["state"]) == (run["run_id"], "succeeded")


@BOTH
async def test_a_failing_run_and_params(kind: str) -> None:
    async with target(kind) as t:
        rid = (await t.rpc.call("run", job_id="fails"))["run"]["run_id"]
        done = await t.state_of(rid, "succeeded", "failed")
        assert (done["state"], done["exit_code"], done["message"]) == ("failed", 3, "exit code 3")
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("run", job_id="params", params={"nope": "1", "name": "x"})
        assert (e.value.code, e.value.message) == (
            p.INVALID_PARAMS,
            "job 'params' has no param 'nope'; its params: name",
        )
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("run", job_id="hello", params={"x": "1"})
        assert e.value.message == "job 'hello' has no param 'x'; its params: none"
        run = (await t.rpc.call("run", job_id="params", params={"name": "x"}))["run"]
        assert run["params"] == {"name": "x"}  # the given ones; defaults apply when it runs
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("run", job_id="nope")
        assert (e.value.code, e.value.message) == (p.NOT_FOUND, "no job 'nope'")
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("runs", job_id="nope", limit=5, state=None)
        assert e.value.code == p.NOT_FOUND


@BOTH
async def test_queued_runs_fold_and_cancel(kind: str) -> None:
    async with target(kind) as t:
        a = (await t.rpc.call("run", job_id="hold"))["run"]["run_id"]
        await t.state_of(a, "running")
        b = (await t.rpc.call("run", job_id="hold"))["run"]
        assert (b["state"], b["run_id"] != a) == ("queued", True)  # overlap = "queue": waits
        c = (await t.rpc.call("run", job_id="hold"))["run"]
        assert c["run_id"] == b["run_id"]  # folded into the queued run
        st = await t.rpc.call("status")
        assert (st["runs_running"], st["runs_queued"]) == (1, 1)
        why = await t.rpc.call("why", job_id="hold")
        assert set(why) == WHY_KEYS and set(why["facts"]) == FACT_KEYS
        assert (why["facts"]["running"], why["facts"]["queued"]) == ([a], [b["run_id"]])
        assert f"Running now: run {a}." in why["lines"]
        assert await t.rpc.call("cancel", job_id="hold") == {"cancelled": [a, b["run_id"]]}
        gone = await t.state_of(b["run_id"], "cancelled")
        assert gone["message"] == "cancelled while queued" and gone["started_at"] is None
        stopped = await t.state_of(a, "cancelled")
        assert stopped["message"] == "cancelled"
        with anyio.fail_after(10):  # its final state is written just before it leaves
            while True:
                if not (await t.rpc.call("status"))["runs_running"]:
                    break
                await anyio.sleep(0.01)
        assert await t.rpc.call("cancel", run_id=a) == {"cancelled": []}
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("cancel", run_id=99999)
        assert (e.value.code, e.value.message) == (p.NOT_FOUND, "no run '99999'")


@BOTH
async def test_pause_resume_and_why(kind: str) -> None:
    async with target(kind) as t:
        why = await t.rpc.call("why", job_id="params")
        assert why["lines"] == [
            "'params' has not run yet.",
            "It has no triggers: it runs only when asked (jobctl run).",
        ]
        assert await t.rpc.call("pause", job_id="hello") == {"job_id": "hello", "paused": True}
        assert (await t.rpc.call("status"))["paused"] == ["hello"]
        hello = {j["job_id"]: j for j in (await t.rpc.call("list"))["jobs"]}["hello"]
        assert (hello["paused"], hello["next_run"]) == (True, None)
        why = await t.rpc.call("why", job_id="hello")
        assert (
            "Next: never by itself: the job is paused (jobctl resume to restart it)."
            in why["lines"]
        )
        assert await t.rpc.call("resume", job_id="hello") == {"job_id": "hello", "paused": False}
        assert (await t.rpc.call("status"))["paused"] == []
        with pytest.raises(p.RPCError) as e:
            await t.rpc.call("pause", job_id="nope")
        assert e.value.code == p.NOT_FOUND


@BOTH
async def test_reload_reads_the_job_files_again(kind: str) -> None:
    async with target(kind) as t:
        a = (await t.rpc.call("run", job_id="hold"))["run"]["run_id"]
        await t.state_of(a, "running")
        queued = (await t.rpc.call("run", job_id="hold"))["run"]["run_id"]
        t.define("extra")
        t.remove("hold")
        st = await t.rpc.call("reload")
        assert set(st) == STATUS_KEYS and st["jobs_loaded"] == 4
        ids = [j["job_id"] for j in (await t.rpc.call("list"))["jobs"]]
        assert ids == ["extra", "fails", "hello", "params"]
        assert (await t.state_of(queued, "cancelled"))["message"] == "cancelled while queued"
        # the removed job's runs stay listed; its running run is not stopped by the reload
        runs = (await t.rpc.call("runs", job_id="hold", limit=5, state=None))["runs"]
        assert [r["run_id"] for r in runs] == [queued, a]
        assert (await t.rpc.call("logs", run_id=a, max_bytes=0))["run"]["state"] == "running"
        assert await t.rpc.call("cancel", run_id=a) == {"cancelled": [a]}
        await t.state_of(a, "cancelled")
