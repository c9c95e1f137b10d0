"""The jobs directory's watch: one inotify watch on one flat directory, awaited on its file
descriptor, so an idle daemon is not woken at all (a polling watch thread woke it ~50 times a
second). Job files are read from the directory itself only (docs/job-files.md), so a flat
watch sees every change that matters, and nothing below it."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from pathlib import Path

import anyio

# <sys/inotify.h>
IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_CLOEXEC = os.O_CLOEXEC
IN_NONBLOCK = os.O_NONBLOCK

MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED  # the watched directory itself is gone
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class DirWatch:
    """An inotify watch on ``path`` (a directory). ``await changed()`` returns once something
    in it changed (or it went away: ``gone`` tells), with every event read so far consumed."""

    def __init__(self, path: Path) -> None:
        self.fd = _check(_libc.inotify_init1(IN_CLOEXEC | IN_NONBLOCK), "inotify_init1")
        self.gone = False
        try:
            _check(
                _libc.inotify_add_watch(self.fd, os.fsencode(path), MASK),
                f"watch {path}",
            )
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain(self) -> bool:
        """Consume the events queued now; True if there were any."""
        seen = False
        while True:
            try:
                data = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return seen
            except OSError as exc:  # pragma: no cover - EINTR is retried by os.read
                if exc.errno == errno.EINTR:
                    continue
                raise
            seen = True
            offset = 0
            while offset + _HEADER.size <= len(data):
                _wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size + length
                if mask & GONE:
                    self.gone = True

    async def changed(self) -> None:
        while not self.drain():
            await anyio.wait_readable(self.fd)
