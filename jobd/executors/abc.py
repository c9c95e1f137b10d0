"""What an executor must do: run one process for one attempt of one run (or stage)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio


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


StartedCallback = Callable[[int, int | None], Awaitable[None]]
"""Called with (pid, start time in clock ticks) right after the process starts."""


class Executor(ABC):
    @abstractmethod
    async def run(self, spec: ProcessSpec, *, on_started: StartedCallback | None = None,
                  cancel: anyio.Event | None = None) -> ProcessResult:
        """Run the process to its end and return how it ended.

        On timeout, or when ``cancel`` is set: SIGTERM to its process group, SIGKILL after
        ``kill_grace``, each step logged; the result says ``timed_out`` / ``cancelled``. When the
        calling scope itself is cancelled (daemon shutdown), the group is stopped the same way
        in a shielded scope before the cancellation propagates: no process outlives its run."""
