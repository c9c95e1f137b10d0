"""What the daemon has loaded: its config, the job set and the paused jobs.

One mutable holder that every part reads live: reload replaces ``config`` and ``jobset``,
pause and resume change ``paused``. Nothing else is kept here."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from jobd._exceptions import JobNotFound
from jobd.config.model import DaemonConfig, JobDef, JobSet


class Loaded:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.jobset = JobSet(jobs={}, invalid={})
        self.paused: set[str] = set()
        self._needed_for: object = None
        self._needed: frozenset[str] = frozenset()

    @property
    def jobs(self) -> Mapping[str, JobDef]:
        return self.jobset.jobs

    def job(self, job_id: str) -> JobDef:
        """The job, or ``JobNotFound`` (the control API's error for an unknown id)."""
        job = self.jobset.jobs.get(job_id)
        if job is None:
            raise JobNotFound(
                job_id, near=difflib.get_close_matches(job_id, self.jobset.jobs, n=3, cutoff=0.6)
            )
        return job

    def timed(self) -> list[JobDef]:
        """Jobs the timer looks after: enabled, with time triggers, not paused."""
        return [
            j
            for j in self.jobset.jobs.values()
            if j.enabled and j.time_triggers and j.id not in self.paused
        ]

    @property
    def needed(self) -> frozenset[str]:
        """Ids of jobs that other jobs need: a trigger of one of them starts a flow."""
        if self._needed_for is not self.jobset:
            self._needed = frozenset(n for j in self.jobset.jobs.values() for n in j.needs)
            self._needed_for = self.jobset
        return self._needed
