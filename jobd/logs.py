"""The daemon's own log: plain lines for people, ``<N>``-prefixed lines for journald.

Under systemd, stderr is a stream to journald, which stamps every line itself and reads a
syslog priority from a ``<N>`` prefix (sd-daemon(3)). systemd says so by setting
``JOURNAL_STREAM=<dev>:<inode>`` to the stream's identity (systemd.exec(5)); a child that
inherited the variable but writes elsewhere must not be fooled, hence the comparison with
stderr's own identity. Third-party libraries' chatter (``watchfiles.main: 1 change detected``
on every write near a watched path) is turned down to warnings.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from jobd._enums import RunState
from jobd.journal.abc import RunRecord

THIRD_PARTY = ("watchfiles", "aiosqlite", "asyncio", "aiodocker", "aiohttp")
"""Loggers kept at WARNING unless the daemon logs at DEBUG."""

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """A logging level as a syslog priority (sd-daemon(3): 3 err, 4 warning, 6 info, 7 debug)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_stream_matches(journal_stream: str | None, dev: int, inode: int) -> bool:
    """Whether ``JOURNAL_STREAM`` (``"<dev>:<inode>"``) names the stream with this identity."""
    if not journal_stream:
        return False
    d, sep, i = journal_stream.partition(":")
    try:
        return bool(sep) and (int(d), int(i)) == (dev, inode)
    except ValueError:
        return False


def to_journald(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether ``stream`` is the journald stream systemd connected (``JOURNAL_STREAM``)."""
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no file descriptor behind it
        return False
    return journal_stream_matches(environ.get("JOURNAL_STREAM"), st.st_dev, st.st_ino)


class JournaldFormatter(logging.Formatter):
    """``<N>logger: message``, every line of a multi-line record (a traceback) prefixed, as
    journald makes one entry per line. No time stamp: journald records its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def configure(
    level: str | int, *, stream: TextIO | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Set up the root logger for the daemon; returns whether it writes for journald."""
    stream = sys.stderr if stream is None else stream
    journald = to_journald(stream, os.environ if environ is None else environ)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournaldFormatter() if journald else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(quiet)
    return journald


# --- the end of a run, as one line ------------------------------------------------------

_LEVELS = {
    RunState.SUCCEEDED: logging.INFO,
    RunState.SKIPPED: logging.INFO,
    RunState.CANCELLED: logging.WARNING,
    RunState.FAILED: logging.ERROR,
    RunState.TIMED_OUT: logging.ERROR,
    RunState.UPSTREAM_FAILED: logging.WARNING,  # not run: the failure is its need's
}


def run_end(run: RunRecord) -> tuple[int, str]:
    """The level and line that report a finished run: INFO when it succeeded (or was skipped),
    WARNING when cancelled or not run because a need failed, ERROR when it failed or timed
    out."""
    level = _LEVELS.get(run.state, logging.WARNING)
    parts = [f"run {run.run_id} of job '{run.job_id}' {run.state}", f"trigger {run.trigger}"]
    if run.attempt > 1:
        parts.append(f"attempt {run.attempt}")
    if run.exit_code is not None:
        parts.append(f"exit code {run.exit_code}")
    if run.started_at is not None and run.finished_at is not None:
        parts.append(f"in {(run.finished_at - run.started_at).total_seconds():.3f}s")
    text = ", ".join(parts)
    if run.message:
        text += f": {run.message}"
    if level > logging.INFO and run.log_path:
        text += f"; log {run.log_path}"
    return level, text
