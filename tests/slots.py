"""Expected time slots, computed independently of jobd's planner: the offset rule of
docs/scheduling.md written out, and croniter for cron expressions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from croniter import croniter

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def offset_seconds(job_id: str, period: int) -> int:
    """``H mod P``: H is the SHA-256 of the job id read as a big-endian integer."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest(), "big") % period


def every_slots(job_id: str, period: int, after: datetime, until: datetime) -> list[datetime]:
    """Slots of ``every = "<period>s"`` in ``(after, until]``: ``k·P + (H mod P)`` seconds
    after the epoch."""
    off = offset_seconds(job_id, period)
    first = int((after - EPOCH).total_seconds() - off) // period + 1
    out: list[datetime] = []
    k = first
    while True:
        at = EPOCH + timedelta(seconds=k * period + off)
        if at > until:
            return out
        if at > after:
            out.append(at)
        k += 1


def cron_slots(expr: str, after: datetime, until: datetime) -> list[datetime]:
    """Slots of a cron expression (UTC; six fields put seconds first, as jobd reads them)."""
    fields = expr.split()
    if len(fields) == 6:  # croniter wants seconds last
        expr = " ".join(fields[1:] + fields[:1])
    it = croniter(expr, after.astimezone(UTC))
    out: list[datetime] = []
    while (at := it.get_next(datetime)) <= until:
        out.append(at.astimezone(UTC))
    return out
