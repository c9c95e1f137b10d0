"""Flows in the real daemon: needs, trigger rules, upstream_failed propagation, outputs, one
run per flow, and a flow cut off by a restart that completes afterwards."""

from __future__ import annotations

from collections.abc import Callable

from jobd._enums import RunState, TriggerKind
from jobd.config.model import DaemonConfig

from .conftest import running, settle

MakeConfig = Callable[..., DaemonConfig]

DIAMOND = """
    [jobs.a]
    command = "echo a"
    [jobs.b]
    needs = ["a"]
    command = "exit 1"
    [jobs.c]
    needs = ["a"]
    command = "echo size=42 >> $JOBD_OUTPUT"
    [jobs.d_all_success]
    needs = ["b", "c"]
    command = "echo never"
    [jobs.after_upstream_failed]
    needs = ["d_all_success"]
    trigger_rule = "none_skipped"
    command = "echo ran"
    [jobs.d_one_failed]
    needs = ["b", "c"]
    trigger_rule = "one_failed"
    command = "echo alert"
    [jobs.d_all_done]
    needs = ["b", "c"]
    trigger_rule = "all_done"
    command = ["echo", "c said ${{ needs.c.outputs.size }} and b was ${{ needs.b.result }}"]
    """


async def test_diamond_trigger_rules_and_outputs(make_config: MakeConfig) -> None:
    config = make_config(DIAMOND)
    async with running(config) as d:
        root = await d.run_job("a", {})
        assert root.flow_id == str(root.run_id)
        await settle(d)
        runs = await d.journal.list_runs(flow_id=root.flow_id, limit=None)
        by_job = {}
        for r in runs:
            assert r.job_id not in by_job, f"{r.job_id} ran twice in one flow"
            by_job[r.job_id] = r
        assert {j: r.state for j, r in by_job.items()} == {
            "a": RunState.SUCCEEDED,
            "b": RunState.FAILED,
            "c": RunState.SUCCEEDED,
            "d_all_success": RunState.UPSTREAM_FAILED,
            # Airflow: upstream_failed is not skipped, so none_skipped runs
            "after_upstream_failed": RunState.SUCCEEDED,
            "d_one_failed": RunState.SUCCEEDED,
            "d_all_done": RunState.SUCCEEDED,
        }
        assert all(r.trigger is TriggerKind.NEEDS for j, r in by_job.items() if j != "a")
        # decided as soon as b failed, whether c had finished or not
        assert (by_job["d_all_success"].message or "").startswith(
            "trigger_rule all_success: b failed, c "
        )
        assert by_job["c"].outputs == {"size": "42"}
        text = d.log_path(by_job["d_all_done"]).read_text()
        assert "c said 42 and b was failure" in text
        # A second flow is independent of the first.
        second = await d.run_job("a", {})
        await settle(d)
        assert second.flow_id != root.flow_id
        assert len(await d.journal.list_runs(flow_id=second.flow_id, limit=None)) == 7


async def test_the_five_job_graph_ends_as_in_airflow(make_config: MakeConfig) -> None:
    """A fails → B (all_success) → C (none_failed); D (one_failed) and E (all_failed) need B.
    Airflow: B upstream_failed, C upstream_failed, D and E run."""
    config = make_config("""
        [jobs.a]
        command = "exit 3"
        [jobs.b]
        needs = ["a"]
        command = "echo never"
        [jobs.c]
        needs = ["b"]
        trigger_rule = "none_failed"
        command = "echo never"
        [jobs.d]
        needs = ["b"]
        trigger_rule = "one_failed"
        command = ["echo", "b was ${{ needs.b.result }}"]
        [jobs.e]
        needs = ["b"]
        trigger_rule = "all_failed"
        command = "echo e"
        """)
    async with running(config) as d:
        root = await d.run_job("a", {})
        await settle(d)
        runs = await d.journal.list_runs(flow_id=root.flow_id, limit=None)
        assert sorted((r.job_id, r.state) for r in runs) == [
            ("a", RunState.FAILED),
            ("b", RunState.UPSTREAM_FAILED),
            ("c", RunState.UPSTREAM_FAILED),
            ("d", RunState.SUCCEEDED),
            ("e", RunState.SUCCEEDED),
        ]
        [d_run] = [r for r in runs if r.job_id == "d"]
        assert "b was skipped" in d.log_path(d_run).read_text()  # GitHub's word for it
        states = {
            r.state
            for r in await d.journal.list_runs(
                states=frozenset({RunState.UPSTREAM_FAILED}), limit=None
            )
        }
        assert states == {RunState.UPSTREAM_FAILED}


async def test_flow_cut_off_by_a_stop_completes_after_restart(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.extract]
        command = "true"
        [jobs.load]
        needs = ["extract"]
        command = "true"
        """)
    async with running(config) as d:
        # Stop the daemon at the moment extract has finished, before load is triggered.
        orig = d.flows.advance

        async def cut(flow_id: str) -> None:
            d.stop()

        d.flows.advance = cut  # type: ignore[method-assign]
        root = await d.run_job("extract", {})
        await settle(d)
        assert await d.journal.list_runs(job_id="load", limit=None) == []
        d.flows.advance = orig  # type: ignore[method-assign]
    async with running(config) as d:
        await settle(d)
        [load] = await d.journal.list_runs(job_id="load", limit=None)
    assert load.flow_id == root.flow_id and load.state is RunState.SUCCEEDED
