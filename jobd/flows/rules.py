"""Trigger rules and the flow tracker: pure decisions over run states, no I/O, no clock.

The rules are Airflow's (``airflow/ti_deps/deps/trigger_rule_dep.py``, as its scheduler runs
them, with ``flag_upstream_failed``). A need's run state counts as one of four results:

- success: ``succeeded``
- failed: ``failed``, ``timed_out`` and ``cancelled`` (Airflow marks a task that was killed from
  outside as failed, and so do we)
- upstream_failed: ``upstream_failed`` (the need itself never ran because one of its needs
  failed)
- skipped: ``skipped``

``queued``/``running`` (or ``None``) is pending. A rule is decided as soon as its outcome is
certain, as Airflow does: ``all_success`` with one need failed gives UPSTREAM_FAILED at once,
even while a sibling still runs. A job that cannot run is recorded ``upstream_failed`` when a
failure upstream is the reason, else ``skipped``; its own downstream sees that state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from jobd._enums import RunState, TriggerRule
from jobd.flows.graph import downstream, topological_order

if TYPE_CHECKING:
    from jobd.config.model import JobDef


class Verdict(StrEnum):
    RUN = "run"
    SKIP = "skip"  # recorded as a ``skipped`` run
    UPSTREAM_FAILED = "upstream_failed"  # recorded as an ``upstream_failed`` run
    WAIT = "wait"

    @property
    def state(self) -> RunState | None:
        """The run state a job given this verdict is recorded with (None: run or wait)."""
        return {
            Verdict.SKIP: RunState.SKIPPED,
            Verdict.UPSTREAM_FAILED: RunState.UPSTREAM_FAILED,
        }.get(self)


class Result(StrEnum):
    """What a finished run counts as for trigger rules."""

    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"


_RESULT = {
    RunState.SUCCEEDED: Result.SUCCESS,
    RunState.FAILED: Result.FAILED,
    RunState.TIMED_OUT: Result.FAILED,
    RunState.CANCELLED: Result.FAILED,
    RunState.UPSTREAM_FAILED: Result.UPSTREAM_FAILED,
    RunState.SKIPPED: Result.SKIPPED,
}


def result_of(state: RunState | None) -> Result | None:
    """The trigger-rule result of a run state; None while it has not finished."""
    return None if state is None else _RESULT.get(state)


def judge(rule: TriggerRule, results: Mapping[str, RunState | None]) -> Verdict:
    """The verdict for a downstream job whose needs stand at ``results`` (need → its finished
    state, or None while pending or running). A job without needs always runs.

    WAIT only while the outcome still depends on a pending need."""
    if not results:
        return Verdict.RUN
    counts = dict.fromkeys(Result, 0)
    pending = 0
    for state in results.values():
        r = result_of(state)
        if r is None:
            pending += 1
        else:
            counts[r] += 1
    success, skipped = counts[Result.SUCCESS], counts[Result.SKIPPED]
    failures = counts[Result.FAILED] + counts[Result.UPSTREAM_FAILED]
    verdict: Verdict
    match rule:
        case TriggerRule.ALL_SUCCESS:
            verdict = (
                Verdict.UPSTREAM_FAILED if failures else Verdict.SKIP if skipped else Verdict.RUN
            )
        case TriggerRule.ALL_FAILED:
            verdict = Verdict.SKIP if success or skipped else Verdict.RUN
        case TriggerRule.ALL_DONE:
            verdict = Verdict.RUN
        case TriggerRule.ONE_SUCCESS:
            if success:
                return Verdict.RUN
            verdict = Verdict.SKIP if skipped == len(results) else Verdict.UPSTREAM_FAILED
        case TriggerRule.ONE_FAILED:
            if failures:
                return Verdict.RUN
            verdict = Verdict.SKIP
        case TriggerRule.NONE_FAILED:
            verdict = Verdict.UPSTREAM_FAILED if failures else Verdict.RUN
        case TriggerRule.NONE_SKIPPED:
            verdict = Verdict.SKIP if skipped else Verdict.RUN
    # A negative verdict that no pending need can change is final now; a positive one, and a
    # negative one that still depends on the pending needs, waits for them.
    if pending and (verdict is Verdict.RUN or rule in _DECIDED_WHEN_ALL_DONE):
        return Verdict.WAIT
    return verdict


# Rules whose negative verdict Airflow gives only once every need has finished.
_DECIDED_WHEN_ALL_DONE = frozenset(
    {TriggerRule.ONE_SUCCESS, TriggerRule.ONE_FAILED, TriggerRule.ALL_DONE}
)


def explain(rule: TriggerRule, results: Mapping[str, RunState | None]) -> str:
    """A line for people: ``trigger_rule all_success: extract failed, load succeeded``."""
    parts = [
        f"{need} {state if state is not None else 'pending'}" for need, state in results.items()
    ]
    return f"trigger_rule {rule}: " + (", ".join(parts) if parts else "no needs")


_SEVERITY = (
    RunState.FAILED,
    RunState.TIMED_OUT,
    RunState.CANCELLED,
    RunState.UPSTREAM_FAILED,
    RunState.SUCCEEDED,
    RunState.SKIPPED,
)


def aggregate(states: Iterable[RunState]) -> RunState | None:
    """One state for all runs of one job in a flow (the cells of a matrix job): None while
    any is unfinished or there is none; else the worst (failed, timed_out, cancelled,
    upstream_failed), else
    succeeded when any succeeded, else skipped."""
    seen = set()
    for s in states:
        if not s.finished:
            return None
        seen.add(s)
    for s in _SEVERITY:
        if s in seen:
            return s
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowDecision:
    """What to do now: jobs to start, jobs to record as skipped and as upstream_failed (each
    with the reason)."""

    run: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    upstream_failed: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.run or self.skip or self.upstream_failed)

    def not_run(self) -> tuple[tuple[str, RunState], ...]:
        """The jobs recorded without running, each with its state, in dependency order as
        decided (skips first)."""
        return (
            *((j, RunState.SKIPPED) for j in self.skip),
            *((j, RunState.UPSTREAM_FAILED) for j in self.upstream_failed),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowState:
    """One flow: its root, its members and the states of their runs so far.

    Build it from data (the journal's runs of the flow, after a restart too) with
    :meth:`build`; :meth:`decide` tells which downstream jobs to start or skip now. A member
    with any run in the flow is never decided again, so each job runs at most once per flow.
    """

    root: str
    order: tuple[str, ...]  # the members, root first, each after the members it needs
    needs: Mapping[str, tuple[str, ...]]  # of the members
    rules: Mapping[str, TriggerRule]
    runs: Mapping[str, tuple[RunState, ...]]  # member -> states of its runs in this flow
    outside: Mapping[str, RunState | None]  # needs outside the flow -> latest finished state

    @classmethod
    def build(
        cls,
        *,
        needs: Mapping[str, Sequence[str]],
        root: str,
        rules: Mapping[str, TriggerRule] | None = None,
        runs: Iterable[tuple[str, RunState]] = (),
        outside: Mapping[str, RunState | None] | None = None,
    ) -> FlowState:
        """``needs``: job → the jobs it needs, for the whole job set; ``rules``: job → its
        trigger rule (default all_success); ``runs``: ``(job_id, state)`` of each run of the
        flow, the latest state of each run (a run that will be retried is not finished);
        runs of jobs no longer in the flow are ignored; ``outside``: for needs outside the
        flow, the state of their latest finished run (missing or None: never ran, counted as
        skipped)."""
        members = downstream(needs, root)
        order = topological_order({j: tuple(needs.get(j, ())) for j in members})
        per_job: dict[str, list[RunState]] = {}
        for job, state in runs:
            if job in members:
                per_job.setdefault(job, []).append(RunState(state))
        return cls(
            root=root,
            order=tuple(order),
            needs={j: tuple(dict.fromkeys(needs.get(j, ()))) for j in order},
            rules={j: TriggerRule((rules or {}).get(j, TriggerRule.ALL_SUCCESS)) for j in order},
            runs={j: tuple(s) for j, s in per_job.items()},
            outside=dict(outside or {}),
        )

    @classmethod
    def from_jobs(
        cls,
        jobs: Mapping[str, JobDef],
        root: str,
        runs: Iterable[tuple[str, RunState]] = (),
        outside: Mapping[str, RunState | None] | None = None,
    ) -> FlowState:
        """:meth:`build` from the loaded job definitions."""
        return cls.build(
            needs={j.id: j.needs for j in jobs.values()},
            root=root,
            rules={j.id: j.trigger_rule for j in jobs.values()},
            runs=runs,
            outside=outside,
        )

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self.order)

    def result(self, job: str) -> RunState | None:
        """A member's state once all its runs in the flow have finished, else None; for a job
        outside the flow, its latest finished state (skipped when it never ran)."""
        if job in self.needs:
            return aggregate(self.runs.get(job, ()))
        state = self.outside.get(job)
        return state if state is not None and state.finished else RunState.SKIPPED

    def inputs(self, job: str) -> dict[str, RunState | None]:
        """What ``job``'s rule is judged on now: each need and its result (None: pending)."""
        return {need: self.result(need) for need in self.needs[job]}

    @property
    def pending(self) -> tuple[str, ...]:
        """Members that have not finished (including those not decided yet), in order."""
        return tuple(j for j in self.order if self.result(j) is None)

    @property
    def complete(self) -> bool:
        """Every member has finished: run to its end, or been skipped or marked
        upstream_failed."""
        return not self.pending

    def decide(self) -> FlowDecision:
        """The members to start, skip or mark upstream_failed now, in dependency order. These
        cascade within one call: a job whose needs were just skipped (or marked
        upstream_failed) is judged on that at once."""
        effective: dict[str, RunState | None] = {}
        run: list[str] = []
        skip: list[str] = []
        upstream_failed: list[str] = []
        reasons: dict[str, str] = {}
        for job in self.order:
            if job == self.root or job in self.runs:
                effective[job] = self.result(job)
                continue
            inputs = {
                need: effective[need] if need in effective else self.result(need)
                for need in self.needs[job]
            }
            verdict = judge(self.rules[job], inputs)
            if verdict is Verdict.RUN:
                run.append(job)
                reasons[job] = explain(self.rules[job], inputs)
                effective[job] = None
            elif (state := verdict.state) is not None:
                (skip if state is RunState.SKIPPED else upstream_failed).append(job)
                reasons[job] = explain(self.rules[job], inputs)
                effective[job] = state
            else:
                effective[job] = None
        return FlowDecision(
            run=tuple(run),
            skip=tuple(skip),
            upstream_failed=tuple(upstream_failed),
            reasons=reasons,
        )

    def apply(self, decision: FlowDecision) -> FlowState:
        """The state once the decision is carried out: started jobs queued, the others
        recorded."""
        runs = dict(self.runs)
        for job in decision.run:
            runs[job] = (*runs.get(job, ()), RunState.QUEUED)
        for job, state in decision.not_run():
            runs[job] = (*runs.get(job, ()), state)
        return replace(self, runs=runs)

    def finish(self, job: str, state: RunState) -> FlowState:
        """The state once ``job``'s first unfinished run (or a new run, if none) ends in
        ``state``."""
        states = list(self.runs.get(job, ()))
        for i, s in enumerate(states):
            if not s.finished:
                states[i] = state
                break
        else:
            states.append(state)
        return replace(self, runs={**self.runs, job: tuple(states)})
