"""Test-only crash points: ``JOBD_TEST_CRASH_AT=<point>[:<n>]`` makes the daemon SIGKILL
itself the ``n``-th time (default: the first) it passes the named point in a run's life.

Unset in production (the variable is read once, at import; with it unset ``crash_point`` is
one comparison). The crash tests set it on a daemon they start, to kill it between two named
steps rather than at a random moment; docs/journal.md lists the points.
"""

from __future__ import annotations

import os
import signal

CRASH_VAR = "JOBD_TEST_CRASH_AT"

POINTS = (
    "intake-before-commit",  # triggers admitted, their queued runs not yet committed
    "intake-committed",  # queued runs committed, not yet shown to subscribers
    "running-committed",  # the run's "running" state committed, nothing spawned yet
    "before-spawn",  # just before the process is started
    "after-spawn",  # the process started, its pid not yet written
    "after-exit",  # the process ended, its final state not yet written
    "watch-journaled",  # a watch trigger journaled, the manifest not yet updated
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    if name not in POINTS:
        raise SystemExit(f"{CRASH_VAR}={value}: unknown crash point; one of {', '.join(POINTS)}")
    return name, int(nth or 1)


_TARGET = _parse(os.environ.get(CRASH_VAR))
_passes = 0


def crash_point(name: str) -> None:
    """SIGKILL this process if it is the configured crash point (tests only)."""
    global _passes
    if _TARGET is None or _TARGET[0] != name:
        return
    _passes += 1
    if _passes >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
