"""The daemon's side alone, ``CeleryExecutor``, on a real worker, under blockbuster: no call
that blocks the event loop (Redis, kombu's publish, imports), the result, the outputs and
the log of a run, and a cancel."""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import pytest
from blockbuster import blockbuster_ctx

from jobd.config.loader import load_config
from jobd.executors.abc import Cancel, ProcessResult, ProcessSpec
from jobd.executors.celery import CeleryExecutor
from tests.remote.conftest import REDIS, World

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def spec(tmp_path: Path, run_id: int, command: str) -> ProcessSpec:
    return ProcessSpec(
        argv=("sh", "-c", command),
        cwd=tmp_path,
        env={
            "JOBD_RUN_ID": str(run_id),
            "JOBD_ATTEMPT": "1",
            "JOBD_OUTPUT": str(tmp_path / f"{run_id}.out"),
        },
        log_path=tmp_path / f"{run_id}.log",
        kill_grace=1.0,
    )


async def test_the_executor_never_blocks_the_event_loop(world: World, tmp_path: Path) -> None:
    world.write("")
    world.start_worker("t.exec")
    cfg = load_config(world.config).celery
    assert cfg is not None
    ex = CeleryExecutor(cfg, instance=f"x{uuid.uuid4().hex[:8]}")
    with blockbuster_ctx("jobd") as bb:
        # as the local executor: log writes land in the page cache (docs/executors.md)
        bb.functions["os.write"].can_block_in("jobd/executors/_logsink.py", "_write")
        bb.functions["os.mkdir"].can_block_in("jobd/executors/_logsink.py", "open_log")
        with anyio.fail_after(30):
            done = await ex.run_remote(
                spec(tmp_path, 1, "echo out; echo k=v >> $JOBD_OUTPUT; exit 4"), queue="t.exec"
            )
            assert done == ProcessResult(exit_code=4)
            assert (tmp_path / "1.log").read_text() == "out\n"
            assert (tmp_path / "1.out").read_text() == "k=v\n"

            cancel = Cancel()
            result: list[ProcessResult] = []

            async def run() -> None:
                result.append(
                    await ex.run_remote(
                        spec(tmp_path, 2, "echo started; sleep 30"), queue="t.exec", cancel=cancel
                    )
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                for _ in range(400):  # its first output is in the log: it runs
                    if await anyio.Path(tmp_path / "2.log").exists():
                        break
                    await anyio.sleep(0.05)
                cancel.set()
            assert result[0].cancelled and result[0].signal == 15
            await ex.settle(1)
            await ex.settle(2)
            assert await ex.redis.xpending(ex.keys.results, "jobd") == {
                "pending": 0,
                "min": None,
                "max": None,
                "consumers": [],
            }
    await ex.aclose()
