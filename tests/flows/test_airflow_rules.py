"""Trigger rules against Airflow itself.

Two suites, both with expected values that do not come from jobd's code:

- ``AIRFLOW_CASES``: the cases of Airflow's own tests of the rule dependency,
  ``tests/ti_deps/deps/test_trigger_rule_dep.py`` (apache/airflow, commit
  00c4d7589d3c19370699d6bd381a140535842e55; Apache License 2.0, © The Apache Software
  Foundation), transcribed for the seven rules jobd has.
- A truth table over every combination of one to three needs in success / failed / skipped /
  upstream_failed / running, for every rule, whose expected values come from ``airflow_dep``
  below: a line-by-line transcription of ``TriggerRuleDep._evaluate_direct_relatives`` in
  ``airflow/ti_deps/deps/trigger_rule_dep.py`` (apache/airflow, commit
  04503ab6b110f6192021872e9e44cda173449b91; Apache License 2.0), without setups, mapping and
  past-depends, which jobd does not have.

A third runs whole random flows (up to nine jobs, every rule, each job succeeding or failing)
through jobd's FlowState and through a simulation of Airflow's scheduler loop built on
``airflow_dep`` alone, finishing runs in the same order, and compares every job's final state.

Airflow's scheduler evaluates with ``flag_upstream_failed=True``: the dependency both says
whether the task may run and sets the task's state when it can no longer run. jobd's verdicts
map onto that: RUN = the dep passed; UPSTREAM_FAILED / SKIP = the state it set; WAIT = not
passed and no state set.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._enums import RunState, TriggerRule
from jobd.flows import FlowState, Verdict, judge

SUCCESS, FAILED, SKIPPED, UPSTREAM_FAILED, RUNNING = (
    RunState.SUCCEEDED,
    RunState.FAILED,
    RunState.SKIPPED,
    RunState.UPSTREAM_FAILED,
    RunState.RUNNING,
)


class Counts(NamedTuple):
    """Airflow's ``_UpstreamTIStates`` (without removed and setups) plus the upstream count."""

    success: int
    skipped: int
    failed: int
    upstream_failed: int
    done: int
    upstream: int


def airflow_dep(rule: str, c: Counts, flag_upstream_failed: bool = True) -> tuple[bool, str | None]:
    """(passed, the state the dep sets or None), transcribed from Airflow's
    ``_evaluate_direct_relatives``."""
    success, skipped, failed, upstream_failed = c.success, c.skipped, c.failed, c.upstream_failed
    done, upstream = c.done, c.upstream
    upstream_done = done >= upstream
    new_state = None
    if flag_upstream_failed:
        if rule == "all_success":
            if upstream_failed or failed:
                new_state = "upstream_failed"
            elif skipped:
                new_state = "skipped"
        elif rule == "all_failed":
            if success or skipped:
                new_state = "skipped"
        elif rule == "one_success":
            if upstream_done and done == skipped:
                new_state = "skipped"
            elif upstream_done and success <= 0:
                new_state = "upstream_failed"
        elif rule == "one_failed":
            if upstream_done and not (failed or upstream_failed):
                new_state = "skipped"
        elif rule == "none_failed":
            if upstream_failed or failed:
                new_state = "upstream_failed"
        elif rule == "none_skipped":  # noqa: SIM102 (as Airflow writes it)
            if skipped:
                new_state = "skipped"
    passed = True
    if rule == "one_success":
        if success <= 0:
            passed = False
    elif rule == "one_failed":
        if not failed and not upstream_failed:
            passed = False
    elif rule == "all_success":
        if upstream - success > 0:
            passed = False
    elif rule == "all_failed":
        if upstream - failed - upstream_failed > 0:
            passed = False
    elif rule == "all_done":
        if not upstream_done:
            passed = False
    elif rule == "none_failed":
        if upstream - success - skipped > 0:
            passed = False
    elif rule == "none_skipped":
        if not upstream_done or skipped > 0:
            passed = False
    else:
        raise AssertionError(rule)
    return passed, new_state


def counts_of(states: tuple[RunState, ...]) -> Counts:
    n = {s: states.count(s) for s in (SUCCESS, SKIPPED, FAILED, UPSTREAM_FAILED)}
    return Counts(
        success=n[SUCCESS],
        skipped=n[SKIPPED],
        failed=n[FAILED],
        upstream_failed=n[UPSTREAM_FAILED],
        done=sum(n.values()),
        upstream=len(states),
    )


