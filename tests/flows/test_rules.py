"""Trigger rules (Airflow's meaning) and the flow tracker."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._enums import RunState, TriggerRule
from jobd.config.model import CommandAction, JobDef, JobSource
from jobd.flows import FlowState, Verdict, aggregate, explain, judge

S, F, K = RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED
UF = RunState.UPSTREAM_FAILED
LETTER = {S: "s", F: "f", K: "k"}

# For D in the diamond (B and C need A, D needs B and C): the (B, C) results for which D runs,
# and for which it is marked upstream_failed (else it is skipped), written out by hand from
# Airflow's definitions (s succeeded, f failed, k skipped).
RUNS_ON = {
    TriggerRule.ALL_SUCCESS: {"ss"},
    TriggerRule.ALL_FAILED: {"ff"},
    TriggerRule.ALL_DONE: {"ss", "sf", "sk", "fs", "ff", "fk", "ks", "kf", "kk"},
    TriggerRule.ONE_SUCCESS: {"ss", "sf", "sk", "fs", "ks"},
    TriggerRule.ONE_FAILED: {"sf", "fs", "ff", "fk", "kf"},
    TriggerRule.NONE_FAILED: {"ss", "sk", "ks", "kk"},
    TriggerRule.NONE_SKIPPED: {"ss", "sf", "fs", "ff"},
}
UPSTREAM_FAILED_ON = {
    TriggerRule.ALL_SUCCESS: {"sf", "fs", "ff", "fk", "kf"},
    TriggerRule.ALL_FAILED: set(),
    TriggerRule.ALL_DONE: set(),
    TriggerRule.ONE_SUCCESS: {"ff", "fk", "kf"},
    TriggerRule.ONE_FAILED: set(),
    TriggerRule.NONE_FAILED: {"sf", "fs", "ff", "fk", "kf"},
    TriggerRule.NONE_SKIPPED: set(),
}
DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def diamond(rule: TriggerRule, *runs: tuple[str, RunState]) -> FlowState:
    return FlowState.build(needs=DIAMOND, root="a", rules={"d": rule}, runs=runs)


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize(("b", "c"), list(itertools.product([S, F, K], repeat=2)))
def test_diamond_every_rule_every_outcome(rule: TriggerRule, b: RunState, c: RunState) -> None:
    bc = LETTER[b] + LETTER[c]
    expected = (
        Verdict.RUN
        if bc in RUNS_ON[rule]
        else Verdict.UPSTREAM_FAILED
        if bc in UPSTREAM_FAILED_ON[rule]
        else Verdict.SKIP
    )
    assert judge(rule, {"b": b, "c": c}) is expected

    flow = diamond(rule, ("a", S), ("b", b), ("c", c))
    decision = flow.decide()
    assert (decision.run, decision.skip, decision.upstream_failed) == (
        (("d",), (), ())
        if expected is Verdict.RUN
        else ((), ("d",), ())
        if expected is Verdict.SKIP
        else ((), (), ("d",))
    )
    assert decision.reasons["d"] == f"trigger_rule {rule}: b {b}, c {c}"
    after = flow.apply(decision)
    assert not after.decide()  # never decided twice
    done = after.finish("d", S) if expected is Verdict.RUN else after
    assert done.complete


W, R, X = Verdict.WAIT, Verdict.RUN, Verdict.SKIP
# D's verdict while C still runs, for B = succeeded / failed / skipped / pending, by hand from
# Airflow: a rule is decided as soon as no result of C can change the outcome.
WHILE_C_RUNS = {
    TriggerRule.ALL_SUCCESS: (W, Verdict.UPSTREAM_FAILED, X, W),
    TriggerRule.ALL_FAILED: (X, W, X, W),
    TriggerRule.ALL_DONE: (W, W, W, W),
    TriggerRule.ONE_SUCCESS: (R, W, W, W),
    TriggerRule.ONE_FAILED: (W, R, W, W),
    TriggerRule.NONE_FAILED: (W, Verdict.UPSTREAM_FAILED, W, W),
    TriggerRule.NONE_SKIPPED: (W, W, X, W),
}


@pytest.mark.parametrize("rule", list(TriggerRule))
@pytest.mark.parametrize("i", range(4))
def test_diamond_with_c_still_running(rule: TriggerRule, i: int) -> None:
    b = (S, F, K, None)[i]
    expected = WHILE_C_RUNS[rule][i]
    assert judge(rule, {"b": b, "c": None}) is expected
    runs = [("a", S), ("b", b or RunState.RUNNING), ("c", RunState.RUNNING)]
    decision = diamond(rule, *runs).decide()
    assert decision.run == (("d",) if expected is R else ())
    assert decision.skip == (("d",) if expected is X else ())
    assert decision.upstream_failed == (("d",) if expected is Verdict.UPSTREAM_FAILED else ())


@pytest.mark.parametrize("state", [RunState.FAILED, RunState.TIMED_OUT, RunState.CANCELLED])
def test_failed_timed_out_and_cancelled_count_as_failed(state: RunState) -> None:
    assert judge(TriggerRule.ONE_FAILED, {"x": state}) is Verdict.RUN
    assert judge(TriggerRule.ALL_FAILED, {"x": state}) is Verdict.RUN
    assert judge(TriggerRule.NONE_FAILED, {"x": state}) is Verdict.UPSTREAM_FAILED


def test_upstream_failed_counts_as_a_failure_and_is_recorded() -> None:
    assert judge(TriggerRule.ONE_FAILED, {"x": UF}) is Verdict.RUN
    assert judge(TriggerRule.ALL_FAILED, {"x": UF, "y": F}) is Verdict.RUN
    assert judge(TriggerRule.ALL_SUCCESS, {"x": UF, "y": None}) is Verdict.UPSTREAM_FAILED
    assert judge(TriggerRule.NONE_SKIPPED, {"x": UF}) is Verdict.RUN
    assert judge(TriggerRule.ONE_SUCCESS, {"x": UF, "y": K}) is Verdict.UPSTREAM_FAILED
    assert judge(TriggerRule.ONE_SUCCESS, {"x": K, "y": K}) is Verdict.SKIP
    assert Verdict.UPSTREAM_FAILED.state is UF and Verdict.SKIP.state is K
    assert Verdict.RUN.state is None and Verdict.WAIT.state is None


def test_queued_and_running_are_pending() -> None:
    for state in (RunState.QUEUED, RunState.RUNNING, None):
        assert judge(TriggerRule.ALL_DONE, {"x": state}) is Verdict.WAIT


def test_no_needs_always_runs() -> None:
    for rule in TriggerRule:
        assert judge(rule, {}) is Verdict.RUN


def test_root_failure_propagates_upstream_failed() -> None:
    needs = {"a": (), "b": ("a",), "c": ("b",), "d": ("c",), "e": ("c",), "f": ("e",)}
    rules = {"d": TriggerRule.ALL_DONE, "e": TriggerRule.NONE_SKIPPED}
    flow = FlowState.build(needs=needs, root="a", rules=rules, runs=[("a", F)])
    decision = flow.decide()
    # b upstream_failed (all_success, a failed); c sees b upstream_failed: upstream_failed
    # too (Airflow's propagation); d runs once c is done, e runs (nothing was skipped), f
    # waits for e
    assert decision.upstream_failed == ("b", "c")
    assert decision.skip == ()
    assert decision.run == ("d", "e")
    assert "a failed" in decision.reasons["b"]
    assert decision.reasons["c"] == "trigger_rule all_success: b upstream_failed"
    flow = flow.apply(decision)
    assert flow.result("c") is UF
    assert flow.pending == ("d", "e", "f")


def test_skip_propagates_as_skip() -> None:
    needs = {"a": (), "b": ("a",), "c": ("b",)}
    flow = FlowState.build(needs=needs, root="a", runs=[("a", K)])
    decision = flow.decide()
    assert decision.skip == ("b", "c") and decision.upstream_failed == ()


def test_nothing_happens_while_the_root_runs() -> None:
    flow = FlowState.build(needs=DIAMOND, root="a", runs=[("a", RunState.RUNNING)])
    assert not flow.decide()
    assert flow.pending == ("a", "b", "c", "d")
    assert not flow.complete
    assert not FlowState.build(needs=DIAMOND, root="a").decide()


def test_step_by_step_and_rebuilt_after_a_restart() -> None:
    flow = FlowState.build(needs=DIAMOND, root="a", runs=[("a", S)])
    first = flow.decide()
    assert first.run == ("b", "c")
    flow = flow.apply(first).finish("b", S)
    assert not flow.decide()  # d waits for c
    # a restart: the journal holds a succeeded, b succeeded, c running
    rebuilt = FlowState.build(
        needs=DIAMOND, root="a", runs=[("a", S), ("b", S), ("c", RunState.RUNNING)]
    )
    assert not rebuilt.decide()
    rebuilt = rebuilt.finish("c", S)
    assert rebuilt.decide().run == ("d",)
    final = rebuilt.apply(rebuilt.decide()).finish("d", F)
    assert final.complete
    assert final.result("d") is F


def test_matrix_need_counts_once_all_cells_finish() -> None:
    runs = [("a", S), ("b", S), ("b", RunState.RUNNING), ("c", S)]
    flow = FlowState.build(needs=DIAMOND, root="a", runs=runs)
    assert flow.result("b") is None
    assert not flow.decide()
    runs[2] = ("b", F)
    flow = FlowState.build(needs=DIAMOND, root="a", runs=runs)
    assert flow.result("b") is F
    assert flow.decide().upstream_failed == ("d",)


def test_aggregate() -> None:
    assert aggregate([]) is None
    assert aggregate([S, RunState.QUEUED]) is None
    assert aggregate([S, K]) is S
    assert aggregate([K, K]) is K
    assert aggregate([S, RunState.CANCELLED, RunState.TIMED_OUT]) is RunState.TIMED_OUT
    assert aggregate([RunState.CANCELLED, F]) is F
    assert aggregate([UF]) is UF


def test_needs_outside_the_flow_count_with_their_latest_finished_run() -> None:
    needs = {"a": (), "x": (), "d": ("a", "x")}
    for outside, expected in (
        ({"x": S}, ("d",)),
        ({"x": F}, ()),
        ({}, ()),
        ({"x": None}, ()),
        ({"x": RunState.RUNNING}, ()),
    ):
        flow = FlowState.build(needs=needs, root="a", runs=[("a", S)], outside=outside)
        assert flow.decide().run == expected, outside
    flow = FlowState.build(needs=needs, root="a", runs=[("a", S)], outside={})
    assert flow.decide().reasons["d"] == "trigger_rule all_success: a succeeded, x skipped"
    assert flow.members == {"a", "d"}


def test_runs_of_jobs_outside_the_flow_are_ignored() -> None:
    flow = FlowState.build(needs=DIAMOND, root="b", runs=[("a", F), ("b", S), ("zz", F)])
    assert flow.members == {"b", "d"}
    assert flow.order == ("b", "d")
    # d's need c is outside this flow and never ran: counted as skipped
    assert flow.decide().skip == ("d",)


def test_explain() -> None:
    assert (
        explain(TriggerRule.ONE_SUCCESS, {"a": None, "b": S})
        == "trigger_rule one_success: a pending, b succeeded"
    )


def test_from_jobs_uses_the_definitions() -> None:
    src = JobSource(file=Path("jobs.toml"), line=1)

    def job(
        id_: str, needs: tuple[str, ...] = (), rule: TriggerRule = TriggerRule.ALL_SUCCESS
    ) -> JobDef:
        return JobDef(
            id=id_,
            source=src,
            action=CommandAction(command=("true",)),
            needs=needs,
            trigger_rule=rule,
        )

    jobs = {j.id: j for j in (job("a"), job("b", ("a",), TriggerRule.ONE_FAILED))}
    flow = FlowState.from_jobs(jobs, "a", runs=[("a", F)])
    assert flow.decide().run == ("b",)


@st.composite
def flows(
    draw: st.DrawFn,
) -> tuple[dict[str, tuple[str, ...]], dict[str, TriggerRule], dict[str, RunState]]:
    n = draw(st.integers(2, 8))
    names = [f"j{i}" for i in range(n)]
    needs: dict[str, tuple[str, ...]] = {names[0]: ()}
    for i in range(1, n):
        ups = draw(st.lists(st.sampled_from(names[:i]), min_size=1, max_size=3, unique=True))
        needs[names[i]] = tuple(ups)
    rules = {j: draw(st.sampled_from(list(TriggerRule))) for j in names}
    outcomes = {
        j: draw(st.sampled_from([S, F, RunState.TIMED_OUT, RunState.CANCELLED])) for j in names
    }
    return needs, rules, outcomes


@settings(max_examples=100, deadline=None)
@given(flows())
def test_any_flow_completes_and_decides_each_job_once(
    case: tuple[dict[str, tuple[str, ...]], dict[str, TriggerRule], dict[str, RunState]],
) -> None:
    needs, rules, outcomes = case
    flow = FlowState.build(needs=needs, root="j0", rules=rules, runs=[("j0", outcomes["j0"])])
    decided: list[str] = []
    running: list[str] = []
    while True:
        decision = flow.decide()
        flow = flow.apply(decision)
        for job in decision.run:
            assert judge(rules[job], flow.inputs(job)) is Verdict.RUN
        for job in decision.skip:
            assert judge(rules[job], flow.inputs(job)) is Verdict.SKIP
        for job in decision.upstream_failed:
            assert judge(rules[job], flow.inputs(job)) is Verdict.UPSTREAM_FAILED
        decided += [*decision.run, *decision.skip, *decision.upstream_failed]
        running += decision.run
        if not running:
            break
        job = running.pop(0)
        flow = flow.finish(job, outcomes[job])
    assert flow.complete
    assert len(decided) == len(set(decided))  # each job at most once
    assert set(decided) == flow.members - {"j0"}
