"""Flows: which downstream jobs of a finished run start, are skipped or upstream_failed,
decided from the journal with the pure rules of ``jobd.flows.rules``, and what ``needs.*`` a
run sees."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.flows.rules import FlowState, aggregate
from jobd.journal.abc import Journal, RunRecord
from jobd.logs import run_end
from jobd.supervisor.clock import Clock
from jobd.supervisor.decisions import Decisions
from jobd.supervisor.events import Trigger
from jobd.supervisor.hooks import event_for
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.loaded import Loaded
from jobd.supervisor.runner import FollowUps, result_word

log = logging.getLogger("jobd.flows")


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowDeps:
    loaded: Loaded
    journal: Journal  # reads: a flow is decided from the journal alone
    ledger: Ledger
    clock: Clock
    decisions: Decisions
    submit: Callable[[Trigger], Awaitable[RunRecord]]
    # upstream_failed fires on_failure: its hook runs, journaled with it, then queued
    follow_ups: FollowUps = field(default=lambda run, event, facts: [])
    admit: Callable[[list[RunRecord]], None] = field(default=lambda runs: None)


class FlowEngine:
    def __init__(self, deps: FlowDeps) -> None:
        self.deps = deps
        self._lock = anyio.Lock()

    async def advance(self, flow_id: str) -> None:
        """Start or skip the flow's downstream jobs whose needs have finished. Decided from
        the journal alone, under one lock, so it holds after a restart and never starts a
        job twice in one flow."""
        d = self.deps
        async with self._lock:
            runs = await d.journal.list_runs(flow_id=flow_id, limit=None)
            root = next((r for r in runs if str(r.run_id) == flow_id), None)
            jobs = d.loaded.jobs
            if root is None or root.job_id not in jobs:
                return
            members = {r.job_id for r in runs}
            outside: dict[str, RunState | None] = {}
            for job in jobs.values():
                for need in job.needs:
                    if need not in members and need not in outside:
                        last = await d.journal.latest_finished(need)
                        outside[need] = last.state if last else None
            try:
                state = FlowState.from_jobs(
                    jobs,
                    root.job_id,
                    runs=[(r.job_id, r.state) for r in sorted(runs, key=lambda r: r.run_id)],
                    outside=outside,
                )
            except ValueError as exc:  # the needs graph changed under the flow
                log.error("flow %s: %s", flow_id, exc)
                return
            decision = state.decide()
            now = d.clock.now()
            skipped = [
                RunRecord(
                    run_id=d.ledger.new_run_id(),
                    job_id=j,
                    trigger=TriggerKind.NEEDS,
                    state=state,
                    queued_at=now,
                    finished_at=now,
                    flow_id=flow_id,
                    message=decision.reasons.get(j),
                )
                for j, state in decision.not_run()
            ]
            if skipped:
                # upstream_failed counts as a failure: its on_failure hooks share the commit
                extra = [h for r in skipped for h in d.follow_ups(r, event_for(r.state), None)]
                await d.ledger.write([*skipped, *extra])
                for r in skipped:
                    log.log(*run_end(r))
                    d.decisions.note(r.job_id, f"flow {flow_id}: {r.state} ({r.message})")
                d.admit(extra)
            for j in decision.run:
                d.decisions.note(j, f"flow {flow_id}: needs met ({decision.reasons.get(j, '')})")
                await d.submit(Trigger(job_id=j, kind=TriggerKind.NEEDS, flow_id=flow_id))

    async def resume(self) -> None:
        """After a restart, move on every recent flow that was cut off mid-way."""
        d = self.deps
        recent = await d.journal.list_runs(limit=2000)
        for flow_id in dict.fromkeys(r.flow_id for r in recent if r.flow_id is not None):
            await self.advance(flow_id)

    async def needs_context(self, run: RunRecord) -> dict[str, Any]:
        """``needs.<id>``: ``result`` and ``outputs`` of each need's run in this flow (else its
        latest finished run); for a matrix need, ``outputs`` merges its cells in run order
        and ``cells`` keeps every cell's own."""
        d = self.deps
        job = d.loaded.jobs.get(run.job_id)
        if job is None or not job.needs:
            return {}
        out: dict[str, Any] = {}
        for need in job.needs:
            runs: list[RunRecord] = []
            if run.flow_id is not None:
                runs = await d.journal.list_runs(job_id=need, flow_id=run.flow_id, limit=None)
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
                out[need]["cells"] = [
                    {
                        "matrix": dict(r.matrix or {}),
                        "result": result_word(r.state),
                        "outputs": dict(r.outputs),
                    }
                    for r in runs
                ]
        return out
