"""Start ticks, stopping groups, and finding leftovers of a run after a crash."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from jobd.executors.process import (
    INSTANCE_VAR,
    RUN_ID_VAR,
    find_leftovers,
    parse_start_ticks,
    process_start_ticks,
    stop_leftovers,
    stop_process_group,
)
from tests.executors.conftest import PATH
from tests.executors.helpers import alive, eventually

Popen = Callable[..., subprocess.Popen[bytes]]


def stat_line(comm: str, start: int) -> bytes:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice threads itrealvalue starttime vsize ...
    fields = [
        "S",
        "1",
        "2",
        "3",
        "0",
        "-1",
        "4194560",
        "5",
        "0",
        "0",
        "0",
        "7",
        "8",
        "0",
        "0",
        "20",
        "0",
        "1",
        "0",
        str(start),
        "1000",
        "50",
    ]
    return f"4242 ({comm}) {' '.join(fields)}\n".encode()


@pytest.mark.parametrize("comm", ["sleep", "a b", "x) R 1 2 3 4 5", "(", ")", ") (", ""])
def test_parse_start_ticks(comm: str) -> None:
    assert parse_start_ticks(stat_line(comm, 987654)) == 987654


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"4242 (x) S 1 2",
        b"no paren at all " * 5,
        stat_line("x", 1).replace(b" 1 1000", b" z 1000"),
    ],
)
def test_parse_start_ticks_garbage(line: bytes) -> None:
    assert parse_start_ticks(line) is None


def test_start_ticks_of_a_process_with_a_tricky_name(tmp_path: Path, popen: Popen) -> None:
    tricky = tmp_path / "x) R 1 2 3 4 5"
    shutil.copy("/bin/sleep", tricky)
    proc = popen([str(tricky), "30"])
    ticks = process_start_ticks(proc.pid)
    mine = process_start_ticks(os.getpid())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert ticks is not None and mine is not None
    assert mine <= ticks <= (uptime + 1) * os.sysconf("SC_CLK_TCK")
    assert process_start_ticks(proc.pid) == ticks  # stable
    proc.kill()
    proc.wait()
    assert process_start_ticks(proc.pid) is None


def marked(marker: str, run_id: int) -> dict[str, str]:
    return {"PATH": PATH, RUN_ID_VAR: str(run_id), INSTANCE_VAR: marker}


async def test_leftovers_found_by_env_marker_children_too(popen: Popen, marker: str) -> None:
    leader = popen(["sh", "-c", "sleep 30 & wait"], env=marked(marker, 4242))
    other_daemon = popen(["sleep", "30"], env=marked(marker + "-other", 4242))
    other_run = popen(["sleep", "30"], env=marked(marker, 42420))

    def found() -> list[int]:
        return find_leftovers(4242, None, None, marker=marker)

    # sh, then its sleep (eventually polls from a worker thread: find_leftovers blocks)
    await eventually(lambda: len(found()) == 2)
    pids = await anyio.to_thread.run_sync(found)
    assert leader.pid in pids
    assert other_daemon.pid not in pids and other_run.pid not in pids
    [child] = [pid for pid in pids if pid != leader.pid]
    assert await anyio.Path(f"/proc/{child}/cmdline").read_bytes() == b"sleep\x0030\x00"


def test_leftover_found_by_pid_and_start_ticks_only(popen: Popen, marker: str) -> None:
    proc = popen(["sleep", "30"], env={"PATH": PATH})
    ticks = process_start_ticks(proc.pid)
    assert ticks is not None
    assert find_leftovers(7, proc.pid, ticks, marker=marker) == [proc.pid]
    # a pid that was reused by a stranger has other start ticks: never matched
    assert find_leftovers(7, proc.pid, ticks + 1, marker=marker) == []
    assert find_leftovers(7, proc.pid, None, marker=marker) == []


async def test_stop_leftovers_term_then_kill(
    popen: Popen, marker: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobd.executors")
    popen(["sh", "-c", "trap '' TERM; sleep 30 & wait"], env=marked(marker, 5))
    polite = popen(["sleep", "30"], env=marked(marker, 5))
    await eventually(lambda: len(find_leftovers(5, None, None, marker=marker)) == 3)
    pids = await anyio.to_thread.run_sync(lambda: find_leftovers(5, None, None, marker=marker))
    started = time.monotonic()
    with anyio.fail_after(10):
        assert await stop_leftovers([*pids, 999_999_999], grace=0.3) == []
    assert 0.3 <= time.monotonic() - started < 3
    assert not any(alive(pid) for pid in pids)
    killed = {
        r.args[0]  # type: ignore[index]
        for r in caplog.records
        if "sending SIGKILL" in r.getMessage()
    }
    assert killed == set(pids) - {polite.pid}


async def test_stop_process_group_without_pidfd(popen: Popen) -> None:
    proc = popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    with anyio.fail_after(10):
        # our own child stays a zombie until reaped, so reap it as the group goes
        async def reap() -> None:
            await anyio.to_thread.run_sync(proc.wait)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reap)
            killed = await stop_process_group(proc.pid, grace=2)
    assert not killed
    assert proc.returncode == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
