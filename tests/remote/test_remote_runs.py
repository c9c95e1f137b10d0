"""Runs on real Celery workers through a real redis-server, driven by a real daemon and jobctl:
the same output, exit code, outputs and followed log as a local run; cancel and timeout
stop the command on the worker."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.remote.conftest import REDIS, RedisServer, World, marker_processes, wait_for

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")

SAME = (
    "echo hello from $JOBD_JOB_ID run $JOBD_RUN_ID attempt $JOBD_ATTEMPT; "
    "echo rows=42 >> $JOBD_OUTPUT; echo to stderr >&2; exit 3"
)


def test_manual_run_on_a_worker_is_the_same_as_a_local_run(world: World) -> None:
    world.write(f"""
        [jobs.local]
        command = "{SAME}"

        [jobs.remote]
        executor = "celery"
        queue = "t.same"
        command = "{SAME}"

        [jobs.report]
        executor = "celery"
        queue = "t.same"
        needs = ["remote"]
        trigger_rule = "all_done"
        command = ["echo", "rows: ${{{{ needs.remote.outputs.rows }}}}"]

        [jobs.entry]
        executor = "celery"
        queue = "t.same"
        entrypoint = "json:dumps"

        [jobs.staged]
        executor = "celery"
        queue = "t.same"

        [[jobs.staged.stages]]
        name = "one"
        command = "echo in $JOBD_STAGE; exit 1"
        retries = 1
        retry_delay = "10ms"
        continue_on_error = true

        [[jobs.staged.stages]]
        name = "two"
        command = "echo in $JOBD_STAGE; echo n=2 >> $JOBD_OUTPUT"
        """)
    world.start_worker("t.same")
    world.start_daemon()
    local = world.jobctl("run", "local", "--wait")
    remote = world.jobctl("run", "remote", "--wait")
    assert local.returncode == remote.returncode == 1, remote.stderr
    [lrun] = world.runs("local")
    [rrun] = world.wait_state("remote", {"failed"})
    assert (
        (lrun["state"], lrun["exit_code"], lrun["message"])
        == (rrun["state"], rrun["exit_code"], rrun["message"])
        == ("failed", 3, "exit code 3")
    )
    assert json.loads(lrun["outputs"]) == json.loads(rrun["outputs"]) == {"rows": "42"}
    llog = world.jobctl("logs", str(lrun["run_id"])).stdout
    rlog = world.jobctl("logs", str(rrun["run_id"])).stdout
    assert f"hello from remote run {rrun['run_id']} attempt 1\nto stderr\n" in rlog
    assert (
        rlog.replace("remote", "X").replace(f"run {rrun['run_id']}", "run N").splitlines()[:2]
        == llog.replace("local", "X").replace(f"run {lrun['run_id']}", "run N").splitlines()[:2]
    )
    # outputs downstream: the flow's next job reads them, on a worker too
    [report] = world.wait_state("report", {"succeeded"})
    assert world.jobctl("logs", str(report["run_id"])).stdout == "rows: 42\n"
    # an entrypoint runs under the worker's own interpreter
    assert world.jobctl("run", "entry", "--wait").returncode == 1  # json.dumps() needs an arg
    [entry] = world.runs("entry")
    assert "TypeError" in world.jobctl("logs", str(entry["run_id"])).stdout
    # stages: each stage (and each stage retry) is a task of its own
    assert world.jobctl("run", "staged", "--wait").returncode == 0
    [staged] = world.runs("staged")
    assert staged["state"] == "succeeded" and json.loads(staged["outputs"]) == {"n": "2"}
    log = world.jobctl("logs", str(staged["run_id"])).stdout
    assert [x for x in log.splitlines() if x.startswith("in ")] == ["in one", "in one", "in two"]


def test_cron_job_and_followed_log(world: World) -> None:
    world.write("""
        [jobs.tick]
        executor = "celery"
        queue = "t.cron"
        cron = "* * * * * *"
        overlap = "skip"
        command = "echo tick $JOBD_SCHEDULED_FOR"

        [jobs.slow]
        executor = "celery"
        queue = "t.cron"
        command = "echo one; sleep 1.5; echo two"

        [jobs.watched]
        executor = "celery"
        queue = "t.cron"
        watch = ["in/*.txt"]
        command = "tr '\\\\0' '\\\\n' < $JOBD_CHANGED_PATHS_FILE; echo env $JOBD_CHANGED_PATHS"
        """)
    (world.root / "jobs.d" / "in").mkdir()
    world.start_worker("t.cron", concurrency=2)
    world.start_daemon()
    ticks = world.wait_state("tick", {"succeeded"}, n=2, timeout=20)
    assert all(t["trigger"] == "cron" and t["scheduled_for"] is not None for t in ticks)
    log = world.jobctl("logs", str(ticks[0]["run_id"])).stdout
    assert log.startswith("tick ") and log.count("\n") == 1
    started = world.jobctl("run", "slow")
    run_id = started.stdout.strip().split()[0]
    t0 = time.monotonic()
    follow = subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.jobctl", "logs", "-f", run_id],
        env=world.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    first = follow.stdout.readline()
    first_at = time.monotonic() - t0
    rest, _ = follow.communicate(timeout=20)
    assert first == "one\n" and rest.startswith("two\n")
    assert first_at < 1.5, "the first line came only once the run had ended"
    assert follow.returncode == 0
    # a watch run: the changed paths reach the worker, the file of them too
    changed = world.root / "jobs.d" / "in" / "a.txt"
    changed.write_text("x")
    [watched] = world.wait_state("watched", {"succeeded", "failed"})
    assert world.jobctl("logs", str(watched["run_id"])).stdout == f"{changed}\nenv {changed}\n"


def test_cancel_and_timeout_stop_the_command_on_the_worker(world: World) -> None:
    world.write("""
        [jobs.long]
        executor = "celery"
        queue = "t.stop"
        env = { TESTMARK = "long-${{ run.id }}" }
        command = "echo started; sleep 60 & wait"

        [jobs.slowpoke]
        executor = "celery"
        queue = "t.stop"
        timeout = "1s"
        kill_grace = "300ms"
        env = { TESTMARK = "slowpoke" }
        command = "trap '' TERM; echo started; sleep 60 & wait; sleep 60"
        """)
    world.start_worker("t.stop", concurrency=2)
    world.start_daemon()
    run_id = world.jobctl("run", "long").stdout.strip().split()[0]
    wait_for(lambda: marker_processes(f"TESTMARK=long-{run_id}") != [], 20, "long started")
    assert world.jobctl("cancel", run_id).returncode == 0
    [run] = world.wait_state("long", {"cancelled"}, timeout=20)
    assert run["message"] == "cancelled"
    wait_for(lambda: marker_processes(f"TESTMARK=long-{run_id}") == [], 5, "long stopped")

    assert world.jobctl("run", "slowpoke", "--wait").returncode == 1
    [run] = world.wait_state("slowpoke", {"timed_out"})
    assert run["message"] == "timed out"
    log = world.jobctl("logs", str(run["run_id"])).stdout
    assert "started" in log and "timed out after 1s" in log and "SIGKILL sent" in log
    wait_for(lambda: marker_processes("TESTMARK=slowpoke") == [], 5, "slowpoke stopped")


def test_a_cancelled_run_no_worker_took_never_runs(world: World) -> None:
    world.write("""
        [jobs.orphan]
        executor = "celery"
        queue = "t.nobody"
        command = "echo ran >> ledger"
        """)
    world.start_daemon()
    run_id = world.jobctl("run", "orphan").stdout.strip().split()[0]
    wait_for(lambda: any(r["state"] == "running" for r in world.runs("orphan")), 10, "running")
    assert world.jobctl("cancel", run_id).returncode == 0
    world.wait_state("orphan", {"cancelled"})
    world.start_worker("t.nobody")  # the message is still queued: its claim is fenced
    time.sleep(1.0)
    assert not (world.root / "ledger").exists()
    assert "already claimed or fenced" in world.workers[0].log.read_text()


def test_redis_acl_user_with_a_password_file(tmp_path: Path) -> None:
    # the default user is off: only the ACL user of the docs' recipe gets in
    server = RedisServer(
        "--user",
        "default",
        "off",
        "--user",
        "jobd",
        "on",
        ">s3cret pw",
        "~*",
        "&*",
        "+@all",
        "-@dangerous",
        "+info",
    )
    server.start()
    world = World(tmp_path, server)
    try:
        (tmp_path / "redis.password").write_text("s3cret pw\n")
        (tmp_path / "redis.password").chmod(0o600)
        world.write(
            """
            [jobs.acl]
            executor = "celery"
            queue = "t.acl"
            command = "echo through the ACL"
            """,
            celery_extra='username = "jobd"\npassword_file = "redis.password"\n',
        )
        world.start_worker("t.acl")
        world.start_daemon()
        assert world.jobctl("run", "acl", "--wait").returncode == 0
        [run] = world.runs("acl")
        assert world.jobctl("logs", str(run["run_id"])).stdout == "through the ACL\n"
    finally:
        world.close()
        server.stop()
