"""Process-level helpers: start ticks, stopping a process group, and leftovers after a crash.

A process is named by its pid *and* its start time in clock ticks (field 22 of
``/proc/PID/stat``): pids are reused, the pair is not. Leftover discovery never signals a
process whose identity it has not checked.
"""

from __future__ import annotations

import logging
import os
import select
import signal
from collections.abc import Iterable
from contextlib import suppress

import anyio

logger = logging.getLogger("jobd.executors")

RUN_ID_VAR = "JOBD_RUN_ID"
"""Environment variable holding the run id in every process of a run (and its children)."""

INSTANCE_VAR = "JOBD_INSTANCE"
"""Environment variable naming the daemon instance (the supervisor sets the journal path), so
leftover discovery never mistakes another daemon's run with the same id for one of ours."""

KILL_WAIT = 5.0
"""How long to wait for an exit after SIGKILL before giving up (a process stuck in the kernel
in uninterruptible sleep cannot be killed sooner)."""

_POLL_MIN, _POLL_MAX = 0.01, 0.1


def parse_start_ticks(stat: bytes) -> int | None:
    """Field 22 (``starttime``) of a ``/proc/PID/stat`` line, or None if it does not parse.

    The second field is the command name in parentheses and may itself hold spaces and
    parentheses, so the fields are counted after the *last* ``)``."""
    _, paren, rest = stat.rpartition(b")")
    fields = rest.split()
    # rest starts at field 3 (state): field 22 is index 19
    if not paren or len(fields) < 20:
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_start_ticks(f.read())
    except OSError:
        return None


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def _wait_group_gone(pgid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        await anyio.wait_readable(pidfd)
        return
    delay = _POLL_MIN
    while signal_group(pgid, 0):
        await anyio.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)


async def stop_process_group(
    pgid: int, grace: float, *, pidfd: int | None = None, label: str | None = None
) -> bool:
    """Stop a process group: SIGTERM (and SIGCONT), then SIGKILL after ``grace`` seconds.

    With ``pidfd`` (the group leader's), the group counts as stopped once its leader has
    exited; without, once no member is left (unreaped zombies count as members, so pass the
    pidfd for a group whose leader is your own child). Each step is logged. Returns True when
    SIGKILL was needed.

    Only use this on a group known to be yours (a child you started with a new session and
    have not reaped yet): a bare pgid can be reused once every member has gone."""
    name = label or f"process group {pgid}"
    if not signal_group(pgid, signal.SIGTERM):
        logger.info("%s: already gone", name)
        return False
    # a stopped process would keep SIGTERM pending until SIGKILL
    signal_group(pgid, signal.SIGCONT)
    logger.info("%s: sent SIGTERM, SIGKILL in %gs", name, grace)
    with anyio.move_on_after(grace):
        await _wait_group_gone(pgid, pidfd)
        logger.info("%s: exited after SIGTERM", name)
        return False
    logger.warning("%s: still running %gs after SIGTERM: sending SIGKILL", name, grace)
    signal_group(pgid, signal.SIGKILL)
    with anyio.move_on_after(KILL_WAIT) as scope:
        await _wait_group_gone(pgid, pidfd)
    if scope.cancelled_caught:
        logger.error("%s: still there %gs after SIGKILL (uninterruptible sleep?)", name, KILL_WAIT)
    return True


# --- leftovers after a daemon crash --------------------------------------------------------


def _environ_has(pid: int, wanted: frozenset[bytes]) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False
    return wanted.issubset(entries)


def find_leftovers(
    run_id: int, pid: int | None, pid_start: int | None, *, marker: str
) -> list[int]:
    """Pids of processes still left from run ``run_id``, to stop before the run is retried.

    A process belongs to the run when its pid *and* start ticks equal the journaled ones (a
    reused pid never matches), or when its environment holds both ``JOBD_RUN_ID=<run_id>``
    and ``JOBD_INSTANCE=<marker>``: that finds the run's children and grandchildren too,
    and processes whose pid was never journaled. ``/proc/PID/environ`` is the environment
    a process was started with, so a child started with a scrubbed environment is not found.

    Blocking (reads ``/proc``): call it from a worker thread."""
    found: set[int] = set()
    if pid is not None and pid_start is not None and process_start_ticks(pid) == pid_start:
        found.add(pid)
    wanted = frozenset({f"{RUN_ID_VAR}={run_id}".encode(), f"{INSTANCE_VAR}={marker}".encode()})
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and _environ_has(int(entry), wanted):
            found.add(int(entry))
    return sorted(found)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def _drop_exited(fds: dict[int, int]) -> None:
    """Drop (and close) the pidfds in ``fds`` (pid -> fd) whose process has exited."""
    poll = select.poll()
    for fd in fds.values():
        poll.register(fd, select.POLLIN)
    exited = {fd for fd, _ in poll.poll(0)}
    for pid, fd in list(fds.items()):
        if fd in exited:
            os.close(fds.pop(pid))


async def _wait_all(fds: dict[int, int], seconds: float) -> None:
    """Wait up to ``seconds`` for every process in ``fds`` to exit; drop those that did."""
    with anyio.move_on_after(seconds):
        for fd in fds.values():
            await anyio.wait_readable(fd)
    _drop_exited(fds)


async def stop_leftovers(pids: Iterable[int], grace: float) -> list[int]:
    """Stop processes found by ``find_leftovers``: SIGTERM, up to ``grace`` seconds, SIGKILL.

    Signals go through pidfds opened first, so a process that exits meanwhile cannot be
    confused with a newcomer given its pid. Bounded: at most ``grace`` plus a few seconds.
    Returns the pids still alive at the end (normally none)."""
    fds = {pid: fd for pid in pids if (fd := _pidfd(pid)) is not None}
    try:
        for pid, fd in fds.items():
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
                signal.pidfd_send_signal(fd, signal.SIGCONT)
            logger.info("leftover pid %d: sent SIGTERM", pid)
        await _wait_all(fds, grace)
        for pid, fd in fds.items():
            logger.warning(
                "leftover pid %d: still running %gs after SIGTERM: sending SIGKILL", pid, grace
            )
            with suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        await _wait_all(fds, KILL_WAIT)
        for pid in fds:
            logger.error("leftover pid %d: still there after SIGKILL", pid)
        return sorted(fds)
    finally:
        for fd in fds.values():
            os.close(fd)


__all__ = [
    "INSTANCE_VAR",
    "RUN_ID_VAR",
    "find_leftovers",
    "parse_start_ticks",
    "process_start_ticks",
    "signal_group",
    "stop_leftovers",
    "stop_process_group",
]
