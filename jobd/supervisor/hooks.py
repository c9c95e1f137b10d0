"""Hooks: which jobs a finished (or retried) run sets off, and the facts they receive. Pure.

A hook run is an ordinary run of the hook job with trigger ``hook``; the triggering run's facts
ride in its ``params`` (``JOBD_FAILED_JOB`` ...) and reach its environment. The daemon journals
hook runs in the same transaction as the result that sets them off, so a crash loses none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from jobd._enums import RunState, TriggerKind
from jobd.config.model import JobDef
from jobd.journal.abc import RunRecord

FAILURE_STATES = frozenset({"failed", "timed_out", "upstream_failed"})
"""Results that fire ``on_failure`` (``cancelled`` and ``skipped`` do not: nothing broke)."""
FACT_PREFIX = "JOBD_"


class HookEvent(StrEnum):
    """What happened, and the prefix of the facts a hook run sees."""

    FAILED = "FAILED"
    SUCCEEDED = "SUCCEEDED"
    RETRIED = "RETRIED"


@dataclass(frozen=True, slots=True, kw_only=True)
class HookCall:
    """One hook job to run, with the facts for its environment."""

    job_id: str
    facts: Mapping[str, str]


def event_for(state: RunState | str) -> HookEvent | None:
    """The hook event of a finished run's state, if any."""
    if str(state) in FAILURE_STATES:
        return HookEvent.FAILED
    if str(state) == RunState.SUCCEEDED:
        return HookEvent.SUCCEEDED
    return None


def hook_jobs(job: JobDef, event: HookEvent) -> tuple[str, ...]:
    return {
        HookEvent.FAILED: job.on_failure,
        HookEvent.SUCCEEDED: job.on_success,
        HookEvent.RETRIED: job.on_retry,
    }[event]


def facts(
    event: HookEvent, run: RunRecord, *, state: str | None = None, log: str | None = None
) -> dict[str, str]:
    """``JOBD_<EVENT>_JOB``, ``_RUN_ID``, ``_STATE``, ``_EXIT_CODE``, ``_LOG``, ``_ATTEMPT``,
    ``_MESSAGE`` (empty strings where unknown)."""
    p = f"{FACT_PREFIX}{event}_"
    return {
        f"{p}JOB": run.job_id,
        f"{p}RUN_ID": str(run.run_id),
        f"{p}STATE": state if state is not None else str(run.state),
        f"{p}EXIT_CODE": "" if run.exit_code is None else str(run.exit_code),
        f"{p}LOG": log if log is not None else (run.log_path or ""),
        f"{p}ATTEMPT": str(run.attempt),
        f"{p}MESSAGE": run.message or "",
    }


def plan_hooks(
    job: JobDef | None,
    run: RunRecord,
    event: HookEvent | None,
    fact_map: Mapping[str, str] | None = None,
) -> list[HookCall]:
    """The hook calls ``run`` sets off. A hook run sets off none of its own, so hooks can
    never loop (a failing notifier does not notify about itself)."""
    if job is None or event is None or run.trigger is TriggerKind.HOOK:
        return []
    names = hook_jobs(job, event)
    if not names:
        return []
    data = dict(fact_map) if fact_map is not None else facts(event, run)
    return [HookCall(job_id=name, facts=data) for name in names]


def stale_facts(
    job_id: str, *, since: datetime, last_success: datetime | None, stale_after: float
) -> dict[str, str]:
    """The facts of a stale job's ``on_failure`` call: state ``stale``, no run."""
    p = f"{FACT_PREFIX}{HookEvent.FAILED}_"
    return {
        f"{p}JOB": job_id,
        f"{p}RUN_ID": "",
        f"{p}STATE": "stale",
        f"{p}EXIT_CODE": "",
        f"{p}LOG": "",
        f"{p}ATTEMPT": "",
        f"{p}MESSAGE": (
            f"no success for {stale_after:g}s (since {since.isoformat()})"
            if last_success is not None
            else f"never succeeded since {since.isoformat()} (stale_after {stale_after:g}s)"
        ),
        f"{FACT_PREFIX}STALE_SINCE": since.isoformat(),
    }


def hook_env(run: RunRecord) -> dict[str, str]:
    """The facts a hook run carries, for its environment."""
    if run.trigger is not TriggerKind.HOOK:
        return {}
    return {k: v for k, v in run.params.items() if k.startswith(FACT_PREFIX)}
