"""The last decisions taken about each job, in words, for ``jobctl why``."""

from __future__ import annotations

from collections import deque

from jobd.supervisor.clock import Clock

KEEP = 20  # decisions kept per job


class Decisions:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_job: dict[str, deque[str]] = {}

    def note(self, job_id: str, text: str) -> None:
        stamp = self._clock.now().isoformat(timespec="seconds")
        self._by_job.setdefault(job_id, deque(maxlen=KEEP)).append(f"{stamp} {text}")

    def of(self, job_id: str) -> list[str]:
        return list(self._by_job.get(job_id, ()))
