"""The daemon's metrics in Prometheus text format (``prometheus_client``), and its health.

Each daemon has a registry of its own (never the process-global one), so tests and several
daemons in one process do not collide. ``render_metrics()`` gives the text that ``/metrics`` and
``jobctl metrics`` serve; ``healthy()`` is what ``/healthz`` answers. docs/metrics.md lists
every metric.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime

import anyio
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from jobd import __version__
from jobd._enums import RunState
from jobd.journal.abc import RunRecord
from jobd.loopstall import STALL_THRESHOLD, StallMeter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOP_TICK = 1.0  # seconds between the loop monitor's wake-ups (any stall delays the next one)
UNRESPONSIVE_AFTER = 5.0  # a turn of the loop this long (or no tick for this long): stuck
LAG_WINDOW = 60.0  # seconds a stall shows as the loop's lag

# The *_created series double the text and say only when the daemon started (process-wide).
disable_created_metrics()  # type: ignore[no-untyped-call]

_RUN_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """Counters and gauges the daemon feeds; gauges of live sizes read callbacks at scrape."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        r = self.registry = CollectorRegistry()
        self.runs_started = Counter(
            "jobd_runs_started",
            "Runs that started (each run once, whatever its attempts), by job.",
            ["job"],
            registry=r,
        )
        self.runs_finished = Counter(
            "jobd_runs_finished",
            "Runs that finished, by job and state.",
            ["job", "state"],
            registry=r,
        )
        self.run_duration = Histogram(
            "jobd_run_duration_seconds",
            "Time from a run's start to its end, across its retries, by job.",
            ["job"],
            buckets=_RUN_BUCKETS,
            registry=r,
        )
        self.last_success = Gauge(
            "jobd_last_success_timestamp_seconds",
            "When each job last succeeded (Unix time).",
            ["job"],
            registry=r,
        )
        self.slots_missed = Counter(
            "jobd_slots_missed",
            "Time slots that were not run, by job "
            "and reason (start_deadline, catchup_none, limit).",
            ["job", "reason"],
            registry=r,
        )
        self.slots_folded = Counter(
            "jobd_slots_folded",
            "Time slots folded into another run of the job (catchup = latest, or overlap = queue).",
            ["job"],
            registry=r,
        )
        self.hook_runs = Counter(
            "jobd_hook_runs",
            "Hook runs queued, by hook job and event.",
            ["job", "event"],
            registry=r,
        )
        self.stale = Gauge(
            "jobd_job_stale",
            "1 when the job has not succeeded within its "
            "stale_after, else 0 (jobs with stale_after only).",
            ["job"],
            registry=r,
        )
        self.journal_commit = Histogram(
            "jobd_journal_commit_seconds",
            "Time of each journal commit (fsync included).",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.journal_errors = Counter(
            "jobd_journal_commit_errors", "Journal commits that failed.", registry=r
        )
        self.loop_stall = Gauge(
            "jobd_event_loop_stall_max_seconds",
            "The longest event-loop stall seen since the daemon was ready.",
            registry=r,
        )
        self.loop_stalls = Counter(
            "jobd_event_loop_stalls",
            f"Turns of the event loop longer than {STALL_THRESHOLD * 1000:g} ms.",
            registry=r,
        )
        self.stall_meter = StallMeter(on_stall=self._stalled)
        self.loop_stall.set_function(self.stall_max)  # read at each scrape
        self.loop_lag = Gauge(
            "jobd_event_loop_lag_seconds",
            f"The latest event-loop stall within {LAG_WINDOW:g} s (0 if none).",
            registry=r,
        )
        self.loop_lag.set_function(self._lag)
        self.queue_depth = Gauge("jobd_queue_depth", "Runs queued, waiting for a slot.", registry=r)
        self.running = Gauge("jobd_runs_running", "Runs running now.", registry=r)
        self.bus_depth = Gauge(
            "jobd_bus_depth", "Triggers on the bus, not yet journaled.", registry=r
        )
        self.jobs_loaded = Gauge("jobd_jobs_loaded", "Jobs loaded.", registry=r)
        self.invalid_files = Gauge("jobd_invalid_job_files", "Job files rejected.", registry=r)
        Gauge("jobd_build_info", "The daemon's version.", ["version"], registry=r).labels(
            version=__version__
        ).set(1)
        self._seen: dict[int, RunState] = {}
        self._finished: dict[int, None] = {}
        self._stall_max = 0.0
        self._last_tick = monotonic()
        self._sampled_lag = 0.0
        self._last_stall = (-math.inf, 0.0)  # (when it ended, seconds) by the turn measure
        self._journal_ok = True

    # --- feeding ----------------------------------------------------------------------

    def bind(
        self,
        *,
        queue_depth: Callable[[], int],
        running: Callable[[], int],
        bus_depth: Callable[[], int],
        jobs_loaded: Callable[[], int],
        invalid_files: Callable[[], int],
    ) -> None:
        """Gauges read at each scrape from the daemon's live state."""
        self.queue_depth.set_function(queue_depth)
        self.running.set_function(running)
        self.bus_depth.set_function(bus_depth)
        self.jobs_loaded.set_function(jobs_loaded)
        self.invalid_files.set_function(invalid_files)

    def observe_run(self, run: RunRecord) -> None:
        """Every run change the daemon publishes; counts each start and each end once."""
        before = self._seen.get(run.run_id)
        if run.state is RunState.RUNNING and before is not RunState.RUNNING:
            self.runs_started.labels(job=run.job_id).inc()
        if not run.state.finished:
            self._seen[run.run_id] = run.state
            return
        if run.run_id in self._finished:
            return  # a finished run is published once; guard a repeat all the same
        self._seen.pop(run.run_id, None)
        self._finished[run.run_id] = None
        if len(self._finished) > 4096:
            del self._finished[next(iter(self._finished))]
        self.runs_finished.labels(job=run.job_id, state=str(run.state)).inc()
        if run.started_at is not None and run.finished_at is not None:
            self.run_duration.labels(job=run.job_id).observe(
                max(0.0, (run.finished_at - run.started_at).total_seconds())
            )
        if run.state is RunState.SUCCEEDED and run.finished_at is not None:
            self.set_last_success(run.job_id, run.finished_at)

    def set_last_success(self, job_id: str, when: datetime) -> None:
        self.last_success.labels(job=job_id).set(when.timestamp())

    def commit_observed(self, seconds: float, ok: bool) -> None:
        """The journal's writer after each commit."""
        self.journal_commit.observe(seconds)
        if not ok:
            self.journal_errors.inc()
        self._journal_ok = ok

    # --- the loop monitor -------------------------------------------------------------

    async def loop_monitor(self, interval: float = LOOP_TICK) -> None:
        """Where the turns are not measured (before READY, or not an asyncio selector loop):
        sleep ``interval`` over and over; how late each wake-up is, is how long the loop was
        blocked (a stall). While they are measured, the monitor does not wake at all: the
        turns tell stalls, lag and health, and an idle daemon stays asleep."""
        while True:
            if self.stall_meter.installed:
                await self.stall_meter.until_uninstalled()
                self._last_tick = self._monotonic()
                continue
            before = self._monotonic()
            await anyio.sleep(interval)
            self._tick(self._monotonic() - before - interval)

    def _tick(self, lag: float) -> None:
        lag = max(0.0, lag)
        self._last_tick = self._monotonic()
        self._sampled_lag = lag
        self._stall_max = max(self._stall_max, lag)

    def _stalled(self, seconds: float) -> None:
        self.loop_stalls.inc()
        self._last_stall = (self._monotonic(), seconds)

    def _lag(self) -> float:
        if not self.stall_meter.installed:
            return self._sampled_lag
        at, seconds = self._last_stall
        return seconds if self._monotonic() - at < LAG_WINDOW else 0.0

    def _loop_ok(self) -> bool:
        now = self._monotonic()
        if not self.stall_meter.installed:
            return now - self._last_tick < UNRESPONSIVE_AFTER
        at, seconds = self._last_stall
        return seconds < UNRESPONSIVE_AFTER or now - at >= UNRESPONSIVE_AFTER

    def stall_max(self) -> float:
        """The longest stall: turn by turn while the meter runs; else the monitor's sampled
        lag, which also counts time the system did not run the process at all."""
        if self.stall_meter.installed:
            return self.stall_meter.longest
        return max(self._stall_max, self.stall_meter.longest)

    def loop_status(self) -> dict[str, float | int]:
        """The loop's part of ``status``."""
        return {
            "loop_stall_max_seconds": round(self.stall_max(), 6),
            "loop_stalls": self.stall_meter.stalls,
        }

    # --- serving ----------------------------------------------------------------------

    def render_metrics(self) -> bytes:
        """The Prometheus text exposition (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def healthy(self) -> bool:
        """The loop is responsive (no turn of it ran ``UNRESPONSIVE_AFTER`` within as long;
        unmeasured: its monitor ticked lately) and the journal's last commit succeeded."""
        return self._journal_ok and self._loop_ok()

    def health(self) -> dict[str, bool]:
        return {"loop": self._loop_ok(), "journal": self._journal_ok}
