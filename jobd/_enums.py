"""Enumerations shared across the daemon, the journal and the client."""

from __future__ import annotations

from enum import StrEnum


class Overlap(StrEnum):
    """What a trigger does while the job already runs."""

    QUEUE = "queue"
    SKIP = "skip"
    REPLACE = "replace"
    ALLOW = "allow"


class ExecutorKind(StrEnum):
    """Where a job's processes run: here, in a container, or on a Celery worker."""

    LOCAL = "local"
    DOCKER = "docker"
    CELERY = "celery"


class Catchup(StrEnum):
    """What happens to time slots missed while the daemon was down."""

    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class TriggerRule(StrEnum):
    """When a downstream job of a flow runs, judged on its needs' results (Airflow's meaning)."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_SKIPPED = "none_skipped"


class TriggerKind(StrEnum):
    """Why a run exists; exported to the run as ``JOBD_TRIGGER``."""

    CRON = "cron"
    EVERY = "every"
    WATCH = "watch"
    NEEDS = "needs"
    MANUAL = "manual"
    CATCHUP = "catchup"
    RECOVERY = "recovery"


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"  # not run: a need failed (Airflow's state)

    @property
    def finished(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


FINISHED_STATES = frozenset(s for s in RunState if s.finished)
