"""Time triggers: cron expressions, cadences with the offset rule, time zones, and the
catch-up planner. All pure: no clock reads, no I/O beyond tz database lookups."""

from __future__ import annotations

from jobd.triggers.abc import TimeTrigger
from jobd.triggers.cadence import CALENDAR_PERIODS, MIN_PERIOD, CadenceTrigger, job_hash
from jobd.triggers.catchup import (
    COUNT_LIMIT,
    MAX_CATCHUP_RUNS,
    DroppedSlots,
    DropReason,
    DuePlan,
    DueSlot,
    next_due,
    next_fire_times,
    plan_due,
)
from jobd.triggers.cron import ALIASES, CronTrigger
from jobd.triggers.timezones import machine_timezone, resolve_timezone

__all__ = [
    "ALIASES",
    "CALENDAR_PERIODS",
    "COUNT_LIMIT",
    "MAX_CATCHUP_RUNS",
    "MIN_PERIOD",
    "CadenceTrigger",
    "CronTrigger",
    "DropReason",
    "DroppedSlots",
    "DuePlan",
    "DueSlot",
    "TimeTrigger",
    "job_hash",
    "machine_timezone",
    "next_due",
    "next_fire_times",
    "plan_due",
    "resolve_timezone",
]
