"""The run's log, as both executors write it: the job's bytes up to the cap, then one marker
line, drained but dropped beyond it; jobd's own ``[jobd: ...]`` notes on lines of their own."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("jobd.executors")


def open_log(path: Path) -> int:
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY
    try:
        return os.open(path, flags, 0o640)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)  # docs/security.md
        return os.open(path, flags, 0o640)


class LogSink:
    """The run's log: the job's bytes up to the cap, then one marker line; jobd's own notes.

    The file is opened (and created) on the first byte to write: creating a file costs about
    a millisecond on common disks, and a quiet run that succeeds then leaves no log at all."""

    def __init__(self, path: Path, cap: int, label: str) -> None:
        self.path = path
        self.fd: int | None = None
        self.cap = cap
        self.label = label
        self.left = cap
        self.at_line_start = True
        self.truncated = False
        self.failed = False

    def _open(self) -> None:
        if self.fd is not None or self.failed:
            return
        try:
            self.fd = open_log(self.path)
            size = os.fstat(self.fd).st_size
        except OSError as exc:
            self.failed = True
            logger.error(
                "%s: cannot open its log %s: %s; dropping its output",
                self.label,
                self.path,
                exc.strerror,
            )
            return
        self.left = max(0, self.cap - size)  # the cap is on the file: earlier stages count
        self.at_line_start = size == 0 or os.pread(self.fd, 1, size - 1) == b"\n"

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def feed(self, data: bytes | memoryview) -> None:
        self._open()
        if self.left > 0:
            head = data[: self.left]
            self._write(head)
            self.left -= len(head)
            self.at_line_start = head[-1] == 0x0A
            data = data[len(head) :]
        if len(data) and not self.truncated:
            self.truncated = True
            self.note(f"output truncated after {self.cap} bytes")

    def note(self, text: str) -> None:
        """Append one ``[jobd: ...]`` line (on a line of its own)."""
        line = f"[jobd: {text}]\n"
        self._open()
        self._write((line if self.at_line_start else "\n" + line).encode())
        self.at_line_start = True

    def _write(self, data: bytes | memoryview) -> None:
        if self.failed or self.fd is None:
            return
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError as exc:  # disk full, say: keep draining, stop writing
            self.failed = True
            logger.error(
                "%s: cannot write its log: %s; dropping its output", self.label, exc.strerror
            )
