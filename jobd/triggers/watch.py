"""File-change triggers: watch the paths of every watching job and tell the supervisor, once per
burst, which of a job's paths changed.

The decisions are pure and apart: ``route`` (which jobs a path concerns) and ``Coalescer`` /
``Batcher`` (when a burst is over). ``WatchSource`` is the I/O shell around them, on
``watchfiles.awatch``.

How the shell watches (the figures are measured by ``bench/watch_bench.py``):

- at most two watchers at a time, one recursive and one flat (``manifest.plan_watch``),
  each polling for news every ``STEP_MS``; both hand their batches to one dispatcher task;
- watchfiles' own grouping is the smallest ``debounce`` of the watching jobs (at most
  ``MAX_GROUPING_MS``), so no job is held longer than its own debounce;
- a job's burst ends ``QUIET`` seconds after its last batch arrived, or ``debounce`` after its
  first, whichever comes first;
- when the watched set must change (``update``, a directory appeared or was replaced), the new
  watcher is running before the old one is let go, and the old one is let go only after it
  handed over everything it had seen (see ``_Watcher.drain``): nothing is lost in between.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jobd.config.model import WatchSpec
from jobd.triggers.coalesce import (
    MAX_BATCH_PATHS,
    MAX_GROUPING_MS,
    QUIET,
    STEP_MS,
    Batcher,
    Coalescer,
    WatchFired,
    grouping_ms,
    is_structural,
    route,
    structural_prefixes,
)
from jobd.triggers.manifest import (
    WatchPlan,
    is_real_dir,
    matches_any,
    newly_covered,
    plan_watch,
    walk_matching,
)

if TYPE_CHECKING:
    from watchfiles import Change

log = logging.getLogger("jobd.watch")

RUST_TIMEOUT_MS = 1_000
"""An idle watch thread returns this often; it bounds how long a replaced watcher lingers."""

RECHECK_INTERVAL = 1.0
"""Seconds between checks that the watched directories are still the right ones (a directory
renamed away or replaced without an event seen)."""

_BUFFER = 64
_CONVERGE_ROUNDS = 5


# --- the I/O shell -----------------------------------------------------------------------


class _Signal:
    """Given to ``awatch`` as its stop event. The watch thread polls ``is_set`` every step and
    only once its watches exist, so the first poll says they do; the time of the last poll tells
    whether a batch was returned after a given moment."""

    def __init__(self, on_first_poll: Callable[[], None]) -> None:
        self._stop = False
        self._on_first_poll: Callable[[], None] | None = on_first_poll
        self.last_poll = -math.inf

    def is_set(self) -> bool:
        self.last_poll = time.monotonic()
        callback, self._on_first_poll = self._on_first_poll, None
        if callback is not None:
            with suppress(RuntimeError):  # not an anyio worker thread, or the loop is gone
                anyio.from_thread.run_sync(callback)
        return self._stop

    def set(self) -> None:
        self._stop = True


@dataclass(eq=False, slots=True, kw_only=True)
class _Watcher:
    """One ``awatch`` over some roots, all recursive or all flat."""

    roots: frozenset[str]
    recursive: bool
    grouping_ms: int
    signal: _Signal | None = None
    drain_from: float | None = None  # time.monotonic() when asked to hand over and stop
    failed: bool = False

    @property
    def key(self) -> tuple[frozenset[str], bool, int]:
        return self.roots, self.recursive, self.grouping_ms

    def drain(self) -> None:
        """Stop after the next batch returned by the watch thread from now on: it holds every
        change seen before, and the successor (already running) sees every change after."""
        if self.drain_from is None:
            self.drain_from = time.monotonic()


@dataclass(frozen=True, slots=True)
class _Batch:
    at: float
    changes: frozenset[tuple[Change, str]]


@dataclass(frozen=True, slots=True)
class _Kick:
    """Wakes the dispatcher: paths were added to the batcher behind its back."""


_Item = _Batch | _Kick


def _survey(patterns: list[str]) -> tuple[WatchPlan, dict[str, tuple[int, int]]]:
    """The plan for ``patterns`` now, with the identity (device, inode) of each root."""
    plan = plan_watch(patterns)
    ids: dict[str, tuple[int, int]] = {}
    for root in plan.roots:
        try:
            st = os.stat(root)
        except OSError:
            continue
        ids[root] = (st.st_dev, st.st_ino)
    return plan, ids


def _inspect(
    patterns: list[str], added: list[str], maybe_dirs: list[str], parents: set[str]
) -> tuple[set[str], list[str], set[str]]:
    """Which of the paths are directories now, the matching files below the added ones
    (files may land in a new directory before its watch exists), and which of ``parents``
    are reached through a symlink (roots are anchored when the job is loaded, so a directory
    reached without one is its own real path)."""
    outside = {d for d in parents if os.path.realpath(d) != d}
    dirs: set[str] = set()
    extra: list[str] = []
    for path in added:
        if is_real_dir(path):  # a symlink to a directory is a file here: never followed
            dirs.add(path)
            extra += walk_matching(patterns, path)
    dirs.update(p for p in maybe_dirs if is_real_dir(p))
    return dirs, extra, outside


def _check_specs(specs: Mapping[str, WatchSpec]) -> dict[str, WatchSpec]:
    for job_id, spec in specs.items():
        for pattern in spec.patterns:
            if not os.path.isabs(pattern):
                raise ValueError(f"job '{job_id}': watch: pattern {pattern!r} is not absolute")
    return dict(specs)


class WatchSource:
    """Watches the paths of the watching jobs and sends one ``WatchFired`` per job and burst.

    ``specs`` maps job id -> its ``WatchSpec`` (absolute patterns). ``clock`` gives monotonic
    seconds (``time.monotonic`` by default)."""

    def __init__(
        self, specs: Mapping[str, WatchSpec], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._specs = _check_specs(specs)
        self._prefixes = structural_prefixes(self._specs)
        self._clock = clock
        self._batcher = Batcher(self._specs)
        self._lock = anyio.Lock()
        self._plan: WatchPlan | None = None  # what the running watchers follow
        self._baseline = WatchPlan()  # what files newly covered are reported against
        self._ids: dict[str, tuple[int, int]] = {}
        self._grouping = grouping_ms(self._specs)
        self._watchers: dict[bool, _Watcher] = {}  # recursive? -> the current watcher
        self._specs_changed = False
        self._requested = 0
        self._applied = 0
        self._applied_event = anyio.Event()
        self._wake = anyio.Event()
        self._last_error: str | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._items: MemoryObjectSendStream[_Item] | None = None

    @property
    def plan(self) -> WatchPlan | None:
        """The directories watched now (None before ``run`` or while watching fails)."""
        return self._plan

    def update(self, specs: Mapping[str, WatchSpec]) -> None:
        """Watch for ``specs`` from now on (jobs reloaded). Returns at once; the watches follow
        shortly (``wait_applied``). Changes to paths watched before and after are not lost;
        pending changes of jobs that no longer watch are dropped."""
        self._specs = _check_specs(specs)
        self._prefixes = structural_prefixes(self._specs)
        self._batcher.update(self._specs)
        self._specs_changed = True
        self._requested += 1
        self._wake.set()

    async def wait_applied(self) -> None:
        """Return once the specs of the latest ``update`` are watched (while ``run`` runs)."""
        target = self._requested
        while self._applied < target:
            await self._applied_event.wait()

    async def run(
        self,
        send: Callable[[WatchFired], Awaitable[None]],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Watch until cancelled, awaiting ``send`` for each burst (one at a time, so a slow
        ``send`` slows the watcher down; nothing is dropped). ``task_status.started()`` comes
        once the watches exist: a change made after it is seen."""
        items, receive = anyio.create_memory_object_stream[_Item](_BUFFER)
        async with items, receive, anyio.create_task_group() as tg:
            self._tg, self._items = tg, items
            try:
                await self._converge(report=False)
                task_status.started()
                tg.start_soon(self._manage)
                await self._dispatch(receive, send)
            finally:
                self._tg = self._items = None
                self._plan, self._watchers = None, {}
                tg.cancel_scope.cancel()

    # --- keeping the watchers right -----------------------------------------------------

    async def _manage(self) -> None:
        """Applies ``update`` and checks the watched directories now and then."""
        while True:
            # Nothing watched, nothing to recheck: no wake-up until an ``update``.
            with anyio.move_on_after(RECHECK_INTERVAL if self._specs else math.inf):
                await self._wake.wait()
            self._wake = anyio.Event()
            found = await self._converge()
            if found:
                self._ingest(found, self._clock())
                self._kick()

    def _kick(self) -> None:
        if self._items is not None:
            # When the stream is full the dispatcher has work queued and will look anyway.
            with suppress(anyio.WouldBlock):
                self._items.send_nowait(_Kick())

    async def _converge(self, *, report: bool = True) -> list[str]:
        """Make the watchers follow the filesystem and the specs. Returns the matching files
        that no watcher could have seen arrive (see ``manifest.newly_covered``)."""
        found: list[str] = []
        async with self._lock:
            target = self._requested
            if self._specs_changed:
                # Files under newly watched patterns are not changes.
                report, self._specs_changed = False, False
            for _ in range(_CONVERGE_ROUNDS):
                specs = self._specs
                patterns = [p for s in specs.values() for p in s.patterns]
                plan, ids = await anyio.to_thread.run_sync(_survey, patterns)
                stale = {r for r, i in self._ids.items() if ids.get(r, i) != i}
                # A failed watcher may have missed anything below its roots: at least once,
                # every file there is reported again once it is replaced.
                stale |= {r for w in self._watchers.values() if w.failed for r in w.roots}
                grouping = grouping_ms(specs)
                if plan == self._plan and not stale and grouping == self._grouping:
                    break
                old = self._baseline.without(stale)
                try:
                    await self._start(plan, grouping, stale)
                except (OSError, RuntimeError) as exc:  # a root vanished, or inotify limits
                    self._plan = None
                    if not report:
                        self._baseline = plan  # what exists now is no change, watched or not
                    self._report_error(exc)
                    continue
                self._plan, self._baseline, self._ids = plan, plan, ids
                self._grouping = grouping
                self._last_error = None
                if report:
                    found += await anyio.to_thread.run_sync(newly_covered, patterns, old, plan)
                report = True
            if specs is self._specs:
                self._applied = max(self._applied, target)
                self._applied_event.set()
                self._applied_event = anyio.Event()
        return found

    def _report_error(self, exc: BaseException) -> None:
        message = f"watch: cannot watch ({exc}); retrying every {RECHECK_INTERVAL:g}s"
        if message != self._last_error:
            log.error("%s", message)
            self._last_error = message

    async def _start(self, plan: WatchPlan, grouping: int, stale: set[str]) -> None:
        """Start the watchers ``plan`` needs and let the replaced ones drain."""
        assert self._tg is not None
        for recursive, roots in ((True, plan.recursive), (False, plan.flat)):
            current = self._watchers.get(recursive)
            if (
                current is not None
                and current.key == (roots, recursive, grouping)
                and not current.failed
                and not (current.roots & stale)
            ):
                continue
            if roots:
                new = _Watcher(roots=roots, recursive=recursive, grouping_ms=grouping)
                await self._tg.start(self._watch, new)
                self._watchers[recursive] = new
            else:
                self._watchers.pop(recursive, None)
            if current is not None:
                current.drain()

    async def _watch(
        self, w: _Watcher, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        established = anyio.Event()
        w.signal = _Signal(established.set)
        errors: list[Exception] = []
        started = False
        async with anyio.create_task_group() as tg:

            async def iterate() -> None:
                try:
                    await self._iterate(w, established)
                except Exception as exc:  # a broken watcher is restarted, never fatal
                    errors.append(exc)
                finally:
                    established.set()
                    tg.cancel_scope.cancel()

            tg.start_soon(iterate)
            try:
                await established.wait()
                if not errors:
                    started = True
                    task_status.started()
                    await anyio.sleep_forever()
            finally:
                w.signal.set()  # the watch thread stops within a step, also on cancellation
        if errors and not started:
            raise errors[0]
        if errors:
            w.failed = True
            log.error(
                "watch: watcher over %s failed (%s); restarting it",
                ", ".join(sorted(w.roots)),
                errors[0],
            )

    async def _iterate(self, w: _Watcher, established: anyio.Event) -> None:
        assert self._items is not None and w.signal is not None
        items = self._items
        from watchfiles import awatch  # here: a daemon without watches never loads it

        changes_iter = awatch(
            *sorted(w.roots),
            watch_filter=None,
            debounce=w.grouping_ms,
            step=STEP_MS,
            # duck-typed: awatch only calls is_set() and set()
            stop_event=w.signal,  # type: ignore[arg-type, unused-ignore]
            rust_timeout=RUST_TIMEOUT_MS,
            yield_on_timeout=True,
            recursive=w.recursive,
            ignore_permission_denied=True,
        )
        async with aclosing(changes_iter):
            async for changes in changes_iter:
                established.set()
                if changes:
                    await items.send(_Batch(self._clock(), frozenset(changes)))
                if w.drain_from is not None and w.signal.last_poll >= w.drain_from:
                    return

    # --- from changes to bursts ---------------------------------------------------------

    def _ingest(self, paths: Iterable[str], at: float) -> None:
        for job_id, hit in route(self._specs, paths).items():
            self._batcher.add(job_id, hit, at)

    async def _dispatch(
        self,
        receive: MemoryObjectReceiveStream[_Item],
        send: Callable[[WatchFired], Awaitable[None]],
    ) -> None:
        while True:
            deadline = self._batcher.next_deadline()
            wait = None if deadline is None else deadline - self._clock()
            batch: list[_Item] = []
            if wait is None or wait > 0:
                with anyio.move_on_after(wait):
                    batch.append(await receive.receive())
            while True:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            batches = [b for b in batch if isinstance(b, _Batch)]
            if batches:
                await self._process(batches)
            for fired in self._batcher.pop_due(self._clock()):
                await send(fired)

    async def _process(self, batches: list[_Batch]) -> None:
        from watchfiles import Change

        roots = self._plan.roots if self._plan is not None else frozenset()
        added: list[str] = []
        structural = False
        for b in batches:
            for change, path in b.changes:
                if change == Change.added:
                    added.append(path)
                if change != Change.modified and not structural:
                    structural = is_structural(path, self._prefixes, roots)
        found = await self._converge() if structural else []
        # Directories are not changes themselves; files that came with a new one are.
        matched = [
            p
            for b in batches
            for c, p in b.changes
            if c == Change.modified
            and any(matches_any(s.patterns, p) for s in self._specs.values())
        ]
        patterns = [p for s in self._specs.values() for p in s.patterns]
        parents = {os.path.dirname(p) for b in batches for _, p in b.changes}
        dirs, extra, outside = await anyio.to_thread.run_sync(
            _inspect, patterns, added, matched, parents
        )
        # A path that is gone was a directory if something below it is in the batches.
        dirs.update(parents)
        for b in batches:
            # the watcher library follows symlinked directories in a recursive watch: what it
            # reports below one is outside the declared roots, and dropped (docs/security.md)
            self._ingest(
                (p for _, p in b.changes if p not in dirs and os.path.dirname(p) not in outside),
                b.at,
            )
        if extra or found:
            self._ingest([*extra, *found], self._clock())


__all__ = [
    "MAX_BATCH_PATHS",
    "MAX_GROUPING_MS",
    "QUIET",
    "RECHECK_INTERVAL",
    "RUST_TIMEOUT_MS",
    "STEP_MS",
    "Batcher",
    "Coalescer",
    "WatchFired",
    "WatchSource",
    "grouping_ms",
    "route",
]
