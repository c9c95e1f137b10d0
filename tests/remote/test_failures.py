"""What the executor adds to plain Celery, shown by killing real parts mid-run: SIGKILL of the
pool process, of a worker's whole process group, of the daemon, and kill -9 of Redis (AOF).
Each run ends exactly once; no two copies of it ever run at once (each copy takes a lock
with ``flock -n`` and writes OVERLAP if it cannot); no command outlives its run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.remote.conftest import REDIS, Worker, World, marker_processes, wait_for

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def job(name: str, queue: str, root: Path, sleep: float = 2.0) -> str:
    ledger, lock = root / f"{name}.ledger", root / f"{name}.lock"
    return f"""
        [jobs.{name}]
        executor = "celery"
        queue = "{queue}"
        overlap = "allow"
        env = {{ TESTMARK = "{name}" }}
        command = "exec 9>{lock}; flock -n 9 || echo OVERLAP >> {ledger}; echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; sleep {sleep}; echo end $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}"
        """


def ledger(world: World, name: str) -> list[str]:
    path = world.root / f"{name}.ledger"
    return path.read_text().splitlines() if path.exists() else []


def owner(world: World, pid: int) -> Worker:
    """The worker whose process tree holds ``pid``."""
    mains = {w.proc.pid: w for w in world.workers}
    while pid > 1:
        if pid in mains:
            return mains[pid]
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rpartition(")")[2].split()[1])
    raise AssertionError("not under any worker")


def test_sigkill_of_the_pool_process(world: World) -> None:
    # killed twice: the first loss is a recovery; the second is past max_lost = 1
    world.write(job("k1", "t.k1", world.root), celery_extra="max_lost = 1\n")
    w = world.start_worker("t.k1")
    world.start_daemon()
    run_id = world.jobctl("run", "k1").stdout.split()[0]
    for attempt in (1, 2):
        line = f"start {run_id} {attempt}"
        wait_for(lambda: ledger(world, "k1")[-1:] == [line], 20, f"attempt {attempt} started")  # noqa: B023
        [pool] = w.pool
        os.kill(pool, signal.SIGKILL)
        # the guard's parent-death signal takes the command down at once
        wait_for(lambda: marker_processes("TESTMARK=k1") == [], 3, "command gone")
        wait_for(lambda: len(w.pool) == 1, 10, "a new pool process")
    [run] = world.wait_state("k1", {"succeeded", "failed"}, timeout=30)
    assert (run["state"], run["attempt"], run["trigger"]) == ("failed", 2, "recovery")
    assert run["message"].startswith("lost its worker 2 times (max_lost = 1); last time: ")
    assert ledger(world, "k1") == [f"start {run_id} 1", f"start {run_id} 2"]
    log = world.jobctl("logs", run_id).stdout
    assert "worker lost: its lease lapsed" in log and "re-run as a recovery" in log
    assert marker_processes("TESTMARK=k1") == []


def test_sigkill_of_a_workers_process_group(world: World) -> None:
    world.write(job("k2", "t.k2", world.root))
    world.start_worker("t.k2")
    world.start_worker("t.k2")
    world.start_daemon()
    run_id = world.jobctl("run", "k2").stdout.split()[0]
    # its first line written: the command is past its start (a process with the marker may
    # still be the shell before it, which a kill then would leave with no line at all)
    wait_for(lambda: ledger(world, "k2") == [f"start {run_id} 1"], 20, "started")
    doomed = owner(world, marker_processes("TESTMARK=k2")[0])
    os.killpg(doomed.proc.pid, signal.SIGKILL)
    doomed.proc.wait()
    wait_for(lambda: marker_processes("TESTMARK=k2") == [], 3, "command gone")
    [run] = world.wait_state("k2", {"succeeded", "failed"}, timeout=30)
    assert (run["state"], run["attempt"], run["trigger"]) == ("succeeded", 2, "recovery")
    assert ledger(world, "k2") == [f"start {run_id} 1", f"start {run_id} 2", f"end {run_id} 2"]
    assert marker_processes("TESTMARK=k2") == []


def test_sigkill_of_the_daemon(world: World) -> None:
    world.write(
        job("live", "t.k3", world.root, 5.0)
        + job("ended", "t.k3", world.root, 3.0)  # still running when both have started
        + job("unclaimed", "t.k3b", world.root, 0.1)
    )
    world.start_worker("t.k3", concurrency=2)
    world.start_daemon()
    live = world.jobctl("run", "live").stdout.split()[0]
    ended = world.jobctl("run", "ended").stdout.split()[0]
    unclaimed = world.jobctl("run", "unclaimed").stdout.split()[0]
    wait_for(
        lambda: len(ledger(world, "live")) == 1 and len(ledger(world, "ended")) == 1,
        40,  # a Celery worker's pool can be slow to start under load
        "both started",
    )
    wait_for(
        lambda: any(r["state"] == "running" for r in world.runs("unclaimed")), 10, "unclaimed sent"
    )
    world.kill_daemon()
    # while the daemon is down, one run ends on its worker; the other still runs
    wait_for(lambda: len(ledger(world, "ended")) == 2, 10, "ended on its worker")
    world.start_daemon()
    # alive: adopted (same attempt); ended: its result journaled; never claimed: fenced and
    # re-run as a recovery, which the worker started now runs (the old message is refused)
    [r1] = world.wait_state("live", {"succeeded", "failed"}, timeout=20)
    [r2] = world.wait_state("ended", {"succeeded", "failed"}, timeout=20)
    assert (r1["state"], r1["attempt"]) == ("succeeded", 1)
    assert (r2["state"], r2["attempt"]) == ("succeeded", 1)
    assert ledger(world, "live") == [f"start {live} 1", f"end {live} 1"]
    assert ledger(world, "ended") == [f"start {ended} 1", f"end {ended} 1"]
    assert "adopted from its worker" in world.jobctl("logs", live).stdout
    world.start_worker("t.k3b")
    [r3] = world.wait_state("unclaimed", {"succeeded", "failed"}, timeout=20)
    assert (r3["state"], r3["attempt"], r3["trigger"]) == ("succeeded", 2, "recovery")
    time.sleep(0.5)  # the fenced attempt-1 message, if it comes now, must not run
    assert ledger(world, "unclaimed") == [f"start {unclaimed} 2", f"end {unclaimed} 2"]
    assert marker_processes("TESTMARK=live") == []


def test_kill_9_of_redis_with_aof(world: World) -> None:
    # The worker stops a command whose lease it could not renew for half the lease; 10 s
    # leaves room for the restart under load (last renewal + kill + AOF load + reconnect).
    world.lease = "10s"
    world.write(job("r", "t.redis", world.root, 1.5))
    world.start_worker("t.redis")
    world.start_daemon()
    first = world.jobctl("run", "r").stdout.split()[0]
    second = world.jobctl("run", "r").stdout.split()[0]  # waits in Redis: the worker is busy
    wait_for(lambda: len(ledger(world, "r")) == 1, 20, "first started")
    world.redis.kill9()
    time.sleep(0.3)
    world.redis.start()
    runs = world.wait_state("r", {"succeeded", "failed"}, n=2, timeout=40)
    assert [(r["state"], r["attempt"]) for r in runs] == [("succeeded", 1), ("succeeded", 1)], runs
    lines = ledger(world, "r")  # the two may have been sent in either order
    assert sorted(lines) == sorted(
        [f"start {first} 1", f"end {first} 1", f"start {second} 1", f"end {second} 1"]
    )
    assert lines[0].split()[1] == lines[1].split()[1], "the worker ran one at a time"
