"""What the pages draw, decided without I/O: state colours, the needs graph laid out in layers,
the timeline's bars and marks, runs tables, relative times."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from markupsafe import Markup

from jobd.journal.abc import RunRecord

# Fill colours by run state; "pending" is a job of a flow that has no run yet. Airflow's
# palette where it has one (upstream_failed orange, skipped pink-grey, queued grey).
STATE_COLOURS: Mapping[str, str] = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "timed_out": "#8e24aa",
    "cancelled": "#6d4c41",
    "skipped": "#b0a4ad",
    "upstream_failed": "#ef6c00",
    "running": "#1e88e5",
    "queued": "#90a4ae",
    "pending": "#eceff1",
}
DARK_TEXT = frozenset({"skipped", "queued", "pending"})  # light fills take dark text


def state_class(state: str | None) -> str:
    """The CSS class of a state (``st-failed``); unknown states look pending."""
    return f"st-{state}" if state in STATE_COLOURS else "st-pending"


def states_css() -> str:
    """The colour rules of every state, for rows, badges, graph nodes and timeline bars."""
    out = []
    for state, colour in STATE_COLOURS.items():
        text = "#1c1c1c" if state in DARK_TEXT else "#ffffff"
        out.append(f".badge.st-{state}{{background:{colour};color:{text}}}")
        out.append(f"tr.st-{state} td.state{{background:{colour};color:{text}}}")
        out.append(f"svg .st-{state}{{fill:{colour}}}")
        out.append(f"svg text.st-{state}{{fill:{text}}}")
    return "\n".join(out) + "\n"


# --- times -------------------------------------------------------------------------------------


def relative(moment: datetime, now: datetime) -> str:
    """``in 5 s``, ``3 min ago``, ``2 h ago``, ``in 4 d``."""
    seconds = (moment - now).total_seconds()
    n = abs(seconds)
    if n < 1:
        return "now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if n >= size:
            text = f"{int(n // size)} {unit}"
            break
    else:
        text = f"{int(n)} s"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def clock(moment: datetime | None) -> str:
    """``2026-12-05 07:40:12Z`` (UTC), or empty."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def run_rows(runs: Iterable[RunRecord], now: datetime, *, show_job: bool = True) -> Markup:
    """The rows of a runs table, every text escaped. Built here rather than in the template:
    a page of 50 rows costs a tenth of what Jinja's per-value escaping does."""
    out = []
    for r in runs:
        e = html.escape
        ran = seconds(r.started_at, r.finished_at)
        queued = r.queued_at.isoformat()
        link = e(quote(r.job_id, safe=""))
        job = f'<td><a href="/jobs/{link}">{e(r.job_id)}</a></td>' if show_job else ""
        flow = f'<a href="/flows/{e(r.flow_id)}">{e(r.flow_id)}</a>' if r.flow_id else ""
        out.append(
            f'<tr data-run="{r.run_id}" class="{state_class(str(r.state))}">'
            f'<td><a href="/runs/{r.run_id}">{r.run_id}</a></td>{job}'
            f'<td class="state">{e(str(r.state))}</td><td>{e(str(r.trigger))}</td>'
            f"<td>{clock(r.scheduled_for)}</td><td>{r.attempt}</td>"
            f'<td><time datetime="{queued}" data-ts="{queued}" title="{clock(r.queued_at)}">'
            f"{relative(r.queued_at, now)}</time></td><td>{duration(ran)}</td>"
            f"<td>{flow}</td></tr>"
        )
    return Markup("\n".join(out))


