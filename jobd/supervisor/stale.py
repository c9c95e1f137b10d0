"""Stale jobs: a job with ``stale_after`` that has not succeeded for that long. Pure.

A staleness *episode* is named by its reference instant: the job's last success, or, for a job
that never succeeded, when the daemon first saw it. ``on_failure`` fires once per episode; the
daemon journals the reference it fired for, so a restart does not fire it again. A success
starts a new reference and so ends the episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Journal cursor keys; a job id starts with a letter or digit, so "!" keeps them apart from
# every job's own cursor.
FIRED_KEY = "!stale-fired:{}"  # the reference of the episode whose on_failure fired
SEEN_KEY = "!stale-seen:{}"  # when a job with stale_after was first seen


@dataclass(frozen=True, slots=True, kw_only=True)
class Staleness:
    """``stale``: now at or past ``due_at``; ``fire``: a new episode, fire ``on_failure``."""

    stale: bool
    fire: bool
    since: datetime  # the reference: last success, else first seen
    due_at: datetime  # since + stale_after


def judge(
    *,
    stale_after: float,
    last_success: datetime | None,
    first_seen: datetime,
    now: datetime,
    fired_for: datetime | None,
) -> Staleness:
    """Whether the job is stale at ``now`` and whether its ``on_failure`` must fire."""
    since = last_success if last_success is not None else first_seen
    due_at = since + timedelta(seconds=stale_after)
    stale = now >= due_at
    return Staleness(stale=stale, fire=stale and fired_for != since, since=since, due_at=due_at)
