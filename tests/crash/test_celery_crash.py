"""At least once with remote runs: a real daemon whose time-slotted job runs on a real Celery
worker is SIGKILLed at random moments and restarted. Then every slot in the window has
exactly one finished run, each run's command ended exactly once (adopted or journaled from
its result, never re-run after it ended), no two copies of a run ever overlapped, and no
command outlived the last drain."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from jobd.config.loader import load_config, load_jobs
from tests.remote.conftest import (  # noqa: F401  (fixtures)
    REDIS,
    World,
    marker_processes,
    redis_server,
    wait_for,
    world,
)

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")

KILLS = 6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.slow
def test_sigkill_of_the_daemon_with_remote_runs(world: World) -> None:  # noqa: F811
    seed = int(os.environ.get("JOBD_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"celery crash test seed {seed}")
    ledger, locks = world.root / "ledger", world.root / "locks"
    locks.mkdir()
    ledger.touch()
    world.write(f"""
        [jobs.remote_tick]
        executor = "celery"
        queue = "t.crash"
        every = "1s"
        catchup = "all"
        overlap = "allow"
        env = {{ TESTMARK = "crash" }}
        command = "exec 9>{locks}/$JOBD_RUN_ID; flock -n 9 || echo OVERLAP $JOBD_RUN_ID >> {ledger}; echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; sleep 1; echo end $JOBD_RUN_ID >> {ledger}"
        """)
    world.start_worker("t.crash", concurrency=2)
    first_slot: datetime | None = None
    for _ in range(KILLS):
        world.start_daemon()
        time.sleep(rng.uniform(0.3, 2.0))
        world.kill_daemon()
        if first_slot is None:
            slots = [r["scheduled_for"] for r in world.runs("remote_tick")]
            if slots:
                first_slot = EPOCH + timedelta(microseconds=min(slots))

    world.start_daemon()
    window_end = datetime.now(UTC) + timedelta(seconds=1)
    end_us = int((window_end - EPOCH).total_seconds() * 1e6)

    def caught_up() -> bool:
        runs = world.runs("remote_tick")
        done = {r["scheduled_for"] for r in runs if r["state"] not in ("queued", "running")}
        return (
            bool(runs)
            and max(done, default=0) >= end_us - 1_000_000
            and not any(
                r["state"] in ("queued", "running") and r["scheduled_for"] <= end_us for r in runs
            )
        )

    wait_for(caught_up, 40, f"the window finished (seed {seed})", world.root / "daemon.log")
    world.stop_daemon()
    assert world.daemon is not None and world.daemon.returncode == 0

    runs = [r for r in world.runs("remote_tick") if r["scheduled_for"] <= end_us]
    assert first_slot is not None
    trigger = load_jobs(load_config(world.config)).jobs["remote_tick"].time_triggers[0]
    expected, slot = [], trigger.next_after(first_slot - timedelta(microseconds=1))
    while slot is not None and slot <= window_end - timedelta(seconds=1):
        expected.append(int((slot - EPOCH).total_seconds() * 1e6))
        slot = trigger.next_after(slot)
    assert len(expected) >= 5
    per_slot = Counter(r["scheduled_for"] for r in runs)
    missing = [s for s in expected if per_slot[s] == 0]
    assert not missing, f"slots without a run: {missing} (seed {seed})"
    assert all(n == 1 for n in per_slot.values()), f"{per_slot} (seed {seed})"
    assert {r["state"] for r in runs} == {"succeeded"}, f"seed {seed}"

    lines = ledger.read_text().splitlines()
    assert not [x for x in lines if x.startswith("OVERLAP")], f"two copies at once (seed {seed})"
    ends = Counter(int(x.split()[1]) for x in lines if x.startswith("end "))
    assert {r["run_id"]: ends[r["run_id"]] for r in runs} == {r["run_id"]: 1 for r in runs}, (
        f"a run's command ended other than once (seed {seed})"
    )
    wait_for(lambda: marker_processes("TESTMARK=crash") == [], 5, "no command left")
    os.kill(world.workers[0].proc.pid, signal.SIGTERM)
