"""Keeping a run's processes together, so none outlives its run.

A job that double-forks and calls ``setsid`` leaves its process group; stopping the group
then misses it. Two nets catch such escapees:

- **cgroup v2** (where the daemon may create cgroups below its own: root, or systemd's
  ``Delegate=yes``): each run's processes are moved into a leaf cgroup of their own,
  ``<daemon cgroup>/jobd-<instance>-<run id>``, right after the spawn; at the attempt's end the
  leaf is killed whole (``cgroup.kill``) and removed. Recovery kills a leaf left by a crash.
- **the marker**: every process of a run carries ``JOBD_INSTANCE`` and ``JOBD_RUN_ID`` in its
  environment (``/proc/PID/environ``); at the attempt's end whatever still carries them is
  stopped. This also covers a child forked in the instant before the move into the leaf.

The daemon also becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): orphaned descendants
are reparented to it rather than to init, so it can reap the escapees it stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import logging
import os
import time
from pathlib import Path

import anyio

from jobd.executors.process import find_leftovers, stop_leftovers

logger = logging.getLogger("jobd.executors")

PR_SET_CHILD_SUBREAPER = 36
_KILL_WAIT = 5.0


def become_subreaper() -> bool:
    """Make this process a child subreaper; False where the kernel refuses (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_orphans(own: set[int]) -> list[int]:
    """Reap the zombie children of this process that are not in ``own`` (the children its
    executors wait for themselves): escapees reparented here by the subreaper flag."""
    me = str(os.getpid())
    reaped = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in own:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1 and fields[0] == b"Z" and fields[1] == me.encode():
            try:
                os.waitpid(int(entry), os.WNOHANG)
                reaped.append(int(entry))
            except ChildProcessError:
                pass
    return reaped


def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        pre, _, post = line.partition(" - ")
        if post.split()[:1] == ["cgroup2"]:
            return Path(pre.split()[4])
    return None


def own_cgroup() -> Path | None:
    """The cgroup v2 directory of this process, if a cgroup2 hierarchy is mounted."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip().lstrip("/")
                path = mount / rel if rel else mount
                return path if path.is_dir() else None
    except OSError:
        return None
    return None


@functools.cache
def delegated_cgroup() -> Path | None:
    """Where run leaves can go: the daemon's own cgroup when it may create and populate
    children there (the leaf kill needs ``cgroup.kill``, Linux 5.14); else None."""
    base = own_cgroup()
    if base is None or not os.access(base, os.W_OK):
        return None
    probe = base / f"jobd-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return None
    try:
        usable = (probe / "cgroup.kill").exists() and os.access(probe / "cgroup.procs", os.W_OK)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    if usable:
        logger.info("runs get their own cgroup under %s", base)
    return base if usable else None


@functools.lru_cache(maxsize=8)  # one daemon, one instance: not a digest per run
def instance_tag(instance: str) -> str:
    return hashlib.sha256(instance.encode()).hexdigest()[:12]


class Containment:
    """Per-run leaves in a delegated cgroup (when there is one) and the marker sweep."""

    def __init__(self, base: Path | None) -> None:
        self.base = base

    @classmethod
    def detect(cls) -> Containment:
        """Once per process (cached): a few reads of /proc and cgroupfs, which live in memory."""
        return cls(delegated_cgroup())

    def leaf(self, instance: str, run_id: str) -> Path | None:
        if self.base is None:
            return None
        return self.base / f"jobd-{instance_tag(instance)}-{run_id}"

    def enter(self, leaf: Path | None, pid: int) -> None:
        """Move ``pid`` into the leaf (created if need be); a failure is logged, not fatal:
        the marker sweep remains. On the event loop: cgroupfs lives in memory."""
        if leaf is None:
            return
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf)
            fd = os.open(leaf / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                logger.warning("cannot move pid %d into cgroup %s: %s", pid, leaf, exc.strerror)

    async def stop_escapees(
        self,
        leaf: Path | None,
        *,
        group: int | None,
        run_id: int | None,
        marker: str | None,
        grace: float,
        scan: bool = True,
    ) -> int:
        """Stop what is left of a run once its process group is gone: kill its cgroup leaf
        whole (and remove it), then stop whatever still carries its marker (``scan``: the
        caller knows nothing can have escaped otherwise). Returns how many processes had
        left the group. The usual case, an empty leaf and no scan, needs no thread."""
        if leaf is not None and _drop(leaf):
            leaf = None
        if leaf is None and not (scan and run_id is not None and marker is not None):
            return 0
        n, pids = await anyio.to_thread.run_sync(
            _leftovers, leaf, group, run_id if scan else None, marker
        )
        if pids:
            logger.warning(
                "run %s: stopping %d processes that left its process group %s",
                run_id,
                len(pids),
                pids,
            )
            await stop_leftovers(pids, grace)
        return n + len(pids)


def _leftovers(
    leaf: Path | None, group: int | None, run_id: int | None, marker: str | None
) -> tuple[int, list[int]]:
    """(processes killed with the leaf outside ``group``, pids still carrying the marker)."""
    n = 0
    if leaf is not None:
        try:
            n = _kill_leaf(leaf, group)
        except OSError as exc:
            logger.warning("cannot empty cgroup %s: %s", leaf, exc.strerror)
    pids: list[int] = []
    if run_id is not None and marker is not None:
        pids = [p for p in find_leftovers(run_id, None, None, marker=marker) if p != group]
    return n, pids


def _drop(leaf: Path) -> bool:
    """Remove the leaf if it is empty, with one ``rmdir`` on the loop (cgroupfs: memory); False
    when it is busy: processes are left in it, or its last one has only just died (then the
    kill and the retried removal go to a worker thread, never a sleep on the loop)."""
    try:
        os.rmdir(leaf)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        return False
    return True


_children: tuple[int, int] | None = None  # (pid, fd): this process's leader's children file


def strays(own: set[int]) -> bool:
    """Whether this process has children other than ``own``: with the subreaper flag set,
    every process that left a run's group and outlived its parent is one (or descends from
    one), so none means nothing escaped. The kernel hands an orphan to the subreaper's first
    live thread, its leader: only the leader's children are read, from a descriptor kept
    open (a read from offset 0 lists them anew; measured 7 us a run, against 36 us for an
    open, read and close)."""
    global _children
    pid = os.getpid()
    try:
        if _children is None or _children[0] != pid:  # first use, or a forked child
            _children = pid, os.open(f"/proc/self/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        return any(int(p) not in own for p in os.pread(_children[1], 1 << 20, 0).split())
    except OSError:
        return True  # cannot tell: look


def _kill_leaf(leaf: Path, group: int | None) -> int:
    try:
        pids = [int(p) for p in (leaf / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return 0
    n = sum(1 for p in pids if _pgid(p) not in (group, None))
    if pids:
        (leaf / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + _KILL_WAIT
        while _populated(leaf) and time.monotonic() < deadline:
            time.sleep(0.005)
    _rmdir(leaf)
    return n


def _populated(leaf: Path) -> bool:
    try:
        return "populated 1" in (leaf / "cgroup.events").read_text()
    except FileNotFoundError:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _rmdir(leaf: Path) -> None:
    # A cgroup whose last process just died can refuse rmdir (EBUSY) for a moment.
    for _ in range(100):
        try:
            os.rmdir(leaf)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
        time.sleep(0.005)


__all__ = ["Containment", "become_subreaper", "delegated_cgroup", "reap_orphans"]
