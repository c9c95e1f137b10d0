"""When a burst is over: the coalescer and the batcher, on plain float times (no loop)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobd.config.model import WatchSpec
from jobd.triggers.watch import Batcher, Coalescer, WatchFired, grouping_ms, route


def test_a_lone_change_fires_after_quiet() -> None:
    c = Coalescer(debounce=0.1, quiet=0.005)
    assert c.deadline() is None and c.pop_due(10.0) == []
    c.add(["/a"], 1.0)
    assert c.deadline() == 1.005
    assert c.pop_due(1.004) == []
    assert c.pop_due(1.005) == [("/a",)]
    assert c.deadline() is None and c.pop_due(2.0) == []


def test_news_extends_quiet_until_debounce() -> None:
    """A change every 4 ms for 200 ms: quiet (5 ms) never comes, the 100 ms debounce ends
    each burst."""
    c = Coalescer(debounce=0.1, quiet=0.005)
    fired_at: list[float] = []
    for i in range(51):
        t = 1.0 + i * 0.004
        if c.pop_due(t + 1e-9):  # float noise
            fired_at.append(t)
        c.add([f"/f{i}", "/same"], t)
    assert fired_at == [pytest.approx(1.1), pytest.approx(1.2)]


def test_the_same_path_again_is_news() -> None:
    c = Coalescer(debounce=1.0, quiet=0.005)
    c.add(["/a"], 1.0)
    c.add(["/a"], 1.004)
    assert c.pop_due(1.006) == []
    assert c.pop_due(1.009) == [("/a",)]


def test_batch_holds_every_distinct_path_sorted() -> None:
    c = Coalescer(debounce=0.1, quiet=0.005)
    c.add(["/b", "/a"], 1.0)
    c.add(["/c", "/a"], 1.003)
    assert c.pop_due(1.008) == [("/a", "/b", "/c")]


def test_out_of_order_times() -> None:
    c = Coalescer(debounce=0.1, quiet=0.005)
    c.add(["/a"], 1.003)
    c.add(["/b"], 1.0)  # a watcher's older batch arriving late
    assert c.deadline() == pytest.approx(1.008)


def test_max_paths_fires_at_once_in_chunks() -> None:
    c = Coalescer(debounce=10.0, quiet=1.0, max_paths=3)
    c.add(["/1", "/2"], 1.0)
    assert c.pop_due(1.0) == []
    c.add(["/3", "/4", "/5", "/6", "/7"], 1.001)
    assert c.pop_due(1.001) == [("/1", "/2", "/3"), ("/4", "/5", "/6"), ("/7",)]


@given(
    st.lists(st.tuples(st.floats(0, 0.05), st.integers(0, 30)), min_size=1, max_size=200),
    st.floats(0.001, 0.02),
    st.floats(0.0, 0.2),
)
def test_no_path_is_lost_and_deadlines_hold(
    events: list[tuple[float, int]], quiet: float, debounce: float
) -> None:
    """Feed gaps and paths; every path comes out once per burst, no burst outlives its
    debounce, and none fires before a quiet period."""
    c = Coalescer(debounce=debounce, quiet=quiet)
    t, first, last = 0.0, None, None
    out: set[str] = set()
    sent: set[str] = set()
    for gap, n in events:
        for batch in c.pop_due(t + gap):
            assert first is not None and last is not None
            assert t + gap >= min(last + quiet, first + debounce)
            out.update(batch)
            first = None
        t += gap
        c.add([f"/p{n}"], t)
        sent.add(f"/p{n}")
        first = t if first is None else first
        last = t
    for batch in c.pop_due(t + quiet):
        out.update(batch)
    assert out == sent


def test_batcher_routes_per_job_and_follows_updates() -> None:
    specs = {
        "a": WatchSpec(patterns=("/in/*.csv",), debounce=0.1),
        "b": WatchSpec(patterns=("/in",), debounce=0.02),
    }
    assert route(specs, ["/in/x.csv", "/in/y.txt", "/out/z.csv"]) == {
        "a": {"/in/x.csv"},
        "b": {"/in/x.csv", "/in/y.txt"},
    }
    b = Batcher(specs, quiet=0.005)
    b.add("a", ["/in/x.csv"], 1.0)
    b.add("b", ["/in/x.csv"], 1.0)
    b.add("ghost", ["/in/x.csv"], 1.0)  # not watching: ignored
    assert b.next_deadline() == 1.005
    assert b.pop_due(1.005) == [
        WatchFired(job_id="a", paths=("/in/x.csv",)),
        WatchFired(job_id="b", paths=("/in/x.csv",)),
    ]
    b.add("a", ["/in/1.csv"], 2.0)
    b.add("b", ["/in/2"], 2.0)
    b.update({"a": WatchSpec(patterns=("/in/*.csv",), debounce=0.1)})  # b leaves
    assert b.pop_due(3.0) == [WatchFired(job_id="a", paths=("/in/1.csv",))]
    assert b.next_deadline() is None


def test_grouping_is_the_smallest_debounce_bounded() -> None:
    assert grouping_ms({}) == 100
    assert (
        grouping_ms(
            {
                "a": WatchSpec(patterns=("/x",), debounce=0.25),
                "b": WatchSpec(patterns=("/y",), debounce=0.05),
            }
        )
        == 50
    )
    assert grouping_ms({"a": WatchSpec(patterns=("/x",), debounce=60.0)}) == 1000
    assert grouping_ms({"a": WatchSpec(patterns=("/x",), debounce=0.0)}) == 0
