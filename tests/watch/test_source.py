"""WatchSource over real files on disk: every wait bounded, every write from a worker thread."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import anyio

from jobd.triggers.watch import WatchFired, WatchSource

from .conftest import mkdir, spec, watching, write


async def test_a_write_fires_once(tmp_path: Path) -> None:
    async with watching({"job": spec(tmp_path / "*.txt")}) as w:
        await write(tmp_path / "a.txt")  # right after start: the watch must already exist
        assert await w.next() == WatchFired(job_id="job", paths=(str(tmp_path / "a.txt"),))
        assert await w.quiet() == []


async def test_only_matching_jobs_fire(tmp_path: Path) -> None:
    specs = {
        "csv": spec(tmp_path / "in" / "*.csv"),
        "all": spec(tmp_path / "in"),
        "other": spec(tmp_path / "elsewhere" / "*"),
    }
    await mkdir(tmp_path / "in")
    async with watching(specs) as w:
        await write(tmp_path / "in" / "x.csv", tmp_path / "in" / "y.txt")
        got = await w.collect(
            {
                "all": [str(tmp_path / "in" / p) for p in ("x.csv", "y.txt")],
                "csv": [str(tmp_path / "in" / "x.csv")],
            }
        )
        got += await w.quiet()
    by_job = {f.job_id: set(f.paths) for f in got}
    assert by_job == {
        "csv": {str(tmp_path / "in" / "x.csv")},
        "all": {str(tmp_path / "in" / "x.csv"), str(tmp_path / "in" / "y.txt")},
    }


_BURST = """
import sys, time
paths = sys.argv[1:]
start = last = time.monotonic()
pauses = 0
for i, p in enumerate(paths):
    with open(p, "a") as f:
        f.write("x")
    if i % 50 == 49:
        time.sleep(0.002)
    now = time.monotonic()
    pauses += now - last > 0.004  # a pause the watcher may take for the end of a burst
    last = now
