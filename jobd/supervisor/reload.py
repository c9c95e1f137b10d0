"""Reload: re-read the config and the job files, and apply what changed.

``diff_jobs`` and ``merge_config`` decide (pure); ``Reloader`` applies: new time triggers
start from now (no catch-up of them), queued runs of removed jobs are cancelled, the timer,
the watches and dispatch look again."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import anyio

from jobd._exceptions import ConfigError
from jobd.config.loader import load_config, load_jobs
from jobd.config.model import RELOADABLE, DaemonConfig, JobDef, restart_needed
from jobd.supervisor.clock import Clock
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.notify import Notifier
from jobd.supervisor.runs import RunTable

log = logging.getLogger("jobd")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsDiff:
    gone: frozenset[str]
    changed: frozenset[str]  # new, or defined differently
    retimed: frozenset[str]  # changed, existed before, with other time triggers


def diff_jobs(old: Mapping[str, JobDef], new: Mapping[str, JobDef]) -> JobsDiff:
    changed = frozenset(j for j in new if old.get(j) != new[j])
    return JobsDiff(
        gone=frozenset(set(old) - set(new)),
        changed=changed,
        retimed=frozenset(
            j for j in changed if j in old and old[j].time_triggers != new[j].time_triggers
        ),
    )


def merge_config(current: DaemonConfig, fresh: DaemonConfig) -> tuple[DaemonConfig, list[str]]:
    """The config after a reload, and the settings that changed but wait for a restart, as
    the config file names them (``daemon.socket_mode``, ``http``)."""
    merged = replace(current, **{k: getattr(fresh, k) for k in RELOADABLE})
    return merged, restart_needed(current, fresh)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadDeps:
    loaded: Loaded
    cursors: dict[str, datetime]
    runs: RunTable
    ledger: Ledger
    clock: Clock
    notifier: Notifier
    cancel_queued: Callable[[int], Awaitable[bool]]
    wake_timer: Callable[[], None]
    wake_dispatch: Callable[[], None]
    update_watches: Callable[[], Awaitable[None]]
    status_line: Callable[[], str]


class Reloader:
    def __init__(self, deps: ReloadDeps) -> None:
        self.deps = deps
        self._lock = anyio.Lock()

    async def reload(self) -> None:
        d = self.deps
        loaded = d.loaded
        async with self._lock:
            d.notifier.reloading()
            if loaded.config.path is not None:
                try:
                    fresh = load_config(loaded.config.path)
                except ConfigError as exc:
                    log.error("config not reloaded:\n%s", exc)
                else:
                    self._apply_config(fresh)
            jobset = load_jobs(loaded.config, previous=loaded.jobset)
            diff = diff_jobs(loaded.jobs, jobset.jobs)
            if diff.retimed:  # new triggers start from now, like a new job: no catch-up
                retimed = {j: d.clock.now() for j in diff.retimed}
                d.cursors.update(retimed)
                await d.ledger.write(cursors=retimed)
            loaded.jobset = jobset
            for f, errs in jobset.invalid.items():
                log.error("%s: rejected: %s", f, "; ".join(errs))
            for rid, run in list(d.runs.queued.items()):
                if run.job_id in diff.gone:
                    await d.cancel_queued(rid)
            if diff.gone or diff.changed:
                log.info(
                    "reloaded: %d jobs (%d changed, %d removed), %d invalid files",
                    len(jobset.jobs),
                    len(diff.changed),
                    len(diff.gone),
                    len(jobset.invalid),
                )
            d.wake_timer()
            await d.update_watches()
            d.wake_dispatch()
            d.notifier.ready(d.status_line())

    def _apply_config(self, fresh: DaemonConfig) -> None:
        loaded = self.deps.loaded
        loaded.config, later = merge_config(loaded.config, fresh)
        for name in later:
            log.warning(
                "config: %s changed; it takes effect only when jobd is restarted "
                "(systemctl restart jobd)",
                name,
            )
