"""The dashboard's pages: each reads through ``DaemonAPI`` (what the control socket reads) and
renders a Jinja template with every value escaped. Live parts are server-sent events."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from jobd import __version__
from jobd._enums import RunState, TriggerKind
from jobd._exceptions import JobNotFound, RunNotFound
from jobd.config.model import DaemonConfig
from jobd.control.api import DaemonAPI
from jobd.control.protocol import utf8_complete
from jobd.control.redact import hide_env
from jobd.flows.rules import aggregate
from jobd.journal.abc import RunRecord
from jobd.web import views

log = logging.getLogger("jobd.web")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PAGE = 50  # runs per page
TIMELINE_RUNS = 5_000  # runs drawn at most (newest kept): more than a 1000 px chart shows
LOOKBACK = timedelta(hours=1)
TIMELINE_SLOTS = 2_000  # slots per job looked at for missed marks
LOG_CHUNK = 256 * 1024
SLOT_GRACE = timedelta(seconds=5)
POLL = 0.25  # seconds between looks at a growing log
HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["cls"] = views.state_class
_env.filters["clock"] = views.clock
_env.filters["q"] = lambda v: quote(str(v), safe="")  # one path segment, "/" included
_env.filters["json"] = lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False)


def _read(path: Path, offset: int, size: int) -> tuple[bytes, int]:
    """Up to ``size`` bytes from ``offset``, and the file's size (0 when missing)."""
    try:
        with path.open("rb") as f:
            total = os.fstat(f.fileno()).st_size
            if offset >= total:
                return b"", total
            f.seek(offset)
            return f.read(size), total
    except (FileNotFoundError, NotADirectoryError):
        return b"", 0


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Dashboard:
    def __init__(self, api: DaemonAPI, config: DaemonConfig, *, logs_visible: bool) -> None:
        self.api = api
        self.config = config
        self.logs_visible = logs_visible
        self._streams: set[anyio.CancelScope] = set()

    def close(self) -> None:
        """End every live stream now (the daemon is stopping)."""
        for scope in list(self._streams):
            scope.cancel()

    async def _page(self, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        """Render in a worker thread: the event loop, which also starts the daemon's runs on
        time, only waits for it (docs/dashboard.md, Cost)."""
        now = datetime.now(UTC)
        html = await anyio.to_thread.run_sync(
            functools.partial(
                _env.get_template(template).render,
                version=__version__,
                now=now,
                rel=lambda d: views.relative(d, now) if d else "",
                **context,
            )
        )
        return HTMLResponse(html, code)

    # --- pages ---------------------------------------------------------------------------

    async def jobs(self, request: Request) -> Response:
        jobs = await self.api.list_jobs()
        status = await self.api.status()
        for j in jobs:
            j["next_dt"] = views.parse_iso(j["next_run"])
            last = j["last_run"]
            j["last_dt"] = views.parse_iso(last["finished_at"]) if last else None
        return await self._page("jobs.html", title="Jobs", nav="jobs", jobs=jobs, status=status)

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        shown = await self._call(self.api.show_job(job_id))
        graph = await self._definition_graph(job_id)
        runs = await self.api.runs(job_id, limit=20, state=None)
        definition = hide_env(shown["definition"])  # docs/security.md, least disclosure
        return await self._page(
            "job.html",
            title=job_id,
            nav="jobs",
            job=shown,
            graph=graph,
            rows=views.run_rows(runs, datetime.now(UTC), show_job=False),
            definition=definition,
            next_times=[views.parse_iso(t) for t in shown["next_fire_times"]],
        )

    async def why(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        why = await self._call(self.api.why(job_id))
        return await self._page(
            "why.html", title=f"Why {job_id}", nav="jobs", why=why, job_id=job_id
        )

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        job = q.get("job") or None
        flow = q.get("flow") or None
        try:
            state = RunState(q["state"]) if q.get("state") else None
            trigger = TriggerKind(q["trigger"]) if q.get("trigger") else None
            before = int(q["before"]) if q.get("before") else None
        except ValueError as exc:
            raise HTTPException(400, f"bad filter: {exc}") from exc
        try:
            runs = await self.api.runs(
                job, limit=PAGE + 1, state=state, trigger=trigger, flow_id=flow, before=before
            )
        except JobNotFound:
            runs = []
        more = len(runs) > PAGE
        runs = runs[:PAGE]
        filters = {
            k: v
            for k, v in (
                ("job", job),
                ("state", state and str(state)),
                ("trigger", trigger and str(trigger)),
                ("flow", flow),
            )
            if v
        }
        jobs = sorted(await self.api.needs_graph())
        return await self._page(
            "runs.html",
            title="Runs",
            nav="runs",
            more=more,
            rows=views.run_rows(runs, datetime.now(UTC)),
            last=runs[-1].run_id if runs else None,
            filters=filters,
            before=before,
            job_ids=jobs,
            states=[str(s) for s in _states()],
            triggers=[str(t) for t in TriggerKind],
        )

    async def run(self, request: Request) -> Response:
        run = await self._call(self.api.get_run(request.path_params["run_id"]))
        folded = views.folded_slots(run)
        waited = views.seconds(run.queued_at, run.started_at)
        ran = views.seconds(run.started_at, run.finished_at)
        return await self._page(
            "run.html",
            title=f"Run {run.run_id}",
            nav="runs",
            run=run,
            folded=folded,
            waited=views.duration(waited),
            ran=views.duration(ran),
            logs_visible=self.logs_visible,
        )

    async def flow(self, request: Request) -> Response:
        flow_id = request.path_params["flow_id"]
        runs = await self.api.runs(None, limit=1000, state=None, flow_id=flow_id)
        if not runs:
            raise HTTPException(404, f"no flow {flow_id}")
        needs, rules = await self._needs()
        root = min(runs, key=lambda r: r.run_id)
        members = views.component(needs, root.job_id, upstream=False) | {r.job_id for r in runs}
        graph = views.layout(members, needs, rules, _flow_states(runs))
        return await self._page(
            "flow.html",
            title=f"Flow {flow_id}",
            nav="runs",
            flow_id=flow_id,
            graph=graph,
            root=root,
            rows=views.run_rows(runs, datetime.now(UTC)),
        )

    async def timeline(self, request: Request) -> Response:
        q = request.query_params
        now = datetime.now(UTC)
        try:
            hours = float(q.get("hours", "24"))
            end = datetime.fromisoformat(q["end"]) if q.get("end") else now
        except ValueError as exc:
            raise HTTPException(400, f"bad range: {exc}") from exc
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        hours = min(max(hours, 1 / 60), 24 * 7)
        start = end - timedelta(hours=hours)
        # Runs queued up to an hour before the window may still reach into it.
        runs = await self.api.runs(
            None, limit=TIMELINE_RUNS, state=None, queued_since=start - LOOKBACK
        )
        running = await self.api.runs(None, limit=1000, state=RunState.RUNNING)
        seen = {r.run_id for r in runs}
        drawn = runs + [r for r in running if r.run_id not in seen]
        jobs = await self.api.list_jobs()
        slots = {}
        for j in jobs:
            if j["next_run"] is not None:
                # A slot due this instant has its run on the way: not missed yet.
                slots[j["job_id"]] = await self.api.slots(
                    j["job_id"], start, min(end, now - SLOT_GRACE), limit=TIMELINE_SLOTS
                )
        tl = await anyio.to_thread.run_sync(
            functools.partial(
                views.timeline,
                drawn,
                slots,
                [j["job_id"] for j in jobs],
                start=start,
                end=end,
                now=now,
            )
        )
        lanes = await anyio.to_thread.run_sync(views.timeline_svg, tl)
        return await self._page(
            "timeline.html",
            title="Timeline",
            nav="timeline",
            tl=tl,
            lanes=lanes,
            hours=hours,
            end=end,
            capped=len(runs) >= TIMELINE_RUNS,
        )

    async def login(self, request: Request) -> Response:
        return await self._page("login.html", title="Token", nav="")

    async def states_css(self, request: Request) -> Response:
        return Response(
            views.states_css(), media_type="text/css", headers={"cache-control": "max-age=3600"}
        )

    async def not_found(self, request: Request, exc: Exception) -> Response:
        detail = getattr(exc, "detail", "not found")
        return await self._page("error.html", 404, title="Not found", nav="", message=detail)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("dashboard: %s failed: %r", request.url.path, exc)
        return await self._page(
            "error.html",
            500,
            title="Error",
            nav="",
            message="the daemon could not answer this page; see its log",
        )

    # --- logs and live streams -----------------------------------------------------------

    async def log(self, request: Request) -> Response:
        """The whole log as text (for saving or grep), when logs are visible."""
        run = await self._call(self.api.get_run(request.path_params["run_id"]))
        if not self.logs_visible:
            return PlainTextResponse(_NO_LOGS, 403)
        path = self.api.log_path(run)
        data, _ = await anyio.to_thread.run_sync(_read, path, 0, self.config.log_max_bytes)
        return Response(data, media_type="text/plain; charset=utf-8")

    async def run_events(self, request: Request) -> Response:
        """``run`` (the run's JSON) on every change, ``log`` (text) as the log grows, then
        ``end`` once the run has finished and its log is read to the end."""
        run = await self._call(self.api.get_run(request.path_params["run_id"]))
        return self._stream(self._follow(run))

    async def events(self, request: Request) -> Response:
        """``run`` for every run that changes state, daemon-wide (the jobs and runs pages)."""
        return self._stream(self._all_runs())

    def _stream(self, body: AsyncIterator[str]) -> StreamingResponse:
        async def until_closed() -> AsyncIterator[str]:
            with anyio.CancelScope() as scope:
                self._streams.add(scope)
                try:
                    async for chunk in body:
                        yield chunk
                finally:
                    self._streams.discard(scope)

        return StreamingResponse(
            until_closed(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def _all_runs(self) -> AsyncIterator[str]:
        async with self.api.subscribe() as events:
            yield "retry: 2000\n\n"
            while True:
                with anyio.move_on_after(HEARTBEAT) as idle:
                    try:
                        run = await events.receive()
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        return  # too slow: dropped; the browser reconnects
                yield ": idle\n\n" if idle.cancelled_caught else _sse("run", run.to_json())

    async def _follow(self, run: RunRecord) -> AsyncIterator[str]:
        offset = 0
        path = self.api.log_path(run)
        async with self.api.subscribe() as events:
            fresh = await self.api.get_run(run.run_id)  # after subscribing: nothing missed
            run = fresh
            yield _sse("run", run.to_json())
            if not self.logs_visible:
                yield _sse("nolog", _NO_LOGS)
            live = True
            while True:
                finished = run.state.finished
                if self.logs_visible:
                    while True:
                        data, size = await anyio.to_thread.run_sync(_read, path, offset, LOG_CHUNK)
                        whole = finished and offset + len(data) >= size
                        used = len(data) if whole else utf8_complete(data)
                        if used == 0:
                            break
                        text = data[:used].decode("utf-8", errors="replace")
                        yield _sse("log", {"offset": offset, "text": text})
                        offset += used
                if finished:
                    yield _sse("end", run.to_json())
                    return
                changed: RunRecord | None = None
                with anyio.move_on_after(POLL if self.logs_visible or not live else math.inf):
                    if live:
                        try:
                            while changed is None:
                                e = await events.receive()
                                if e.run_id == run.run_id:
                                    changed = e
                        except (anyio.EndOfStream, anyio.ClosedResourceError):
                            live = False
                    else:
                        await anyio.sleep(POLL)
                if changed is None and not live:
                    changed = await self.api.get_run(run.run_id)
                if (
                    changed is not None
                    and changed != run
                    and _rank(changed.state) >= _rank(run.state)
                ):
                    run = changed
                    path = self.api.log_path(run)
                    yield _sse("run", run.to_json())

    # --- helpers --------------------------------------------------------------------------

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (JobNotFound, RunNotFound) as exc:
            raise HTTPException(404, str(exc)) from exc

    async def _needs(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        graph = await self.api.needs_graph()
        return (
            {j: list(g["needs"]) for j, g in graph.items()},
            {j: str(g["trigger_rule"]) for j, g in graph.items()},
        )

    async def _definition_graph(self, job_id: str) -> views.Graph | None:
        needs, rules = await self._needs()
        members = views.component(needs, job_id)
        if len(members) < 2:
            return None
        states: dict[str, tuple[str, int | None]] = {}
        for j in members:
            last = await self.api.latest_run(j) if j in needs else None
            if last is not None:
                states[j] = (str(last.state), last.run_id)
        return views.layout(members, needs, rules, states)


_NO_LOGS = (
    "Logs are shown only to those who may read them: this dashboard listens on a TCP "
    "port without a token, open to every local user. Set [http] token_file, or listen "
    "on a unix socket (docs/dashboard.md)."
)


def _states() -> list[RunState]:
    return list(RunState)


def _rank(state: RunState) -> int:
    return {RunState.QUEUED: 0, RunState.RUNNING: 1}.get(state, 2)


def _flow_states(runs: list[RunRecord]) -> Mapping[str, tuple[str, int | None]]:
    """Each job's state in the flow: its runs aggregated (a matrix job has one a cell), the
    newest unfinished one while any is unfinished."""
    by_job: dict[str, list[RunRecord]] = {}
    for r in sorted(runs, key=lambda r: r.run_id):
        by_job.setdefault(r.job_id, []).append(r)
    out: dict[str, tuple[str, int | None]] = {}
    for job, rs in by_job.items():
        state = aggregate(r.state for r in rs)
        newest = rs[-1]
        if state is None:
            unfinished = [r for r in rs if not r.state.finished]
            out[job] = (str(unfinished[-1].state), unfinished[-1].run_id)
        else:
            out[job] = (str(state), newest.run_id)
    return out
