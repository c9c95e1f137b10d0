"""Change -> trigger latency of jobd's WatchSource, next to bare ``watchfiles.awatch`` loops.

Not a test: run ``python bench/watch_bench.py [--writes N]`` and read the figures. Each
write is a lone change to one file (the next one waits until the previous was reported and a
short pause passed); latency runs from the write's return to ``send`` (WatchSource) or to the
loop receiving the batch (bare awatch). Also prints the idle CPU of a WatchSource.
jobd's target: p50 <= 20 ms, p95 <= 40 ms.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from watchfiles import awatch

from jobd.config.model import WatchSpec
from jobd.triggers.watch import WatchFired, WatchSource

GAP = 0.02  # seconds between a report and the next write


def _write(path: Path) -> float:
    with open(path, "a") as f:
        f.write("x")
    return time.perf_counter()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Seen = Callable[[str], None]


async def _measure(directory: Path, writes: int, start: Callable[[Seen], Any]) -> list[float]:
    """Run ``writes`` lone writes under the watcher that ``start(seen)`` starts (an async
    context manager); ``seen(path)`` is called when the watcher reports a path."""
    arrived: dict[str, float] = {}
    event = anyio.Event()

    def seen(path: str) -> None:
        arrived.setdefault(path, time.perf_counter())
        event.set()

    latencies: list[float] = []
    async with start(seen):
        for i in range(writes):
            path = directory / f"f{i:04}.txt"
            event = anyio.Event()
            written = await anyio.to_thread.run_sync(_write, path)
            with anyio.fail_after(5):
                while str(path) not in arrived:
                    await event.wait()
                    event = anyio.Event()
            latencies.append(arrived[str(path)] - written)
            await anyio.sleep(GAP)
    return latencies


def _source(directory: Path) -> Callable[[Seen], Any]:
    @asynccontextmanager
    async def start(seen: Seen) -> AsyncIterator[None]:
        async def send(fired: WatchFired) -> None:
            for p in fired.paths:
                seen(p)

        source = WatchSource({"bench": WatchSpec(patterns=(f"{directory}/*.txt",))})
        async with anyio.create_task_group() as tg:
            await tg.start(source.run, send)
            yield
            tg.cancel_scope.cancel()

    return start


def _bare(directory: Path, **kwargs: Any) -> Callable[[Seen], Any]:
    @asynccontextmanager
    async def start(seen: Seen) -> AsyncIterator[None]:
        stop = anyio.Event()

        async def loop(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            started = False
            async for changes in awatch(
                directory, stop_event=stop, rust_timeout=100, yield_on_timeout=True, **kwargs
            ):
                if not started:  # the first yield: the watch exists
                    started = True
                    task_status.started()
                for _, p in changes:
                    seen(p)

        async with anyio.create_task_group() as tg:
            await tg.start(loop)
            yield
            stop.set()

    return start


async def _idle_cpu(directory: Path, seconds: float = 3.0) -> float:
    async def send(fired: WatchFired) -> None:
        pass

    source = WatchSource(
        {"bench": WatchSpec(patterns=(f"{directory}/*.txt", f"{directory}/deep/**"))}
    )
    async with anyio.create_task_group() as tg:
        await tg.start(source.run, send)
        await anyio.sleep(0.3)
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        await anyio.sleep(seconds)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        tg.cancel_scope.cancel()
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return cpu / (t1 - t0)


async def main(writes: int) -> None:
    configs: list[tuple[str, Callable[[Path], Callable[[Seen], Any]]]] = [
        ("jobd WatchSource", _source),
        ("awatch defaults (step=50, debounce=1600)", lambda d: _bare(d)),
        ("awatch step=10, debounce=50", lambda d: _bare(d, step=10, debounce=50)),
        ("awatch step=1, debounce=50", lambda d: _bare(d, step=1, debounce=50)),
        ("awatch step=5, debounce=100 (jobd's settings)", lambda d: _bare(d, step=5, debounce=100)),
    ]
    results: dict[str, tuple[float, float]] = {}
    print(f"{writes} lone writes per line; latency write -> report, ms")
    for name, make in configs:
        with tempfile.TemporaryDirectory() as tmp:
            latencies = await _measure(Path(tmp), writes, make(Path(tmp)))
        p50, p95 = _percentile(latencies, 0.5) * 1000, _percentile(latencies, 0.95) * 1000
        results[name] = (p50, p95)
        print(
            f"  {name:48} p50 {p50:7.1f}  p95 {p95:7.1f}  "
            f"mean {statistics.fmean(latencies) * 1000:7.1f}  max {max(latencies) * 1000:7.1f}",
            flush=True,
        )
    ours = results["jobd WatchSource"]
    print("ratios WatchSource / bare awatch (p50, p95):")
    for name, (p50, p95) in results.items():
        if name != "jobd WatchSource":
            print(f"  vs {name:45} {ours[0] / p50:5.2f}  {ours[1] / p95:5.2f}")
    verdict = "meets" if ours[0] <= 20 and ours[1] <= 40 else "MISSES"
    print(f"target p50 <= 20 ms, p95 <= 40 ms: {verdict}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "deep").mkdir()
        cpu = await _idle_cpu(Path(tmp))
    print(
        f"idle CPU of a WatchSource (one flat and one recursive watcher): {cpu * 100:.2f} % "
        "of a core"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    anyio.run(main, parser.parse_args().writes)
