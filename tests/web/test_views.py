"""The dashboard's pure decisions: colours, graph layout, timeline geometry, redaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord
from jobd.web import views

T0 = datetime(2026, 12, 5, 0, 0, tzinfo=UTC)


def test_every_run_state_has_a_colour() -> None:
    for state in RunState:
        assert str(state) in views.STATE_COLOURS, state
    # Airflow's colour for a task whose upstream failed: orange.
    assert views.STATE_COLOURS["upstream_failed"] == "#ef6c00"
    assert views.state_class("failed") == "st-failed"
    assert views.state_class("<script>") == "st-pending"
    css = views.states_css()
    assert "tr.st-failed td.state{background:#c62828;color:#ffffff}" in css
    assert "svg .st-upstream_failed{fill:#ef6c00}" in css


def test_relative_times_and_durations() -> None:
    assert views.relative(T0 + timedelta(seconds=5), T0) == "in 5 s"
    assert views.relative(T0 - timedelta(minutes=3, seconds=10), T0) == "3 min ago"
    assert views.relative(T0 - timedelta(hours=2), T0) == "2 h ago"
    assert views.relative(T0 + timedelta(days=4, hours=1), T0) == "in 4 d"
    assert views.relative(T0, T0) == "now"
    assert views.duration(0.4213) == "0.42 s"
    assert views.duration(185) == "3 min 5 s"
    assert views.duration(7440) == "2 h 4 min"
    assert views.clock(datetime(2026, 12, 5, 8, 0, 1, tzinfo=UTC)) == "2026-12-05 08:00:01Z"


def test_the_example_pipeline_lays_out_in_two_columns() -> None:
    needs = {"transform": [], "report": ["transform"], "alert": ["transform"], "heartbeat": []}
    rules = {"transform": "all_success", "report": "all_success", "alert": "one_failed"}
    members = views.component(needs, "transform")
    assert members == {"transform", "report", "alert"}
    g = views.layout(
        members, needs, rules, {"transform": ("succeeded", 3), "alert": ("skipped", 4)}
    )
    pos = {n.job_id: (n.x, n.y, n.state, n.run_id) for n in g.nodes}
    # Column 0: transform; column 1: alert above report (alphabetical).
    assert pos == {
        "transform": (20, 20, "succeeded", 3),
        "alert": (280, 20, "skipped", 4),
        "report": (280, 100, "pending", None),
    }
    assert [(e.up, e.down, e.rule) for e in g.edges] == [
        ("transform", "alert", "one_failed"),
        ("transform", "report", "all_success"),
    ]
    assert g.edges[1].path == "M190,42 C235,42 235,122 274,122"
    assert (g.width, g.height) == (470, 164)  # report ends at 144, then 20 of padding


def test_component_of_a_job_in_the_middle_takes_both_directions() -> None:
    needs = {"a": [], "b": ["a"], "c": ["b"], "x": []}
    assert views.component(needs, "b") == {"a", "b", "c"}
    assert views.component(needs, "b", upstream=False) == {"b", "c"}
    assert views.component(needs, "x") == {"x"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Folding(RunRecord):
    """A run as the journal will keep it once folded slots are recorded."""

    folded_slots: tuple[datetime, ...] = ()


def _run(
    run_id: int,
    job: str,
    state: str,
    queued: datetime,
    started: datetime | None = None,
    finished: datetime | None = None,
    slot: datetime | None = None,
    message: str | None = None,
    folded: tuple[datetime, ...] = (),
) -> RunRecord:
    return Folding(
        run_id=run_id,
        job_id=job,
        state=RunState(state),
        queued_at=queued,
        trigger=TriggerKind.EVERY,
        started_at=started,
        finished_at=finished,
        scheduled_for=slot,
        message=message,
        folded_slots=folded,
    )


def test_timeline_bars_and_marks() -> None:
    start, end = T0, T0 + timedelta(hours=10)  # 1000 px: 100 px an hour
    h = timedelta(hours=1)
    runs = [
        _run(1, "a", "succeeded", T0 + h, T0 + h, T0 + 2 * h, slot=T0 + h),
        # Began before the window: clipped at its left edge.
        _run(2, "a", "failed", T0 - h, T0 - h, T0 + 3 * h),
        _run(3, "a", "skipped", T0 + 4 * h, slot=T0 + 4 * h, message="overlap = skip"),
        _run(4, "a", "running", T0 + 9 * h, T0 + 9 * h, slot=T0 + 9 * h, folded=(T0 + 8 * h,)),
        _run(5, "b", "timed_out", T0 + 5 * h, T0 + 5 * h, T0 + 5 * h),
    ]
    slots = {"a": [T0 + n * h for n in range(1, 10)], "c": [T0 + 2 * h]}
    tl = views.timeline(runs, slots, ["a", "b", "c"], start=start, end=end, now=T0 + 9.5 * h)
    lanes = {lane.job_id: lane for lane in tl.lanes}
    assert [(b.run_id, b.x, b.w, b.state) for b in lanes["a"].bars] == [
        (1, 100.0, 100.0, "succeeded"),
        (2, 0.0, 300.0, "failed"),
        (4, 900.0, 50.0, "running"),
    ]
    assert [(b.run_id, b.x, b.w) for b in lanes["b"].bars] == [(5, 500.0, 2.0)]
    marks = sorted((m.x, m.kind) for m in lanes["a"].marks)
    # Slots 1 and 9 were taken; 4 was taken by the skipped run; 8 folded into run 4.
    assert marks == [
        (200.0, "missed"),
        (300.0, "missed"),
        (400.0, "skipped"),
        (500.0, "missed"),
        (600.0, "missed"),
        (700.0, "missed"),
        (800.0, "folded"),
    ]
    # Job c has no run at all here: its slots are not called missed.
    assert lanes["c"].marks == []
    assert [label for _, label in tl.ticks] == [f"{n:02d}:00" for n in range(1, 10)]
    assert tl.ticks[0][0] == 100.0


def test_timeline_svg_escapes_and_shortens_lane_names() -> None:
    h = timedelta(hours=1)
    long_id = 'p:<b>"' + "x" * 40
    tl = views.timeline(
        [_run(7, long_id, "failed", T0 + h, T0 + h, T0 + 2 * h, message="<i>")],
        {},
        [long_id],
        start=T0,
        end=T0 + 10 * h,
        now=T0 + 10 * h,
    )
    svg = str(views.timeline_svg(tl))
    assert "<b>" not in svg
    # The label is cut to 22 characters; the whole id stays in its title.
    assert '<text class="job" x="4" y="17">p:&lt;b&gt;&quot;' + "x" * 15 + "…<title>" in svg
    assert '<rect class="bar st-failed" x="260.0" y="5" width="100.0" height="16">' in svg