print(now - start, pauses)
"""


async def test_a_burst_of_1000_writes_is_coalesced(tmp_path: Path) -> None:
    """1,000 files written within ~50 ms (by another process) give a few batches that
    together hold every path."""
    paths = [str(tmp_path / "in" / f"{i:04}.csv") for i in range(1000)]
    await write(*paths)  # created before: creating files is slow on some disks

    async with watching({"job": spec(tmp_path / "in" / "*.csv")}) as w:
        with anyio.fail_after(10):
            done = await anyio.run_process([sys.executable, "-c", _BURST, *paths])
        took, pauses = done.stdout.split()
        got = await w.collect_one("job", paths)
        got += await w.quiet(0.3)
    assert {p for f in got for p in f.paths} == set(paths)
    # One batch per 100 ms (the debounce) of writing, one more per pause the writer took
    # (on a loaded machine), one more for a burst split by the debounce.
    assert 1 <= len(got) <= 2 + int(float(took) / 0.1) + int(pauses), (
        took,
        pauses,
        [len(f.paths) for f in got],
    )
    for f in got:
        assert f.job_id == "job" and list(f.paths) == sorted(set(f.paths))


async def test_globs_and_recursive_directories(tmp_path: Path) -> None:
    t = tmp_path
    await mkdir(t / "data/2024/q1", t / "tree/a/b", t / "logs")
    specs = {
        "deep": spec(t / "data" / "**" / "*.csv"),
        "tree": spec(t / "tree"),
        "logs": spec(t / "logs" / "app-[0-9].log", t / "logs" / "?.txt"),
    }
    async with watching(specs) as w:
        await write(
            t / "data/2024/q1/x.csv",
            t / "data/top.csv",
            t / "data/2024/q1/x.txt",
            t / "tree/a/b/c",
            t / "tree/new/sub/d",
            t / "logs/app-1.log",
            t / "logs/app-x.log",
            t / "logs/a.txt",
            t / "logs/ab.txt",
        )
        want = {
            "deep": {f"{t}/data/2024/q1/x.csv", f"{t}/data/top.csv"},
            "tree": {f"{t}/tree/a/b/c", f"{t}/tree/new/sub/d"},
            "logs": {f"{t}/logs/app-1.log", f"{t}/logs/a.txt"},
        }
        got: dict[str, set[str]] = {}
        with anyio.fail_after(5):
            while got != want:
                f = await w.next()
                got.setdefault(f.job_id, set()).update(f.paths)
                assert got[f.job_id] <= want[f.job_id], f
        assert await w.quiet() == []


async def test_a_path_that_does_not_exist_yet(tmp_path: Path) -> None:
    inbox = tmp_path / "later" / "inbox"
    async with watching({"job": spec(inbox / "*.csv"), "dir": spec(tmp_path / "d" / "e")}) as w:
        # Directories and file at once: the file lands before any watch of its directory.
        await write(inbox / "first.csv", tmp_path / "d" / "e" / "f" / "g")
        await w.collect(
            {"job": [str(inbox / "first.csv")], "dir": [str(tmp_path / "d" / "e" / "f" / "g")]}
        )
        await write(inbox / "second.csv", inbox / "ignored.txt")
        assert (await w.next()).paths == (str(inbox / "second.csv"),)
        assert w.source.plan is not None
        assert str(inbox) in w.source.plan.flat


async def test_update_follows_a_new_spec(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    await mkdir(one, two)
    async with watching({"a": spec(one / "*")}) as w:
        w.source.update({"a": spec(two / "*"), "b": spec(one / "*.new")})
        with anyio.fail_after(5):
            await w.source.wait_applied()
        await write(one / "x", two / "y", one / "z.new")
        got = await w.collect({"b": [str(one / "z.new")], "a": [str(two / "y")]})
        got += await w.quiet()
    assert {(f.job_id, p) for f in got for p in f.paths} == {
        ("a", str(two / "y")),
        ("b", str(one / "z.new")),
    }


async def test_no_change_is_lost_while_watchers_are_swapped(tmp_path: Path) -> None:
    """Writes go on while update() replaces the watchers (a new debounce restarts them):
    every file written is reported."""
    await mkdir(tmp_path / "in")
    paths = [str(tmp_path / "in" / f"{i:03}") for i in range(300)]

    def slow_writes() -> None:
        for p in paths:
            with open(p, "w") as f:
                f.write("x")
            time.sleep(0.001)

    async with (
        watching({"job": spec(tmp_path / "in", debounce=0.1)}) as w,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(anyio.to_thread.run_sync, slow_writes)
        for debounce in (0.05, 0.02, 0.1, 0.03):
            await anyio.sleep(0.04)
            w.source.update({"job": spec(tmp_path / "in", debounce=debounce)})
            with anyio.fail_after(5):
                await w.source.wait_applied()
        got = await w.collect_one("job", paths)
    assert {p for f in got for p in f.paths} == set(paths)


async def test_a_deleted_and_recreated_root_is_still_watched(tmp_path: Path) -> None:
    root = tmp_path / "root"
    await mkdir(root)
    async with watching({"job": spec(root)}) as w:
        await write(root / "a")
        await w.collect_one("job", [str(root / "a")])
        await anyio.to_thread.run_sync(shutil.rmtree, root)
        await w.collect_one("job", [str(root / "a")])  # the deletion is a change too
        await write(root / "b")  # recreated, with a file at once
        await w.collect_one("job", [str(root / "b")])
        await write(root / "c")
        await w.collect_one("job", [str(root / "c")])
        await anyio.to_thread.run_sync(os.rename, root, tmp_path / "away")
        await write(root / "d")  # a new directory under the old name
        await w.collect_one("job", [str(root / "d")])


async def test_stops_promptly_when_cancelled(tmp_path: Path) -> None:
    source = WatchSource({"job": spec(tmp_path / "*", tmp_path / "deep" / "**")})

    async def send(fired: WatchFired) -> None:
        pass

    async with anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            await tg.start(source.run, send)
        start = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - start < 0.5


async def test_nothing_to_watch(tmp_path: Path) -> None:
    async with watching({}) as w:
        assert w.source.plan is not None and not w.source.plan.roots
        w.source.update({"job": spec(tmp_path / "*")})
        with anyio.fail_after(5):
            await w.source.wait_applied()
        await write(tmp_path / "x")
        assert (await w.next()).paths == (str(tmp_path / "x"),)
