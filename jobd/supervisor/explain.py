"""``jobctl show`` and ``jobctl why``: a job's definition and its last decisions, as data and
as sentences. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from jobd._enums import RunState
from jobd.cli._format import spec, when_text
from jobd.config.model import JobDef
from jobd.journal.abc import RunRecord


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict | Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def definition_json(job: JobDef) -> dict[str, Any]:
    """The resolved definition as JSON-able data; time triggers as their descriptions."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(job):
        value = getattr(job, f.name)
        if f.name == "time_triggers":
            out["triggers"] = [t.describe() for t in value]
        else:
            out[f.name] = _plain(value)
    return out


def explain(
    job: JobDef,
    *,
    last: RunRecord | None,
    decisions: Sequence[str],
    paused: bool,
    next_run: datetime | None,
    active: Sequence[int],
    queued: Sequence[int],
    now: datetime,
    stale_since: datetime | None = None,
) -> dict[str, Any]:
    """Why the job did or did not run last time, and when it runs next. Times are shown in
    the job's zone with their distance from ``now``, as ``systemctl list-timers`` does."""
    lines: list[str] = []

    def at(when: datetime) -> str:
        return when_text(when, now, job.timezone)

    if last is None:
        lines.append(f"'{job.id}' has not run yet.")
    else:
        when = last.finished_at or last.started_at or last.queued_at
        what = f"run {last.run_id} ({last.trigger}"
        if last.scheduled_for is not None:
            what += f" for {at(last.scheduled_for)}"
        what += f", attempt {last.attempt})"
        if last.state is RunState.SKIPPED:
            lines.append(f"Last: {what} was skipped at {at(when)}: {last.message}.")
        elif last.state.finished:
            lines.append(
                f"Last: {what} {last.state} at {at(when)}"
                + (f": {last.message}." if last.message else ".")
            )
        else:
            lines.append(f"Last: {what} is {last.state}.")
        if last.folded_slots:
            lines.append(
                f"Run {last.run_id} also covers {len(last.folded_slots)} folded "
                f"slot(s): {', '.join(d.isoformat() for d in last.folded_slots)}."
            )
    if decisions:
        lines.append("Recent decisions:")
        lines.extend(f"  {d}" for d in decisions[-10:])
    if active:
        lines.append(f"Running now: run {', '.join(map(str, active))}.")
    if queued:
        lines.append(
            f"Queued: run {', '.join(map(str, queued))} (waiting for a slot, its pool "
            f"or the job's running run: overlap = {job.overlap})."
        )
    if not job.enabled:
        lines.append("Next: never by itself: the job is disabled (enabled = false).")
    elif paused:
        lines.append("Next: never by itself: the job is paused (jobctl resume to restart it).")
    elif next_run is not None:
        how = ", ".join(t.describe() for t in job.time_triggers)
        lines.append(f"Next: {at(next_run)}, by {how}.")
    triggers = []
    if job.watch is not None:
        triggers.append(f"a change in {', '.join(job.watch.patterns)}")
    if job.needs:
        triggers.append(f"its needs finishing ({', '.join(job.needs)}, rule {job.trigger_rule})")
    if triggers and job.enabled and not paused:
        lines.append("Also runs on " + " or ".join(triggers) + ".")
    if not job.time_triggers and not triggers:
        lines.append("It has no triggers: it runs only when asked (jobctl run).")
    if stale_since is not None and job.stale_after is not None:
        lines.append(
            f"Stale: no success since {at(stale_since)} (stale_after "
            f"{spec(job.stale_after)}); on_failure was told."
        )
    if job.condition is not None:
        lines.append(f"Each run first checks its condition: ${{{{ {job.condition} }}}}.")
    return {
        "job_id": job.id,
        "lines": lines,
        "facts": {
            "last_run": last.to_json() if last else None,
            "decisions": list(decisions),
            "paused": paused,
            "enabled": job.enabled,
            "next_run": next_run.isoformat() if next_run else None,
            "timezone": job.timezone,
            "stale_since": stale_since.isoformat() if stale_since else None,
            "running": list(active),
            "queued": list(queued),
        },
    }
