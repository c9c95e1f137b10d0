"""Matrix jobs in the real daemon: one run a cell, max_parallel, fail_fast, and a
downstream job that sees every cell's outputs."""

from __future__ import annotations

from collections.abc import Callable

from jobd._enums import RunState
from jobd.config.model import DaemonConfig

from .conftest import running, settle

MakeConfig = Callable[..., DaemonConfig]


async def test_cells_run_with_their_values_and_limit(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.test]
        matrix = { os = ["linux", "bsd"], py = ["3.11", "3.12"] }
        exclude = [{ os = "bsd", py = "3.11" }]
        include = [{ os = "linux", py = "3.12", extra = "yes" }]
        max_parallel = 2
        command = "echo cell=${{ matrix.os }}-${{ matrix.py }}-$JOBD_MATRIX_OS; echo ${{ matrix.os }}=ok >> $JOBD_OUTPUT; sleep 0.1"
        [jobs.report]
        needs = ["test"]
        command = ["echo", "linux:${{ needs.test.outputs.linux }} bsd:${{ needs.test.outputs.bsd }} result:${{ needs.test.result }}"]
        """)
    async with running(config) as d:
        peak = 0
        first = await d.run_job("test", {})
        while not d.is_idle():
            peak = max(peak, len(d.active))
            await d._wait_change()
        await settle(d)
        cells = await d.journal.list_runs(job_id="test", limit=None)
        [report] = await d.journal.list_runs(job_id="report", limit=None)
    assert sorted(
        (c.matrix or {}).get("os", "") + (c.matrix or {}).get("py", "") for c in cells
    ) == ["bsd3.12", "linux3.11", "linux3.12"]
    assert all(c.flow_id == first.flow_id and c.state is RunState.SUCCEEDED for c in cells)
    [extra] = [c for c in cells if (c.matrix or {}).get("extra") == "yes"]
    assert "cell=linux-3.12-linux" in d.log_path(extra).read_text()
    assert peak <= 2
    assert report.state is RunState.SUCCEEDED
    assert "linux:ok bsd:ok result:success" in d.log_path(report).read_text()


async def test_fail_fast_cancels_the_other_cells(make_config: MakeConfig) -> None:
    config = make_config("""
        [jobs.m]
        matrix = { n = [1, 2, 3, 4] }
        max_parallel = 2
        command = "if [ ${{ matrix.n }} = 1 ]; then exit 1; fi; sleep 5"
        kill_grace = "200ms"
        """)
    async with running(config) as d:
        await d.run_job("m", {})
        await settle(d)
        cells = sorted(await d.journal.list_runs(job_id="m", limit=None), key=lambda r: r.run_id)
    states = [c.state for c in cells]
    assert states[0] is RunState.FAILED
    assert states[1:] == [RunState.CANCELLED] * 3
