"""Child processes for the SQLite tests: ``python -m tests.journal.child MODE DB``.

``crash``: writers put runs as running, then as succeeded, printing ``running ID`` / ``done ID``
only after each ``put_runs`` returned, until the parent kills the process.
``hold``: open the journal, print ``open``, keep it until stdin closes.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.to_thread

from jobd._enums import RunState, TriggerKind
from jobd.journal import RunRecord, SQLiteJournal

from .conftest import T0

WRITERS = 8


def expected_run(run_id: int, state: RunState) -> RunRecord:
    """What the crash child writes for ``run_id`` in ``state``; derived from the id alone."""
    run = RunRecord(
        run_id=run_id,
        job_id=f"job{run_id % 5}",
        trigger=TriggerKind.EVERY,
        state=RunState.RUNNING,
        queued_at=T0 + timedelta(seconds=run_id),
        scheduled_for=T0 + timedelta(minutes=run_id),
        params={"n": str(run_id)},
        changed_paths=(f"in/{run_id}.csv",),
        matrix={"cell": run_id},
        pid=run_id + 1000,
        started_at=T0 + timedelta(seconds=run_id, milliseconds=1),
        log_path=f"logs/{run_id}.log",
    )
    if state is RunState.RUNNING:
        return run
    return run.evolve(
        state=state,
        exit_code=0,
        outputs={"rows": str(run_id * 3)},
        finished_at=T0 + timedelta(seconds=run_id + 1),
    )


async def crash(path: Path) -> None:
    async with SQLiteJournal(path) as journal:
        print("open", flush=True)

        async def writer() -> None:
            while True:
                run = expected_run(journal.new_run_id(), RunState.RUNNING)
                await journal.put_runs([run], cursors={run.job_id: run.queued_at})
                print(f"running {run.run_id}", flush=True)
                # Lazy progress rides along; nothing may rely on it.
                await journal.put_runs([run.evolve(message="progress")], durable=False)
                await journal.put_runs([expected_run(run.run_id, RunState.SUCCEEDED)])
                print(f"done {run.run_id}", flush=True)

        async with anyio.create_task_group() as tg:
            for _ in range(WRITERS):
                tg.start_soon(writer)


async def hold(path: Path) -> None:
    async with SQLiteJournal(path):
        print("open", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    anyio.run(crash if mode == "crash" else hold, path)


if __name__ == "__main__":
    main()