def as_verdict(passed: bool, new_state: str | None) -> Verdict:
    if new_state == "upstream_failed":
        return Verdict.UPSTREAM_FAILED
    if new_state == "skipped":
        return Verdict.SKIP
    return Verdict.RUN if passed else Verdict.WAIT


def needs(states: tuple[RunState, ...]) -> dict[str, RunState | None]:
    return {f"n{i}": (None if s is RUNNING else s) for i, s in enumerate(states)}


COMBINATIONS = [
    combo
    for n in (1, 2, 3)
    for combo in itertools.product((SUCCESS, FAILED, SKIPPED, UPSTREAM_FAILED, RUNNING), repeat=n)
]


def test_the_table_covers_every_combination() -> None:
    assert len(COMBINATIONS) == 5 + 25 + 125
    assert len({tuple(sorted(c)) for c in COMBINATIONS}) == 5 + 15 + 35  # as multisets


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_truth_table_against_airflow(rule: TriggerRule) -> None:
    wrong = []
    for combo in COMBINATIONS:
        expected = as_verdict(*airflow_dep(str(rule), counts_of(combo)))
        got = judge(rule, needs(combo))
        if got is not expected:
            wrong.append(f"{'/'.join(combo)}: jobd {got}, Airflow {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_decided_as_soon_as_certain(rule: TriggerRule) -> None:
    """Never WAIT once every need has finished, nor while every way the pending needs can
    finish leads to the same negative verdict; and a negative verdict is given early only when
    no way they finish would let the job run (which state it gets is then Airflow's: the one
    that holds at that moment, as the table above checks)."""
    for combo in COMBINATIONS:
        verdict = judge(rule, needs(combo))
        outcomes = set()
        for fill in itertools.product(
            (SUCCESS, FAILED, SKIPPED, UPSTREAM_FAILED), repeat=combo.count(RUNNING)
        ):
            it = iter(fill)
            outcomes.add(judge(rule, needs(tuple(next(it) if s is RUNNING else s for s in combo))))
        if verdict is Verdict.WAIT:
            assert RUNNING in combo, combo
            assert len(outcomes) > 1 or outcomes == {Verdict.RUN}, combo
        elif verdict is not Verdict.RUN:
            assert Verdict.RUN not in outcomes, combo


class AirflowCase(NamedTuple):
    test: str  # the Airflow test it comes from
    rule: TriggerRule
    states: tuple[RunState, ...]
    flag_upstream_failed: bool
    passed: bool
    state: str | None  # the state Airflow's test expects the task to get; "-" when unchecked


def _st(
    success: int = 0,
    skipped: int = 0,
    failed: int = 0,
    upstream_failed: int = 0,
    unfinished: int = 0,
) -> tuple[RunState, ...]:
    return (
        (SUCCESS,) * success
        + (SKIPPED,) * skipped
        + (FAILED,) * failed
        + (UPSTREAM_FAILED,) * upstream_failed
        + (RUNNING,) * unfinished
    )


TR = TriggerRule
# Airflow's tests stub the counts; where a test gives counts without upstream tasks, the needs
# here are the counted ones, all finished. Cases for rules jobd does not have (one_done,
# none_failed_min_one_success, all_skipped, all_done_setup_success, always), for mapped tasks
# (removed) and for depends_on_past are left out.
AIRFLOW_CASES = [
    AirflowCase(
        "test_one_success_tr_success",
        TR.ONE_SUCCESS,
        _st(success=1, skipped=2, failed=3, upstream_failed=2),
        False,
        True,
        "-",
    ),
    AirflowCase(
        "test_one_success_tr_failure",
        TR.ONE_SUCCESS,
        _st(skipped=2, failed=2, upstream_failed=2),
        False,
        False,
        "-",
    ),
    AirflowCase("test_one_failure_tr_failure", TR.ONE_FAILED, _st(success=2), False, False, "-"),
    AirflowCase(
        "test_one_failure_tr_success", TR.ONE_FAILED, _st(skipped=2, failed=2), False, True, "-"
    ),
    AirflowCase(
        "test_one_failure_tr_success_no_failed",
        TR.ONE_FAILED,
        _st(skipped=2, upstream_failed=2),
        False,
        True,
        "-",
    ),
    AirflowCase("test_all_success_tr_success", TR.ALL_SUCCESS, _st(success=1), False, True, "-"),
    AirflowCase(
        "test_all_success_tr_failure", TR.ALL_SUCCESS, _st(success=1, failed=1), False, False, "-"
    ),
    AirflowCase(
        "test_all_success_tr_skip[True]",
        TR.ALL_SUCCESS,
        _st(success=1, skipped=1),
        True,
        False,
        "skipped",
    ),
    AirflowCase(
        "test_all_success_tr_skip[False]",
        TR.ALL_SUCCESS,
        _st(success=1, skipped=1),
        False,
        False,
        None,
    ),
    AirflowCase(
        "test_none_failed_tr_success[True]",
        TR.NONE_FAILED,
        _st(success=1, skipped=1),
        True,
        True,
        None,
    ),
    AirflowCase(
        "test_none_failed_tr_success[False]",
        TR.NONE_FAILED,
        _st(success=1, skipped=1),
        False,
        True,
        None,
    ),
    AirflowCase(
        "test_none_failed_tr_failure",
        TR.NONE_FAILED,
        _st(success=1, skipped=1, failed=1),
        False,
        False,
        "-",
    ),
    AirflowCase("test_all_failed_tr_success", TR.ALL_FAILED, _st(failed=2), False, True, "-"),
    AirflowCase("test_all_failed_tr_failure", TR.ALL_FAILED, _st(success=2), False, False, "-"),
    AirflowCase("test_all_done_tr_success", TR.ALL_DONE, _st(success=2), False, True, "-"),
    AirflowCase(
        "test_all_done_tr_failure", TR.ALL_DONE, _st(success=1, unfinished=1), False, False, "-"
    ),
    AirflowCase(
        "test_none_skipped_tr_success[True]",
        TR.NONE_SKIPPED,
        _st(success=2, failed=1),
        True,
        True,
        "-",
    ),
    AirflowCase(
        "test_none_skipped_tr_success[False]",
        TR.NONE_SKIPPED,
        _st(success=2, failed=1),
        False,
        True,
        "-",
    ),
    AirflowCase(
        "test_none_skipped_tr_failure[True]",
        TR.NONE_SKIPPED,
        _st(success=1, skipped=1),
        True,
        False,
        "-",
    ),
    AirflowCase(
        "test_none_skipped_tr_failure[False]",
        TR.NONE_SKIPPED,
        _st(success=1, skipped=1),
        False,
        False,
        "-",
    ),
    AirflowCase(
        "test_none_skipped_tr_failure_empty", TR.NONE_SKIPPED, _st(unfinished=1), False, False, "-"
    ),
]


@pytest.mark.parametrize("case", AIRFLOW_CASES, ids=[c.test for c in AIRFLOW_CASES])
def test_airflow_test_cases(case: AirflowCase) -> None:
    verdict = judge(case.rule, needs(case.states))
    # jobd always flags, as Airflow's scheduler does: where Airflow's test runs unflagged,
    # only whether the task may run is compared.
    assert (verdict is Verdict.RUN) is case.passed
    if case.flag_upstream_failed and case.state != "-":
        assert verdict.state == (None if case.state is None else RunState(case.state))
    # and the transcribed decision logic agrees with Airflow's own test
    passed, _ = airflow_dep(str(case.rule), counts_of(case.states), case.flag_upstream_failed)
    assert passed is case.passed


def test_airflow_no_upstream_tasks_always_passes() -> None:
    # test_no_upstream_tasks
    for rule in TriggerRule:
        assert judge(rule, {}) is Verdict.RUN


def test_the_issue_graph_ends_as_in_airflow() -> None:
    """A fails → B (all_success) → C (none_failed); D (one_failed) and E (all_failed) need B.
    Airflow: B upstream_failed, C upstream_failed, D runs, E runs."""
    graph = {"a": (), "b": ("a",), "c": ("b",), "d": ("b",), "e": ("b",)}
    rules = {"c": TR.NONE_FAILED, "d": TR.ONE_FAILED, "e": TR.ALL_FAILED}
    flow = FlowState.build(needs=graph, root="a", rules=rules, runs=[("a", FAILED)])
    decision = flow.decide()
    assert decision.upstream_failed == ("b", "c")
    assert decision.skip == ()
    assert decision.run == ("d", "e")


# --- whole flows ------------------------------------------------------------------------------

WORD = {
    SUCCESS: "success",
    FAILED: "failed",
    SKIPPED: "skipped",
    UPSTREAM_FAILED: "upstream_failed",
}


def airflow_scheduler(
    needs: dict[str, tuple[str, ...]],
    rules: dict[str, TriggerRule],
    outcomes: dict[str, str],
    root: str,
) -> dict[str, str]:
    """Final task states of a DAG run as Airflow's scheduler reaches them, built on
    ``airflow_dep`` alone: after each task finishes, every task without a state is evaluated
    (flag_upstream_failed) until nothing changes; then the running task that comes first by
    name finishes with its outcome."""
    states: dict[str, str | None] = dict.fromkeys(needs)
    states[root] = "running"
    order = sorted(needs, key=lambda j: (len(_ancestors(needs, j)), j))
    while True:
        changed = True
        while changed:
            changed = False
            for job in order:
                if states[job] is not None:
                    continue
                ups = [states[u] for u in needs[job]]
                c = Counts(
                    success=ups.count("success"),
                    skipped=ups.count("skipped"),
                    failed=ups.count("failed"),
                    upstream_failed=ups.count("upstream_failed"),
                    done=sum(u not in (None, "running") for u in ups),
                    upstream=len(ups),
                )
                passed, new_state = airflow_dep(str(rules[job]), c)
                if new_state is not None or passed:
                    states[job] = new_state or "running"
                    changed = True
        running = sorted(j for j, s in states.items() if s == "running")
        if not running:
            return {j: str(s) for j, s in states.items()}
        states[running[0]] = outcomes[running[0]]


def _ancestors(needs: dict[str, tuple[str, ...]], job: str) -> set[str]:
    seen: set[str] = set()
    todo = list(needs[job])
    while todo:
        up = todo.pop()
        if up not in seen:
            seen.add(up)
            todo.extend(needs[up])
    return seen


def jobd_flow(
    needs: dict[str, tuple[str, ...]],
    rules: dict[str, TriggerRule],
    outcomes: dict[str, str],
    root: str,
) -> dict[str, str]:
    """The same run through jobd's FlowState, finishing runs in the same order."""
    state_of = {"success": SUCCESS, "failed": FAILED}
    flow = FlowState.build(needs=needs, root=root, rules=rules, runs=[(root, RunState.RUNNING)])
    running = {root}
    while True:
        decision = flow.decide()
        flow = flow.apply(decision)
        running |= set(decision.run)
        if not running:
            break
        job = min(running)
        running.remove(job)
        flow = flow.finish(job, state_of[outcomes[job]])
    assert flow.complete
    return {j: WORD[s] for j in flow.order if (s := flow.result(j)) is not None}


@st.composite
def dags(
    draw: st.DrawFn,
) -> tuple[dict[str, tuple[str, ...]], dict[str, TriggerRule], dict[str, str]]:
    n = draw(st.integers(2, 9))
    names = [f"t{i}" for i in range(n)]
    needs: dict[str, tuple[str, ...]] = {names[0]: ()}
    for i in range(1, n):
        needs[names[i]] = tuple(
            draw(st.lists(st.sampled_from(names[:i]), min_size=1, max_size=3, unique=True))
        )
    rules = {j: draw(st.sampled_from(list(TriggerRule))) for j in names}
    outcomes = {j: draw(st.sampled_from(["success", "failed"])) for j in names}
    return needs, rules, outcomes


@settings(max_examples=200, deadline=None)
@given(dags())
def test_whole_flows_end_as_airflow_runs_them(
    case: tuple[dict[str, tuple[str, ...]], dict[str, TriggerRule], dict[str, str]],
) -> None:
    needs, rules, outcomes = case
    assert jobd_flow(needs, rules, outcomes, "t0") == airflow_scheduler(
        needs, rules, outcomes, "t0"
    )


def test_the_issue_graph_through_the_airflow_simulation() -> None:
    graph = {"a": (), "b": ("a",), "c": ("b",), "d": ("b",), "e": ("b",)}
    rules = {
        "a": TR.ALL_SUCCESS,
        "b": TR.ALL_SUCCESS,
        "c": TR.NONE_FAILED,
        "d": TR.ONE_FAILED,
        "e": TR.ALL_FAILED,
    }
    outcomes = dict.fromkeys(graph, "success") | {"a": "failed"}
    expected = {
        "a": "failed",
        "b": "upstream_failed",
        "c": "upstream_failed",
        "d": "success",
        "e": "success",
    }
    assert airflow_scheduler(graph, rules, outcomes, "a") == expected
    assert jobd_flow(graph, rules, outcomes, "a") == expected
