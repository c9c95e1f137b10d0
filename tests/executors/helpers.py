"""Small helpers for the executor tests: is a process alive, what did a run log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not reaped) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"


def pids_in(text: str) -> list[int]:
    """The numbers a job printed on lines of their own (``echo $!``)."""
    return [int(line) for line in text.splitlines() if line.strip().isdigit()]


async def read_log(path: Path) -> str:
    return await anyio.Path(path).read_text()


async def eventually(check: Callable[[], bool], within: float = 5) -> None:
    """Wait until ``check()`` (run in a worker thread: it may block) holds, failing after
    ``within`` seconds."""
    with anyio.fail_after(within):
        # the kernel's view of processes offers no event to wait on: poll it
        while not await anyio.to_thread.run_sync(check):  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def write_log(path: Path, text: str) -> None:
    """A log that already holds ``text`` (an earlier stage's output)."""
    await anyio.Path(path.parent).mkdir(parents=True, exist_ok=True)
    await anyio.Path(path).write_text(text)
