"""LocalExecutor against real processes: exit, output, cap, stop sequence, groups, errors."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import threading
import time
from pathlib import Path

import anyio
import pytest

from jobd.config.model import CommandAction
from jobd.executors import (
    RUN_ID_VAR,
    Cancel,
    LocalExecutor,
    ProcessResult,
    argv_for,
    find_leftovers,
    process_start_ticks,
)
from jobd.executors.contain import instance_tag
from jobd.executors.local import plan_user
from tests.executors.conftest import PATH, SpecFactory
from tests.executors.helpers import alive, eventually, pids_in, read_log, write_log

MARKER_LINE = "[jobd: output truncated after {} bytes]\n"


async def test_exit_codes(executor: LocalExecutor, make_spec: SpecFactory) -> None:
    with anyio.fail_after(10):
        ok = await executor.run(make_spec(["true"]))
        failed = await executor.run(make_spec(["sh", "-c", "exit 3"]))
        killed = await executor.run(make_spec(["sh", "-c", "kill -USR1 $$"]))
    assert ok == ProcessResult(exit_code=0)
    assert ok.ok
    assert failed == ProcessResult(exit_code=3)
    assert not failed.ok
    assert killed == ProcessResult(exit_code=None, signal=signal.SIGUSR1)


async def test_shell_string_vs_exec_list(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    shell = argv_for(CommandAction(command="echo $0 | tr a-z A-Z"), default_python="unused")
    exec_ = argv_for(CommandAction(command=("echo", "$0", "|", "tr")), default_python="unused")
    with anyio.fail_after(10):
        assert (await executor.run(make_spec(shell))).ok
        assert (await executor.run(make_spec(exec_))).ok
    assert (await read_log(log)) == "/BIN/SH\n$0 | tr\n"


async def test_exact_env_and_cwd(
    executor: LocalExecutor, make_spec: SpecFactory, env: dict[str, str], log: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work dir"
    await anyio.Path(work).mkdir()
    with anyio.fail_after(10):
        await executor.run(make_spec(["env"], env={"FOO": "bar baz", "EMPTY": ""}))
        lines = (await read_log(log)).splitlines()
        await anyio.Path(log).unlink()
        await executor.run(make_spec(["pwd"], cwd=work))
    expected = {**env, "FOO": "bar baz", "EMPTY": ""}
    assert sorted(lines) == sorted(f"{k}={v}" for k, v in expected.items())
    assert (await read_log(log)) == f"{work}\n"


async def test_stdout_stderr_to_log_stdin_is_null(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    await write_log(log, "earlier stage\n")
    # cat would wait forever on an inherited terminal or pipe
    script = "echo out; echo err >&2; cat; echo after-cat"
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["sh", "-c", script]))
    assert result.ok
    assert (await read_log(log)) == "earlier stage\nout\nerr\nafter-cat\n"


async def test_flood_is_capped_and_drained(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    cap = 1 << 20
    started = time.monotonic()
    with anyio.fail_after(10):
        result = await executor.run(
            make_spec(["head", "-c", str(50 << 20), "/dev/zero"], log_max_bytes=cap)
        )
    elapsed = time.monotonic() - started
    assert result.ok
    assert elapsed < 5
    data = await anyio.Path(log).read_bytes()
    assert data == b"\0" * cap + b"\n" + MARKER_LINE.format(cap).encode()


async def test_cap_counts_what_the_log_already_holds(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    await write_log(log, "previous\n")
    with anyio.fail_after(10):
        await executor.run(
            make_spec(["sh", "-c", "echo 0123456789; echo abcdefghij"], log_max_bytes=21)
        )
    assert (await read_log(log)) == "previous\n0123456789\na\n" + MARKER_LINE.format(21)


async def test_timeout_term_then_kill(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobd.executors")
    spec = make_spec(
        ["sh", "-c", "trap '' TERM; echo ready; sleep 30"], timeout=0.3, kill_grace=0.3
    )
    started = time.monotonic()
    with anyio.fail_after(10):
        result = await executor.run(spec)
    elapsed = time.monotonic() - started
    assert result == ProcessResult(exit_code=None, signal=signal.SIGKILL, timed_out=True)
    assert 0.6 <= elapsed < 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("SIGTERM" in m for m in messages)
    assert any("sending SIGKILL" in m for m in messages)
    assert (await read_log(log)).splitlines() == [
        "ready",
        "[jobd: timed out after 0.3s: SIGTERM to the process group, SIGKILL after 0.3s]",
        "[jobd: still running 0.3s after SIGTERM: SIGKILL sent]",
    ]


async def test_timeout_graceful_exit_within_grace(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobd.executors")
    script = "trap 'echo cleaning up; exit 7' TERM; while :; do sleep 0.05; done"
    started = time.monotonic()
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["sh", "-c", script], timeout=0.3, kill_grace=5))
    assert result == ProcessResult(exit_code=7, timed_out=True)
    assert time.monotonic() - started < 2
    assert "cleaning up\n" in (await read_log(log))
    assert not any("sending SIGKILL" in r.getMessage() for r in caplog.records)


async def test_cancel_event(executor: LocalExecutor, make_spec: SpecFactory) -> None:
    cancel = Cancel()
    seen: list[tuple[int, int | None]] = []

    async def on_started(pid: int, ticks: int | None) -> None:
        seen.append((pid, ticks))
        cancel.set()

    started = time.monotonic()
    with anyio.fail_after(10):
        result = await executor.run(
            make_spec(["sleep", "30"]), on_started=on_started, cancel=cancel
        )
    assert result == ProcessResult(exit_code=None, signal=signal.SIGTERM, cancelled=True)
    assert time.monotonic() - started < 2
    [(pid, ticks)] = seen
    assert ticks is not None and ticks > 0
    assert not alive(pid)


async def test_cancel_set_before_start_runs_nothing(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path, tmp_path: Path
) -> None:
    cancel = Cancel()
    cancel.set()
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["touch", str(tmp_path / "ran")]), cancel=cancel)
    assert result == ProcessResult(exit_code=None, cancelled=True)
    assert not await anyio.Path(tmp_path / "ran").exists()
    assert (await read_log(log)) == "[jobd: cancelled before it started]\n"


async def test_on_started_gets_pid_and_start_ticks(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    seen: list[tuple[int, int | None, int | None]] = []

    async def on_started(pid: int, ticks: int | None) -> None:
        seen.append((pid, ticks, process_start_ticks(pid)))

    with anyio.fail_after(10):
        await executor.run(make_spec(["sh", "-c", "echo $$"]), on_started=on_started)
    [(pid, ticks, ticks_now)] = seen
    assert pids_in(await read_log(log)) == [pid]
    assert ticks is not None and ticks == ticks_now


async def wait_dead(pid: int) -> None:
    # SIGKILLed: its output is closed before it is quite gone, so allow it a moment
    await eventually(lambda: not alive(pid), within=2)


async def test_forked_children_do_not_survive(make_spec: SpecFactory, log: Path) -> None:
    # the background sleep also holds the output pipe: the run must still end at once,
    # not after the drain timeout
    executor = LocalExecutor(drain_timeout=5)
    started = time.monotonic()
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["sh", "-c", "sleep 100 & echo $!"]))
    assert result.ok
    assert time.monotonic() - started < 2.5
    [child] = pids_in(await read_log(log))
    await wait_dead(child)


async def test_scope_cancellation_stops_the_group(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    leader: list[int] = []
    returned = False

    async def on_started(pid: int, ticks: int | None) -> None:
        leader.append(pid)

    async def run() -> None:
        nonlocal returned
        await executor.run(
            make_spec(["sh", "-c", "sleep 100 & echo $!; wait"]), on_started=on_started
        )
        returned = True

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await eventually(lambda: log.exists() and bool(pids_in(log.read_text())))
            tg.cancel_scope.cancel()
    assert not returned
    [child] = pids_in(await read_log(log))
    assert not alive(leader[0])
    await wait_dead(child)
    assert "[jobd: stopped: the daemon cancelled the run (shutting down?)" in (await read_log(log))


async def test_error_in_on_started_stops_the_process(
    executor: LocalExecutor, make_spec: SpecFactory
) -> None:
    leader: list[int] = []

    async def on_started(pid: int, ticks: int | None) -> None:
        leader.append(pid)
        raise OSError("journal is gone")

    with anyio.fail_after(10), pytest.raises(OSError, match="journal is gone"):
        await executor.run(make_spec(["sleep", "30"]), on_started=on_started)
    assert not alive(leader[0])


# start a process in a session of its own, and wait until it is there (field 6: session id)
ESCAPE = (
    "setsid sleep 100 & p=$!; echo $p; "
    "while [ \"$(cut -d' ' -f6 /proc/$p/stat)\" != $p ]; do sleep 0.01; done"
)


async def test_setsid_escapee_does_not_hold_the_run(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    log: Path,
    marker: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a process that leaves the group (setsid) is stopped when the run ends, found by its
    # cgroup leaf or its marker: it neither holds the run nor outlives it
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["sh", "-c", ESCAPE], kill_grace=0.5))
    assert result.ok
    text = await read_log(log)
    assert "stopped 1 process(es) that outlived the run's process group" in text
    assert "no longer reading it]" not in text
    [escapee] = pids_in(text)
    with anyio.fail_after(10):
        while alive(escapee):  # noqa: ASYNC110 (another process: nothing to wait on)
            await anyio.sleep(0.02)
    assert (
        await anyio.to_thread.run_sync(lambda: find_leftovers(1, None, None, marker=marker)) == []
    )


async def test_no_thread_per_child(
    executor: LocalExecutor, make_spec: SpecFactory, tmp_path: Path
) -> None:
    before = threading.active_count()
    during: list[int] = []

    async def one(i: int) -> None:
        # long enough that no run has ended (and been swept for escapees) by the sample
        # each its own run id, as in the daemon: runs sharing one would share a cgroup leaf
        await executor.run(
            make_spec(["sleep", "1"], log_path=tmp_path / f"{i}.log", env={RUN_ID_VAR: str(i + 1)})
        )

    async def sample() -> None:
        await anyio.sleep(0.15)
        during.append(threading.active_count())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i)
            tg.start_soon(sample)
    # not one more thread but the one that moves children into their cgroup leaves (an
    # idle worker thread of an earlier test may end meanwhile)
    assert len(during) == 1 and during[0] <= before + 1


async def test_runs_started_together_each_enter_their_own_leaf(
    executor: LocalExecutor, make_spec: SpecFactory, tmp_path: Path, marker: str
) -> None:
    """Processes spawned in one turn of the loop are moved into their leaves as one batch:
    each still lands in its own, and each run hears its start ticks."""
    if executor.contained().base is None:
        pytest.skip("no delegated cgroup v2 here (needs a writable own cgroup)")
    ticks: dict[int, int | None] = {}

    async def one(i: int) -> None:
        async def on_started(pid: int, start: int | None) -> None:
            ticks[i] = start

        spec = make_spec(
            ["sh", "-c", "sleep 0.3; cat /proc/self/cgroup"],
            log_path=tmp_path / f"{i}.log",
            env={RUN_ID_VAR: str(i + 1)},
        )
        assert (await executor.run(spec, on_started=on_started)).ok

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i)
    tag = instance_tag(marker)
    for i in range(16):
        assert (tmp_path / f"{i}.log").read_text().strip().endswith(f"/jobd-{tag}-{i + 1}")
    assert len(ticks) == 16 and None not in ticks.values()


# --- what cannot start --------------------------------------------------------------------


async def test_command_not_found(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["no-such-command-jobd"]))
    error = f"command not found: 'no-such-command-jobd' (No such file or directory; PATH={PATH})"
    assert result == ProcessResult(exit_code=None, error=error)
    assert (await read_log(log)) == f"[jobd: {error}]\n"


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        (b"#!/bin/sh\necho hi\n", 0o644, "permission denied: cannot execute './tool' "),
        (b"\x01\x02 not a program\n", 0o755, "cannot execute './tool': neither a binary nor a #!"),
        (b"#!/no/such/interpreter\n", 0o755, "cannot run './tool': the interpreter on its #! line"),
    ],
)
async def test_file_that_cannot_run(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    tmp_path: Path,
    content: bytes,
    mode: int,
    expected: str,
) -> None:
    tool = tmp_path / "tool"
    tool.write_bytes(content)
    tool.chmod(mode)
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["./tool"]))
    assert result.exit_code is None
    assert result.error is not None and result.error.startswith(expected)


async def test_missing_workdir(
    executor: LocalExecutor, make_spec: SpecFactory, tmp_path: Path
) -> None:
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["true"], cwd=tmp_path / "gone"))
    assert result.error == (
        f"cannot enter working directory '{tmp_path / 'gone'}' (No such file or directory)"
    )


async def test_unwritable_log_drops_output_but_the_run_goes_on(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["echo", "hi"], log_path=tmp_path))
    assert result.exit_code == 0 and result.error is None
    assert f"cannot open its log {tmp_path}: Is a directory" in caplog.text


async def test_a_quiet_run_leaves_no_log_file(
    executor: LocalExecutor, make_spec: SpecFactory, tmp_path: Path
) -> None:
    log = tmp_path / "quiet.log"
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["true"], log_path=log))
    assert result.exit_code == 0 and not log.exists()


# --- users ----------------------------------------------------------------------------------


def test_plan_user() -> None:
    nobody = pwd.getpwnam("nobody")
    assert plan_user(None, euid=0) is None
    as_root = plan_user("nobody", euid=0)
    assert as_root is not None
    assert (as_root.uid, as_root.gid, as_root.home, as_root.switch) == (
        nobody.pw_uid,
        nobody.pw_gid,
        nobody.pw_dir,
        True,
    )
    assert nobody.pw_gid in as_root.groups
    same = plan_user(str(nobody.pw_uid), euid=nobody.pw_uid)
    assert same is not None and not same.switch and same.name == "nobody"
    with pytest.raises(
        ValueError,
        match=r"cannot run as user 'nobody': the daemon runs as "
        r"uid 1234, not root",
    ):
        plan_user("nobody", euid=1234)
    with pytest.raises(ValueError, match="cannot run as user 'no-such-user-jobd': no such user"):
        plan_user("no-such-user-jobd", euid=0)


async def test_unknown_user_fails_the_run(
    executor: LocalExecutor, make_spec: SpecFactory, log: Path
) -> None:
    with anyio.fail_after(10):
        result = await executor.run(make_spec(["true"], user="no-such-user-jobd"))
    assert result.error == "cannot run as user 'no-such-user-jobd': no such user"
    assert (await read_log(log)) == f"[jobd: {result.error}]\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs the tests to run as root")
async def test_runs_as_user(executor: LocalExecutor, make_spec: SpecFactory, log: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    script = 'id -u; id -g; echo "$HOME $USER $LOGNAME"'
    with anyio.fail_after(10):
        result = await executor.run(
            make_spec(["sh", "-c", script], user="nobody", cwd=Path("/"), env={"HOME": "/root"})
        )
    assert result.ok
    assert (await read_log(log)).splitlines() == [
        str(nobody.pw_uid),
        str(nobody.pw_gid),
        f"{nobody.pw_dir} nobody nobody",
    ]
