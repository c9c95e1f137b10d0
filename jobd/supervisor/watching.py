"""Watch triggers wired to the daemon: file changes become journaled triggers, and the
manifest of what was last seen makes changes during downtime trigger at start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from jobd._crashpoints import crash_point
from jobd._enums import TriggerKind
from jobd.config.model import WatchSpec
from jobd.journal.abc import ManifestEntry
from jobd.supervisor.events import Trigger
from jobd.triggers.manifest import diff, refresh, scan
from jobd.triggers.watch import WatchFired, WatchSource

if TYPE_CHECKING:
    from jobd.supervisor.daemon import Daemon

log = logging.getLogger("jobd.watch")

SEEN_KEY = "{}:watch"  # a cursor entry marks a job whose manifest has a baseline


class WatchService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.source: WatchSource | None = None
        self._known: dict[str, WatchSpec] = {}
        self._seen: dict[str, dict[str, ManifestEntry]] = {}  # the journaled manifests

    def _specs(self) -> dict[str, WatchSpec]:
        d = self.daemon
        return {j.id: j.watch for j in d.jobset.jobs.values()
                if j.watch is not None and j.enabled and j.id not in d.paused}

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
        journal, cursors = self.daemon.journal, self.daemon.cursors
        for job_id, spec in specs.items():
            self._known[job_id] = spec
            seen = await anyio.to_thread.run_sync(scan, spec.patterns)
            key = SEEN_KEY.format(job_id)
            if fire and key in cursors:
                changed = diff(await journal.manifest(job_id), seen)
                if changed:
                    log.info("%s: %d watched paths changed while jobd was down", job_id,
                             len(changed))
                    self.daemon._decide(job_id, f"{len(changed)} watched paths changed while "
                                                "the daemon was down")
                    await self.daemon.submit(Trigger(job_id=job_id, kind=TriggerKind.WATCH,
                                                     changed_paths=tuple(changed)))
                    crash_point("watch-journaled")
            await journal.set_manifest(job_id, seen)
            self._seen[job_id] = seen
            if key not in cursors:
                now = self.daemon.clock.now()
                cursors[key] = now
                await journal.put_runs([], cursors={key: now})

    async def _fired(self, event: WatchFired) -> None:
        d = self.daemon
        job = d.jobset.jobs.get(event.job_id)
        if job is None or job.watch is None or event.job_id in d.paused:
            return
        await d.submit(Trigger(job_id=event.job_id, kind=TriggerKind.WATCH,
                               changed_paths=event.paths))
        crash_point("watch-journaled")
        # The trigger is journaled: only now may the manifest say these changes were seen.
        old = self._seen.get(event.job_id, {})
        seen = await anyio.to_thread.run_sync(refresh, old, event.paths)
        self._seen[event.job_id] = seen
        await d.journal.set_manifest(event.job_id, seen)
