"""The executor contract: run the work of one attempt of one run (or stage), and find and
stop what a run left behind when the daemon stopped without seeing its end.

Every executor (local processes, Docker containers, a remote worker queue) implements it;
the supervisor never asks which one it holds. ``ProcessSpec.container`` carries what only a
container needs; ``RunRef`` is what finds a run's leftovers again (a pid and its start
ticks, the run id and the daemon's instance marker, the job's action)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from jobd.config.model import Action


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerSpec:
    """What a container attempt runs on top of its ``ProcessSpec`` (rendered)."""

    image: str
    command: tuple[str, ...] | str | None = None  # None: the image's own command
    passthrough: frozenset[str] = frozenset()  # env keys (besides JOBD_*) that cross over


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessSpec:
    """Everything needed to start one process, already rendered (no expressions left)."""

    argv: tuple[str, ...]
    env: Mapping[str, str]  # the whole environment, JOBD_* variables included
    cwd: Path
    log_path: Path  # stdout and stderr are appended here
    log_max_bytes: int = 10 * 1024 * 1024
    timeout: float | None = None
    kill_grace: float = 10.0
    user: str | None = None  # only honoured when the daemon runs as root
    container: ContainerSpec | None = None  # set: the attempt runs in a container


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessResult:
    exit_code: int | None  # None when killed by a signal
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None  # the process could not be started: why

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.cancelled


class Latch:
    """Set once: ``wait`` for it, or ask to be called back when it comes (``on_set``), which
    lets a waiter wait for it or something else with no task of its own."""

    __slots__ = ("_callbacks", "_event")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        if self._event.is_set():
            return
        self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def on_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once set (now, if it is); returns what withdraws it."""
        if self._event.is_set():
            callback()
            return _nothing
        self._callbacks.append(callback)
        return lambda: self._withdraw(callback)

    def _withdraw(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)


def _nothing() -> None:
    pass


Cancel = Latch
"""A request to stop a run: the executor waits for its process's exit or the cancel."""


StartedCallback = Callable[[int, int | None], Awaitable[None]]
"""Called with (pid, start time in clock ticks) right after the work starts; an executor
whose work has no local pid (a container's is the engine's, a remote worker's none) passes
0 and None."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRef:
    """A journaled ``running`` run whose work may have outlived the daemon."""

    run_id: int
    instance: str  # the daemon's JOBD_INSTANCE marker
    pid: int | None = None
    pid_start: int | None = None
    action: Action | None = None  # the job's action; None when the job is gone


class Executor(ABC):
    @abstractmethod
    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ProcessResult:
        """Run the process to its end and return how it ended.

        On timeout, or when ``cancel`` is set: SIGTERM to its process group, SIGKILL after
        ``kill_grace``, each step logged; the result says ``timed_out`` / ``cancelled``. When the
        calling scope itself is cancelled (daemon shutdown), the group is stopped the same way
        in a shielded scope before the cancellation propagates: no process outlives its run."""

    @abstractmethod
    async def find_leftovers(self, ref: RunRef) -> list[str]:
        """Ids (executor-specific, printable) of what is left of the run: processes,
        containers, remote tasks. Never raises: what cannot be looked at is logged."""

    @abstractmethod
    async def stop_leftovers(self, ids: Sequence[str], grace: float) -> list[str]:
        """Stop (politely, then for good after ``grace`` seconds) what ``find_leftovers``
        found; returns the ids still there at the end (each logged). Bounded in time."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most executors hold nothing
        """The daemon is stopping: its runs have ended or been stopped; release clients."""
