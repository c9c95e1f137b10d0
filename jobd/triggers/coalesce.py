"""The pure decisions of watch triggers: which jobs a changed path concerns (``route``), and
when a burst of changes is over (``Coalescer``, ``Batcher``). ``watch.WatchSource`` is the
I/O shell around them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jobd.config.model import WatchSpec
from jobd.triggers.manifest import _split, matches_any, normalize

QUIET = 0.005
"""Seconds without news for a job that end its burst. The watcher itself reports a change only
after ``STEP_MS`` without further changes, so a lone change fires ~10–15 ms after it happened."""

STEP_MS = 5
"""How often the watch thread looks for news. Smaller is faster and costs idle CPU: about 1.3 %
of a core at 5 ms, 2.4 % at 2 ms, 0.5 % at 10 ms (measured with two watchers)."""

MAX_GROUPING_MS = 1_000
"""Upper bound on how long watchfiles itself groups a continuous stream of changes."""
MAX_BATCH_PATHS = 10_000
"""A batch never holds more paths; a larger burst fires as several batches at once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchFired:
    """A job's watched paths changed: one burst, coalesced."""

    job_id: str
    paths: tuple[str, ...]  # distinct, sorted


# --- pure decisions ----------------------------------------------------------------------


def route(specs: Mapping[str, WatchSpec], paths: Iterable[str]) -> dict[str, set[str]]:
    """Job id -> the given paths that one of its patterns matches (jobs with none left out)."""
    out: dict[str, set[str]] = {}
    paths = list(paths)
    for job_id, spec in specs.items():
        hit = {p for p in paths if matches_any(spec.patterns, p)}
        if hit:
            out[job_id] = hit
    return out


class Coalescer:
    """One job's pending burst. Pure: times are plain float seconds from any one clock.

    A burst is due once no change came for ``quiet`` seconds, or ``debounce`` seconds after its
    first change, whichever comes first; at once when it holds ``max_paths`` paths."""

    __slots__ = ("_first", "_last", "_paths", "debounce", "max_paths", "quiet")

    def __init__(
        self, *, debounce: float, quiet: float = QUIET, max_paths: int = MAX_BATCH_PATHS
    ) -> None:
        self.debounce = debounce
        self.quiet = quiet
        self.max_paths = max_paths
        self._paths: set[str] = set()
        self._first = math.inf
        self._last = -math.inf

    def __len__(self) -> int:
        return len(self._paths)

    def add(self, paths: Iterable[str], at: float) -> None:
        """Changes seen at ``at``; a path already pending counts as news all the same."""
        paths = list(paths)
        if not paths:
            return
        self._paths.update(paths)
        self._first = min(self._first, at)
        self._last = max(self._last, at)

    def deadline(self) -> float | None:
        """When the pending burst is due, or None when nothing is pending."""
        if not self._paths:
            return None
        if len(self._paths) >= self.max_paths:
            return self._first
        return min(self._last + self.quiet, self._first + self.debounce)

    def pop_due(self, now: float) -> list[tuple[str, ...]]:
        """The pending paths as batches (sorted, at most ``max_paths`` each) when due at
        ``now``, and the coalescer emptied; else nothing."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        paths = sorted(self._paths)
        self._paths = set()
        self._first, self._last = math.inf, -math.inf
        step = self.max_paths
        return [tuple(paths[i : i + step]) for i in range(0, len(paths), step)]


class Batcher:
    """A ``Coalescer`` per watching job (pure)."""

    def __init__(
        self,
        specs: Mapping[str, WatchSpec],
        *,
        quiet: float = QUIET,
        max_paths: int = MAX_BATCH_PATHS,
    ) -> None:
        self.quiet = quiet
        self.max_paths = max_paths
        self._jobs: dict[str, Coalescer] = {}
        self.update(specs)

    def update(self, specs: Mapping[str, WatchSpec]) -> None:
        """Follow new specs: pending paths of a job still watching are kept (under its new
        debounce); those of a job no longer watching are dropped."""
        jobs: dict[str, Coalescer] = {}
        for job_id, spec in specs.items():
            c = self._jobs.get(job_id)
            if c is None:
                c = Coalescer(debounce=spec.debounce, quiet=self.quiet, max_paths=self.max_paths)
            c.debounce = spec.debounce
            jobs[job_id] = c
        self._jobs = jobs

    def add(self, job_id: str, paths: Iterable[str], at: float) -> None:
        c = self._jobs.get(job_id)
        if c is not None:
            c.add(paths, at)

    def next_deadline(self) -> float | None:
        deadlines = [d for c in self._jobs.values() if (d := c.deadline()) is not None]
        return min(deadlines, default=None)

    def pop_due(self, now: float) -> list[WatchFired]:
        """Every batch due at ``now``, by job id."""
        return [
            WatchFired(job_id=job_id, paths=batch)
            for job_id, c in sorted(self._jobs.items())
            for batch in c.pop_due(now)
        ]


def grouping_ms(specs: Mapping[str, WatchSpec]) -> int:
    """How long watchfiles may group changes: the smallest debounce, bounded."""
    smallest = min((s.debounce for s in specs.values()), default=0.1)
    return max(0, min(MAX_GROUPING_MS, round(smallest * 1000)))


def structural_prefixes(specs: Mapping[str, WatchSpec]) -> tuple[str, ...]:
    """The fixed directory part of every pattern: a change to one of them or to an ancestor
    may change where to watch."""
    return tuple(sorted({_split(normalize(p))[0] for s in specs.values() for p in s.patterns}))


def is_structural(path: str, prefixes: Iterable[str], roots: Iterable[str]) -> bool:
    """``path`` is a watched root, or the fixed part of a pattern, or an ancestor of one."""
    return any(p == path or p.startswith(path + "/") for p in (*prefixes, *roots))
