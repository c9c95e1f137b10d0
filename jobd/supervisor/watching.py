"""Watch triggers wired to the daemon: file changes become journaled triggers, and the
manifest of what was last seen makes changes during downtime trigger at start."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import anyio

from jobd._crashpoints import crash_point
from jobd._enums import TriggerKind
from jobd.config.model import WatchSpec
from jobd.journal.abc import Journal, ManifestEntry, RunRecord
from jobd.supervisor.clock import Clock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.events import Trigger
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.triggers.manifest import diff, refresh, scan
from jobd.triggers.watch import WatchFired, WatchSource

log = logging.getLogger("jobd.watch")

SEEN_KEY = "{}:watch"  # a cursor entry marks a job whose manifest has a baseline


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchDeps:
    loaded: Loaded
    journal: Journal  # the manifests
    ledger: Ledger  # the baseline cursors
    cursors: dict[str, datetime]
    clock: Clock
    decisions: Decisions
    submit: Callable[[Trigger], Awaitable[RunRecord]]


class WatchService:
    def __init__(self, deps: WatchDeps) -> None:
        self.deps = deps
        self.source: WatchSource | None = None
        self._known: dict[str, WatchSpec] = {}
        self._seen: dict[str, dict[str, ManifestEntry]] = {}  # the journaled manifests

    def _specs(self) -> dict[str, WatchSpec]:
        loaded = self.deps.loaded
        return {
            j.id: j.watch
            for j in loaded.jobs.values()
            if j.watch is not None and j.enabled and j.id not in loaded.paused
        }

    async def start(self, tg: anyio.abc.TaskGroup) -> None:
        specs = self._specs()
        self.source = WatchSource(specs)
        # Watch first, then compare with the manifest: a change in between fires twice at
        # worst, never zero times.
        await tg.start(self.source.run, self._fired)
        await self._baseline(specs, fire=True)

    async def update(self) -> None:
        specs = self._specs()
        if self.source is not None:
            self.source.update(specs)
        new = {k: v for k, v in specs.items() if self._known.get(k) != v}
        await self._baseline(new, fire=False)

    async def _baseline(self, specs: dict[str, WatchSpec], *, fire: bool) -> None:
        d = self.deps
        journal, cursors = d.journal, d.cursors
        for job_id, spec in specs.items():
            self._known[job_id] = spec
            seen = await anyio.to_thread.run_sync(scan, spec.patterns)
            key = SEEN_KEY.format(job_id)
            if fire and key in cursors:
                changed = diff(await journal.manifest(job_id), seen)
                if changed:
                    log.info(
                        "%s: %d watched paths changed while jobd was down", job_id, len(changed)
                    )
                    d.decisions.note(
                        job_id, f"{len(changed)} watched paths changed while the daemon was down"
                    )
                    await d.submit(
                        Trigger(job_id=job_id, kind=TriggerKind.WATCH, changed_paths=tuple(changed))
                    )
                    crash_point("watch-journaled")
            await journal.set_manifest(job_id, seen)
            self._seen[job_id] = seen
            if key not in cursors:
                now = d.clock.now()
                cursors[key] = now
                await d.ledger.write(cursors={key: now})

    async def _fired(self, event: WatchFired) -> None:
        d = self.deps
        job = d.loaded.jobs.get(event.job_id)
        if job is None or job.watch is None or event.job_id in d.loaded.paused:
            return
        await d.submit(
            Trigger(job_id=event.job_id, kind=TriggerKind.WATCH, changed_paths=event.paths)
        )
        crash_point("watch-journaled")
        # The trigger is journaled: only now may the manifest say these changes were seen.
        old = self._seen.get(event.job_id, {})
        seen = await anyio.to_thread.run_sync(refresh, old, event.paths)
        self._seen[event.job_id] = seen
        await d.journal.set_manifest(event.job_id, seen)
