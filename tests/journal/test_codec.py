"""The shared row format, as plain functions: what goes in comes back equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobd._enums import RunState, TriggerKind
from jobd.journal._codec import decode_run, encode_run, from_micros, normalise_run, to_micros
from jobd.journal.abc import RunRecord

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
)
stamps = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=zones
)
text = st.text(max_size=12)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
int64 = st.integers(-(2**63), 2**63 - 1)

runs = st.builds(
    RunRecord,
    run_id=st.integers(1, 2**63 - 1),
    job_id=text,
    trigger=st.sampled_from(TriggerKind),
    state=st.sampled_from(RunState),
    queued_at=stamps,
    attempt=st.integers(1, 1000),
    scheduled_for=st.none() | stamps,
    flow_id=st.none() | text,
    params=st.dictionaries(text, text, max_size=4),
    changed_paths=st.lists(text, max_size=4).map(tuple),
    matrix=st.none() | st.dictionaries(text, json_values, max_size=4),
    started_at=st.none() | stamps,
    finished_at=st.none() | stamps,
    exit_code=st.none() | int64,
    pid=st.none() | int64,
    pid_start=st.none() | int64,
    outputs=st.dictionaries(text, text, max_size=4),
    log_path=st.none() | text,
    message=st.none() | text,
)


@given(runs)
def test_runs_round_trip(run: RunRecord) -> None:
    back = decode_run(encode_run(run))
    assert back == run
    assert back.queued_at.tzinfo is UTC
    assert normalise_run(back) == back


@given(stamps)
def test_micros_keep_the_instant_exactly(stamp: datetime) -> None:
    assert from_micros(to_micros(stamp, "t")) == stamp


def test_micros_are_utc_since_the_epoch() -> None:
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), "t") == 1_000_005
    assert to_micros(datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), "t") == 0
    with pytest.raises(ValueError, match="slot must be an aware datetime"):
        to_micros(datetime(2025, 1, 1), "slot")