def seconds(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


# --- the needs graph ---------------------------------------------------------------------------

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 44, 90, 36, 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    job_id: str
    x: int
    y: int
    state: str  # a run state, or "pending"
    run_id: int | None = None

    @property
    def cls(self) -> str:
        return state_class(self.state)


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    up: str
    down: str
    rule: str
    path: str  # SVG path data
    label_x: int
    label_y: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def component(
    needs: Mapping[str, Sequence[str]], job_id: str, *, upstream: bool = True
) -> set[str]:
    """``job_id``, every job it needs (with ``upstream``) and every job that needs it,
    transitively: the graph a job's definition belongs to."""
    needed_by: dict[str, list[str]] = {}
    for job, ups in needs.items():
        for up in ups:
            needed_by.setdefault(up, []).append(job)
    seen = {job_id}
    todo = [job_id]
    while todo:
        job = todo.pop()
        nexts = list(needed_by.get(job, ()))
        if upstream:
            nexts += needs.get(job, ())
        for other in nexts:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def layout(
    jobs: Iterable[str],
    needs: Mapping[str, Sequence[str]],
    rules: Mapping[str, str],
    states: Mapping[str, tuple[str, int | None]],
) -> Graph:
    """Lay ``jobs`` out left to right: a job's column is the longest chain of needs before it;
    within a column, alphabetical. Edges run from a need to the job that needs it, labelled
    with the needing job's trigger rule. ``states``: job -> (state, run id)."""
    members = sorted(set(jobs))
    inside = set(members)
    column: dict[str, int] = {}

    def depth(job: str, seen: frozenset[str] = frozenset()) -> int:
        if job not in column:
            ups = [u for u in needs.get(job, ()) if u in inside and u not in seen]
            column[job] = 1 + max((depth(u, seen | {job}) for u in ups), default=-1)
        return column[job]

    for job in members:
        depth(job)
    rows: dict[int, list[str]] = {}
    for job in members:
        rows.setdefault(column[job], []).append(job)
    nodes: dict[str, Node] = {}
    for col, names in rows.items():
        for row, job in enumerate(names):
            state, run_id = states.get(job, ("pending", None))
            nodes[job] = Node(
                job_id=job,
                x=PAD + col * (NODE_W + GAP_X),
                y=PAD + row * (NODE_H + GAP_Y),
                state=state,
                run_id=run_id,
            )
    edges = []
    for job in members:
        for up in needs.get(job, ()):
            if up not in nodes:
                continue
            a, b = nodes[up], nodes[job]
            x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
            x2, y2 = b.x, b.y + NODE_H // 2
            mid = (x1 + x2) // 2
            edges.append(
                Edge(
                    up=up,
                    down=job,
                    rule=rules.get(job, "all_success"),
                    path=f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}",
                    label_x=mid,
                    label_y=(y1 + y2) // 2 - 6,
                )
            )
    width = PAD * 2 + (max(column.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(r) for r in rows.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Graph(
        nodes=tuple(nodes[j] for j in members), edges=tuple(edges), width=width, height=height
    )


# --- the timeline ------------------------------------------------------------------------------

TICK_STEPS = (60, 300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    run_id: int
    x: float
    w: float
    state: str
    title: str

    @property
    def cls(self) -> str:
        return state_class(self.state)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    x: float
    kind: str  # "missed", "skipped" or "folded"
    title: str
    run_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lane:
    job_id: str
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    start: datetime
    end: datetime
    width: int
    lanes: tuple[Lane, ...]
    ticks: tuple[tuple[float, str], ...]


def timeline(
    runs: Iterable[RunRecord],
    slots: Mapping[str, Sequence[datetime]],
    jobs: Iterable[str],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    width: int = 1000,
) -> Timeline:
    """Bars for runs from start to finish (still running: to ``now``), clipped to
    ``[start, end]``; marks for skipped runs, folded slots (a run's ``folded_slots``, where
    the journal has them), and slots of ``slots`` that no run took (missed) once the job was
    there: a slot before the job's first run in ``runs`` is not marked."""
    span = (end - start).total_seconds() or 1.0

    def x_of(moment: datetime) -> float:
        return round(max(0.0, min(1.0, (moment - start).total_seconds() / span)) * width, 2)

    lanes: dict[str, Lane] = {j: Lane(job_id=j) for j in sorted(set(jobs))}
    taken: dict[str, set[datetime]] = {}
    first_seen: dict[str, datetime] = {}
    for run in sorted(runs, key=lambda r: r.run_id):
        job = run.job_id
        if job not in first_seen or run.queued_at < first_seen[job]:
            first_seen[job] = run.queued_at
        lane = lanes.setdefault(job, Lane(job_id=job))
        state = str(run.state)
        rid = run.run_id
        slot = run.scheduled_for
        folded = folded_slots(run)
        taken.setdefault(job, set()).update([*([slot] if slot else []), *folded])
        for f in folded:
            if start <= f <= end:
                lane.marks.append(
                    Mark(
                        x=x_of(f),
                        kind="folded",
                        run_id=rid,
                        title=f"slot {clock(f)} folded into run {rid}",
                    )
                )
        if state == "skipped":
            at = slot or run.queued_at
            if start <= at <= end:
                lane.marks.append(
                    Mark(
                        x=x_of(at),
                        kind="skipped",
                        run_id=rid,
                        title=f"run {rid} skipped {clock(at)}: {run.message or ''}",
                    )
                )
            continue
        begin = run.started_at or run.queued_at
        finish = run.finished_at or now
        if finish < start or begin > end:
            continue
        x1, x2 = x_of(begin), x_of(finish)
        lane.bars.append(
            Bar(
                run_id=rid,
                x=x1,
                w=max(2.0, round(x2 - x1, 2)),
                state=state,
                title=f"run {rid} {state}: {clock(begin)} – {clock(run.finished_at) or 'running'}",
            )
        )
    for job, times in slots.items():
        lane = lanes.setdefault(job, Lane(job_id=job))
        since = first_seen.get(job)
        for t in times:
            if (
                since is not None
                and since <= t
                and start <= t <= end
                and t not in taken.get(job, set())
            ):
                lane.marks.append(
                    Mark(x=x_of(t), kind="missed", title=f"slot {clock(t)}: no run took it")
                )
    step = next((s for s in TICK_STEPS if span / s <= 12), TICK_STEPS[-1])
    first = datetime.fromtimestamp((start.timestamp() // step + 1) * step, tz=start.tzinfo)
    ticks = []
    t = first
    while t < end:
        label = clock(t)[11:16] if step < 86400 else clock(t)[:10]
        ticks.append((x_of(t), label))
        t += timedelta(seconds=step)
    return Timeline(
        start=start, end=end, width=width, lanes=tuple(lanes.values()), ticks=tuple(ticks)
    )


def folded_slots(run: RunRecord) -> list[datetime]:
    """The slots folded into the run, where the journal records them (``folded_slots``)."""
    value = getattr(run, "folded_slots", None) or ()
    return [v if isinstance(v, datetime) else datetime.fromisoformat(str(v)) for v in value]


LANE_H, LABEL_W = 26, 160
_SYMBOL = {"missed": "◇", "skipped": "✕", "folded": "▼"}


def timeline_svg(tl: Timeline) -> Markup:
    """The timeline's lanes as SVG, every text escaped. Built here, not in the template: a
    span of 5,000 runs renders in a fifth of the time."""
    e = html.escape
    out = []
    bottom = len(tl.lanes) * LANE_H
    for x, label in tl.ticks:
        out.append(
            f'<line class="tick" x1="{LABEL_W + x}" x2="{LABEL_W + x}" y1="0" '
            f'y2="{bottom + 6}"/><text class="tick" x="{LABEL_W + x}" y="{bottom + 22}" '
            f'text-anchor="middle">{e(label)}</text>'
        )
    for n, lane in enumerate(tl.lanes):
        y = n * LANE_H
        name = lane.job_id if len(lane.job_id) <= 22 else lane.job_id[:21] + "…"
        out.append(
            f'<g class="lane" data-job="{e(lane.job_id)}"><text class="job" x="4" '
            f'y="{y + 17}">{e(name)}<title>{e(lane.job_id)}</title></text>'
            f'<line class="lane" x1="{LABEL_W}" x2="{LABEL_W + tl.width}" '
            f'y1="{y + LANE_H - 1}" y2="{y + LANE_H - 1}"/>'
        )
        out.extend(
            f'<a href="/runs/{b.run_id}"><rect class="bar {b.cls}" x="{LABEL_W + b.x}" '
            f'y="{y + 5}" width="{b.w}" height="{LANE_H - 10}"><title>{e(b.title)}'
            f"</title></rect></a>"
            for b in lane.bars
        )
        out.extend(
            f'<text class="mark {m.kind}" x="{LABEL_W + m.x}" y="{y + 17}" '
            f'text-anchor="middle">{_SYMBOL[m.kind]}<title>{e(m.title)}</title></text>'
            for m in lane.marks
        )
        out.append("</g>")
    return Markup("\n".join(out))
