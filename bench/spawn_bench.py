"""How fast can jobd start and finish processes? Not a test: prints runs/s.

    .venv/bin/python bench/spawn_bench.py [-n 1000] [--parallel 8] [--repeat 3]

Runs ``/bin/true`` N times in each mode and prints the best and median rate over the repeats,
each mode's ratio to the bare ``Popen`` loop, and the least CPU time the benchmarking process
(the daemon's side) spent per run, which a busy machine disturbs less than the rates:

- ``popen-loop``: ``subprocess.Popen(...).wait()`` in a loop (the floor everything pays);
- ``posix_spawn-loop``: ``os.posix_spawn`` + ``waitpid`` (no cwd in 3.11, so not usable as is);
- ``asyncio-threaded``: ``asyncio.create_subprocess_exec``, PARALLEL at a time, with
  Python 3.11's default child watcher (a thread per child);
- ``asyncio-pidfd``: the same with ``PidfdChildWatcher``;
- ``probe-*``: the executor's steps stripped bare (pidfd wait, new session), to compare the
  designs it chose between: output to a pipe read by a task or by a reader callback vs
  straight to the log fd, spawn on the loop vs in a worker thread;
- ``LocalExecutor``: ``LocalExecutor.run``, PARALLEL at a time, each run with its own log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobd.executors import LocalExecutor, ProcessSpec

TRUE = "/bin/true"
TMP: str | None = None  # where run logs go: --dir
ENV = {"PATH": "/usr/bin:/bin"}


def popen_loop(n: int) -> None:
    for _ in range(n):
        subprocess.Popen([TRUE], env=ENV).wait()


def posix_spawn_loop(n: int) -> None:
    for _ in range(n):
        pid = os.posix_spawn(TRUE, [TRUE], ENV, setsid=True)
        os.waitpid(pid, 0)


async def _asyncio_many(n: int, parallel: int) -> None:
    limit = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with limit:
            proc = await asyncio.create_subprocess_exec(TRUE, env=ENV)
            await proc.wait()

    await asyncio.gather(*(one() for _ in range(n)))


def asyncio_threaded(n: int, parallel: int) -> None:
    asyncio.run(_asyncio_many(n, parallel))


def asyncio_pidfd(n: int, parallel: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        watcher = asyncio.PidfdChildWatcher()  # type: ignore[attr-defined,unused-ignore]
        loop = asyncio.new_event_loop()
        watcher.attach_loop(loop)
        policy.set_child_watcher(watcher)  # type: ignore[attr-defined,unused-ignore]
    try:
        loop.run_until_complete(_asyncio_many(n, parallel))
    finally:
        loop.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy.set_child_watcher(None)  # type: ignore[attr-defined,arg-type,unused-ignore]


async def _probe_one(log_fd: int, *, pipe: bool, thread: bool, callback: bool = False) -> None:
    """The executor's essentials: Popen with a new session, pidfd, reap; output via a pipe
    drained by a reader task or a reader callback, or straight into the log fd."""

    def spawn() -> tuple[subprocess.Popen[bytes], int | None, int]:
        if pipe:
            read_fd, write_fd = os.pipe()
            proc = subprocess.Popen(
                [TRUE],
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                env=ENV,
                start_new_session=True,
            )
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            return proc, read_fd, os.pidfd_open(proc.pid)
        proc = subprocess.Popen(
            [TRUE],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            env=ENV,
            start_new_session=True,
        )
        return proc, None, os.pidfd_open(proc.pid)

    proc, read_fd, pidfd = await anyio.to_thread.run_sync(spawn) if thread else spawn()

    async def drain(fd: int) -> None:
        while True:
            await anyio.wait_readable(fd)
            data = os.read(fd, 65536)
            if not data:
                break
            os.write(log_fd, data)
        os.close(fd)

    if callback and read_fd is not None:
        loop = asyncio.get_running_loop()
        eof = anyio.Event()

        def readable(fd: int) -> None:
            data = os.read(fd, 65536)
            if data:
                os.write(log_fd, data)
            else:
                loop.remove_reader(fd)
                eof.set()

        loop.add_reader(read_fd, readable, read_fd)
        await anyio.wait_readable(pidfd)
        proc.poll()
        await eof.wait()
        os.close(read_fd)
    else:
        async with anyio.create_task_group() as tg:
            if read_fd is not None:
                tg.start_soon(drain, read_fd)
            await anyio.wait_readable(pidfd)
            proc.poll()
    os.close(pidfd)


async def _parallel(n: int, parallel: int, one: Callable[[int], Awaitable[None]]) -> None:
    limit = anyio.CapacityLimiter(parallel)

    async def guarded(i: int) -> None:
        async with limit:
            await one(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(guarded, i)


def probe(pipe: bool, thread: bool, callback: bool = False) -> Callable[[int, int], None]:
    def run(n: int, parallel: int) -> None:
        with tempfile.TemporaryDirectory(dir=TMP) as tmp:
            log_fd = os.open(Path(tmp) / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                anyio.run(
                    _parallel,
                    n,
                    parallel,
                    lambda _i: _probe_one(log_fd, pipe=pipe, thread=thread, callback=callback),
                )
            finally:
                os.close(log_fd)

    return run


def local_executor(n: int, parallel: int) -> None:
    executor = LocalExecutor()
    with tempfile.TemporaryDirectory(dir=TMP) as tmp:

        async def one(i: int) -> None:
            spec = ProcessSpec(
                argv=(TRUE,), env=ENV, cwd=Path(tmp), log_path=Path(tmp) / f"{i}.log"
            )
            result = await executor.run(spec)
            assert result.ok, result

        anyio.run(_parallel, n, parallel, one)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="directory for the run logs (default: /dev/shm, so that the "
        "file system's cost of creating files is left out)",
    )
    args = parser.parse_args()
    global TMP
    TMP = args.dir
    n, parallel = args.n, args.parallel
    modes: dict[str, Callable[[], None]] = {
        "popen-loop": lambda: popen_loop(n),
        "posix_spawn-loop": lambda: posix_spawn_loop(n),
        "asyncio-threaded": lambda: asyncio_threaded(n, parallel),
        "asyncio-pidfd": lambda: asyncio_pidfd(n, parallel),
        "probe-pipe-on-loop": lambda: probe(pipe=True, thread=False)(n, parallel),
        "probe-pipe-callback": lambda: probe(pipe=True, thread=False, callback=True)(n, parallel),
        "probe-fd-on-loop": lambda: probe(pipe=False, thread=False)(n, parallel),
        "probe-pipe-in-thread": lambda: probe(pipe=True, thread=True)(n, parallel),
        "LocalExecutor": lambda: local_executor(n, parallel),
    }
    rates: dict[str, list[float]] = {name: [] for name in modes}
    cpu_us: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(args.repeat):  # interleaved, so drift in the machine hits every mode
        for name, run in modes.items():
            started, cpu = time.perf_counter(), cpu_seconds()
            run()
            rates[name].append(n / (time.perf_counter() - started))
            cpu_us[name].append((cpu_seconds() - cpu) / n * 1e6)
    print(
        f"/bin/true x {n}, parallel {parallel}, best and median of {args.repeat}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, logs in {TMP}"
    )
    base = max(rates["popen-loop"])
    for name, values in rates.items():
        best = max(values)
        print(
            f"  {name:22} {best:7.0f} runs/s  (median {statistics.median(values):5.0f})  "
            f"x{best / base:.2f} of popen-loop  "
            f"{min(cpu_us[name]):5.0f} us daemon CPU per run"
        )
    print(
        f"  asyncio-pidfd / asyncio-threaded: "
        f"x{max(rates['asyncio-pidfd']) / max(rates['asyncio-threaded']):.2f}"
    )
    print(
        f"  probe fd / pipe: "
        f"x{max(rates['probe-fd-on-loop']) / max(rates['probe-pipe-on-loop']):.2f}; "
        f"probe callback / task reader: "
        f"x{max(rates['probe-pipe-callback']) / max(rates['probe-pipe-on-loop']):.2f}; "
        f"probe in-thread / on-loop: "
        f"x{max(rates['probe-pipe-in-thread']) / max(rates['probe-pipe-on-loop']):.2f}"
    )
    print(
        f"  LocalExecutor / asyncio-threaded: "
        f"x{max(rates['LocalExecutor']) / max(rates['asyncio-threaded']):.2f}"
    )


if __name__ == "__main__":
    main()
