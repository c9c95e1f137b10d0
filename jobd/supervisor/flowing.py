"""Flows: which downstream jobs of a finished run start, are skipped or upstream_failed,
decided from the journal with the pure rules of ``jobd.flows.rules``, and what ``needs.*`` a
run sees."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.flows.rules import FlowState, aggregate
from jobd.journal.abc import RunRecord
from jobd.supervisor.events import Trigger
from jobd.supervisor.runner import result_word

if TYPE_CHECKING:
    from jobd.supervisor.daemon import Daemon

log = logging.getLogger("jobd.flows")


class FlowEngine:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._lock = anyio.Lock()
        self._needed_for: object = None
        self._needed_cache: frozenset[str] = frozenset()

    @property
    def needed(self) -> frozenset[str]:
        """Ids of jobs that other jobs need: a trigger of one of them starts a flow."""
        d = self.daemon
        if self._needed_for is not d.jobset:
            self._needed_cache = frozenset(n for j in d.jobset.jobs.values() for n in j.needs)
            self._needed_for = d.jobset
        return self._needed_cache

    async def advance(self, flow_id: str) -> None:
        """Start or skip the flow's downstream jobs whose needs have finished. Decided from
        the journal alone, under one lock, so it holds after a restart and never starts a
        job twice in one flow."""
        d = self.daemon
        async with self._lock:
            runs = await d.journal.list_runs(flow_id=flow_id, limit=None)
            root = next((r for r in runs if str(r.run_id) == flow_id), None)
            if root is None or root.job_id not in d.jobset.jobs:
                return
            jobs = d.jobset.jobs
            members = {r.job_id for r in runs}
            outside: dict[str, RunState | None] = {}
            for job in jobs.values():
                for need in job.needs:
                    if need not in members and need not in outside:
                        last = await d.journal.latest_finished(need)
                        outside[need] = last.state if last else None
            try:
                state = FlowState.from_jobs(jobs, root.job_id,
                                            runs=[(r.job_id, r.state) for r in
                                                  sorted(runs, key=lambda r: r.run_id)],
                                            outside=outside)
            except ValueError as exc:  # the needs graph changed under the flow
                log.error("flow %s: %s", flow_id, exc)
                return
            decision = state.decide()
            now = d.clock.now()
            skipped = [RunRecord(run_id=d.journal.new_run_id(), job_id=j,
                                 trigger=TriggerKind.NEEDS, state=state,
                                 queued_at=now, finished_at=now, flow_id=flow_id,
                                 message=decision.reasons.get(j))
                       for j, state in decision.not_run()]
            if skipped:
                await d.journal.put_runs(skipped)
                for r in skipped:
                    d._publish(r)
                    d._decide(r.job_id, f"flow {flow_id}: {r.state} ({r.message})")
            for j in decision.run:
                d._decide(j, f"flow {flow_id}: needs met ({decision.reasons.get(j, '')})")
                await d.submit(Trigger(job_id=j, kind=TriggerKind.NEEDS, flow_id=flow_id))

    async def resume(self) -> None:
        """After a restart, move on every recent flow that was cut off mid-way."""
        d = self.daemon
        recent = await d.journal.list_runs(limit=2000)
        for flow_id in dict.fromkeys(r.flow_id for r in recent if r.flow_id is not None):
            await self.advance(flow_id)

    async def needs_context(self, run: RunRecord) -> dict[str, Any]:
        """``needs.<id>``: ``result`` and ``outputs`` of each need's run in this flow (else its
        latest finished run); for a matrix need, ``outputs`` merges its cells in run order
        and ``cells`` keeps every cell's own."""
        d = self.daemon
        job = d.jobset.jobs.get(run.job_id)
        if job is None or not job.needs:
            return {}
        out: dict[str, Any] = {}
        for need in job.needs:
            runs: list[RunRecord] = []
            if run.flow_id is not None:
                runs = await d.journal.list_runs(job_id=need, flow_id=run.flow_id,
                                                    limit=None)
            if not runs:
                last = await d.journal.latest_finished(need)
                runs = [last] if last else []
            runs.sort(key=lambda r: r.run_id)
            state = aggregate(r.state for r in runs) if runs else None
            merged: dict[str, str] = {}
            for r in runs:
                merged.update(r.outputs)
            out[need] = {"result": result_word(state) if state else None, "outputs": merged}
            if any(r.matrix is not None for r in runs):
                out[need]["cells"] = [{"matrix": dict(r.matrix or {}),
                                       "result": result_word(r.state),
                                       "outputs": dict(r.outputs)} for r in runs]
        return out
