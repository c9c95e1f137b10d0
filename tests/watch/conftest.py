"""Watch fixtures: a WatchSource running over real directories, and its bursts on a stream."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from blockbuster import blockbuster_ctx

from jobd.config.model import WatchSpec
from jobd.triggers.watch import WatchFired, WatchSource


@pytest.fixture(autouse=True)
def no_blocking_in_loop() -> Iterator[None]:
    """Fail any blocking call made from the event loop by jobd or these tests."""
    with blockbuster_ctx(["jobd", "tests"]):
        yield


def spec(*patterns: object, debounce: float = 0.1) -> WatchSpec:
    return WatchSpec(patterns=tuple(str(p) for p in patterns), debounce=debounce)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


async def write(*paths: object, text: str = "x") -> None:
    """Write the files (creating directories) from a worker thread, not the event loop."""

    def go() -> None:
        for p in paths:
            _write(str(p), text)

    await anyio.to_thread.run_sync(go)


@dataclass
class Watching:
    source: WatchSource
    fired: MemoryObjectReceiveStream[WatchFired]

    async def next(self, within: float = 3.0) -> WatchFired:
        with anyio.fail_after(within):
            return await self.fired.receive()

    async def collect(
        self, expected: Mapping[str, Iterable[str]], within: float = 5.0
    ) -> list[WatchFired]:
        """Bursts until every expected path was fired for its job (others are kept too)."""
        missing = {(job_id, p) for job_id, paths in expected.items() for p in paths}
        got: list[WatchFired] = []
        with anyio.fail_after(within):
            while missing:
                f = await self.fired.receive()
                got.append(f)
                missing -= {(f.job_id, p) for p in f.paths}
        return got

    async def collect_one(
        self, job_id: str, paths: Iterable[str], within: float = 5.0
    ) -> list[WatchFired]:
        return await self.collect({job_id: paths}, within)

    async def quiet(self, seconds: float = 0.25) -> list[WatchFired]:
        """Whatever fires within ``seconds`` (expected: nothing)."""
        got: list[WatchFired] = []
        with anyio.move_on_after(seconds):
            while True:
                got.append(await self.fired.receive())
        return got


@asynccontextmanager
async def watching(specs: Mapping[str, WatchSpec]) -> AsyncIterator[Watching]:
    """A WatchSource over ``specs``, started (its watches established), stopped on exit."""
    send, receive = anyio.create_memory_object_stream[WatchFired](1000)
    source = WatchSource(specs)
    async with send, receive, anyio.create_task_group() as tg:
        with anyio.fail_after(5):
            await tg.start(source.run, send.send)
        yield Watching(source, receive)
        tg.cancel_scope.cancel()


async def mkdir(*paths: object) -> None:
    """Create the directories (and parents) from a worker thread."""

    def go() -> None:
        for p in paths:
            os.makedirs(str(p), exist_ok=True)

    await anyio.to_thread.run_sync(go)
