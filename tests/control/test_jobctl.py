"""The real ``jobctl`` in a subprocess against a real server: every command, ``--json`` shapes and
exit codes 0/1/2/3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord
from tests.control.conftest import REPO, Harness, run_jobctl, serve
from tests.control.fakeapi import FakeJob

RUN_KEYS = {
    "run_id",
    "job_id",
    "trigger",
    "scheduled_for",
    "attempt",
    "state",
    "exit_code",
    "started_at",
    "finished_at",
}


def finish(h: Harness, run_id: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while h.call("logs", run_id=run_id, max_bytes=0)["run"]["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_status_and_list_show_invalid_files(harness: Harness) -> None:
    harness.api.invalid_files = [
        {
            "file": "jobs.d/bad.toml",
            "errors": [
                "jobs.d/bad.toml:12: job 'load': cron: '61 * * * *' is not a valid cron expression"
            ],
        }
    ]
    harness.api.paused.add("slow")
    r = harness.jobctl("status")
    assert r.returncode == 1, r.stderr  # invalid job files: status says so by its exit code
    assert "jobd 0.0-test" in r.stdout and "5 loaded, 1 paused (slow)" in r.stdout
    assert "0 running, 0 queued" in r.stdout
    assert "jobs.d/bad.toml:12: job 'load': cron:" in r.stdout
    assert "\x1b[" not in r.stdout  # no colour when stdout is not a terminal
    r = harness.jobctl("list")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["JOB", "TRIGGERS", "NEXT", "LAST", "RUN"]
    hello = next(line for line in lines if line.startswith("hello"))
    assert "cron '0 * * * *' (UTC)" in hello and "in " in hello
    assert next(line for line in lines if line.startswith("slow")).endswith("paused")
    assert "invalid files (1)" in r.stdout and "not a valid cron expression" in r.stdout

    st = json.loads(harness.jobctl("--json", "status").stdout)
    assert st["invalid_files"][0]["file"] == "jobs.d/bad.toml" and st["jobs_loaded"] == 5
    listed = json.loads(harness.jobctl("list", "--json").stdout)
    assert {j["job_id"] for j in listed["jobs"]} >= {"hello", "slow"}
    assert listed["invalid_files"] == st["invalid_files"]


def test_show_and_why(harness: Harness) -> None:
    r = harness.jobctl("show", "hello")
    assert r.returncode == 0
    assert "jobs.d/hello.toml:1" in r.stdout and "2030-01-01 00:00:00 UTC" in r.stdout
    assert json.loads(harness.jobctl("--json", "show", "hello").stdout)["next_fire_times"]
    r = harness.jobctl("why", "hello")
    assert (r.returncode, r.stdout.splitlines()[0]) == (0, "'hello' has not run yet.")
    assert json.loads(harness.jobctl("--json", "why", "hello").stdout)["job_id"] == "hello"


def test_run_prints_its_id_and_wait_follows_it(harness: Harness) -> None:
    r = harness.jobctl("run", "hello")
    assert r.returncode == 0 and r.stdout.strip().isdigit()
    finish(harness, int(r.stdout))

    r = harness.jobctl("run", "slow", "--wait")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].isdigit() and lines[1:] == ["one", "two", "three"]
    assert f"run {lines[0]} (slow) succeeded" in r.stderr

    r = harness.jobctl("run", "fails", "--wait")
    assert r.returncode == 1
    assert r.stdout.splitlines()[1:] == ["oops"]
    assert "failed (exit 3)" in r.stderr

    r = harness.jobctl("--json", "run", "params", "-p", "name=x")
    run = json.loads(r.stdout)
    assert set(run) >= RUN_KEYS and run["params"] == {"name": "x"}

    r = harness.jobctl("--json", "run", "hello", "--wait")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[0]["type"] == "run" and events[-1]["type"] == "end"
    assert "".join(e["data"] for e in events if e["type"] == "log") == "hello\nworld\n"
    assert events[-1]["run"]["state"] == "succeeded" and r.returncode == 0


def test_runs_and_logs(harness: Harness) -> None:
    first = int(harness.jobctl("run", "hello").stdout)
    second = int(harness.jobctl("run", "fails").stdout)
    finish(harness, first)
    finish(harness, second)
    r = harness.jobctl("runs")
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "RUN",
        "JOB",
        "TRIGGER",
        "STATE",
        "EXIT",
        "TRY",
        "FLOW",
        "STARTED",
        "TOOK",
    ]
    assert lines[1].split()[:5] == [str(second), "fails", "manual", "failed", "3"]  # newest first
    assert lines[2].split()[:5] == [str(first), "hello", "manual", "succeeded", "0"]
    runs = json.loads(harness.jobctl("--json", "runs", "hello", "--limit", "5").stdout)
    assert [r["run_id"] for r in runs] == [first] and set(runs[0]) >= RUN_KEYS
    failed = json.loads(harness.jobctl("--json", "runs", "--state", "failed").stdout)
    assert [r["run_id"] for r in failed] == [second]
    assert harness.jobctl("runs", "--state", "cancelled").stdout.strip() == "no runs"

    assert harness.jobctl("logs", str(first)).stdout == "hello\nworld\n"
    assert harness.jobctl("logs", "fails").stdout == "oops\n"  # a job: its latest run
    got = json.loads(harness.jobctl("--json", "logs", "hello").stdout)
    assert got["log"] == "hello\nworld\n" and got["run"]["run_id"] == first


def test_logs_follow(harness: Harness) -> None:
    rid = int(harness.jobctl("run", "slow").stdout)
    r = harness.jobctl("logs", "--follow", str(rid))
    assert (r.returncode, r.stdout) == (0, "one\ntwo\nthree\n")
    r = harness.jobctl("logs", "-f", "slow")  # finished: prints and ends
    assert r.stdout == "one\ntwo\nthree\n"


def test_logs_keep_bytes_exactly(harness: Harness) -> None:
    harness.api.add(FakeJob("binary", output=[b"caf\xc3", b"\xa9 \xff\x00end\n"], step=0.05))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(harness.path)]
    waited = subprocess.run(
        [*base, "run", "binary", "--wait"], capture_output=True, env=env, timeout=20, check=False
    )
    assert waited.returncode == 0
    assert waited.stdout.split(b"\n", 1)[1] == b"caf\xc3\xa9 \xff\x00end\n"
    out = subprocess.run(
        [*base, "logs", "binary"], capture_output=True, env=env, timeout=20, check=False
    )
    assert out.stdout == b"caf\xc3\xa9 \xff\x00end\n"


def test_cancel(harness: Harness) -> None:
    rid = int(harness.jobctl("run", "hold").stdout)
    r = harness.jobctl("cancel", str(rid))
    assert (r.returncode, r.stdout.strip()) == (0, f"cancelled run {rid}")
    finish(harness, rid)
    r = harness.jobctl("cancel", str(rid))
    assert "already finished" in r.stdout and r.returncode == 0
    a = int(harness.jobctl("run", "hold").stdout)
    b = int(harness.jobctl("run", "hold").stdout)
    r = harness.jobctl("--json", "cancel", "hold")
    assert sorted(json.loads(r.stdout)["cancelled"]) == [a, b]
    r = harness.jobctl("cancel", "hold")
    assert "no queued or running run" in r.stdout


def test_pause_resume_reload(harness: Harness) -> None:
    r = harness.jobctl("pause", "hello")
    assert r.returncode == 0 and "paused job 'hello'" in r.stdout
    assert harness.api.paused == {"hello"}
    assert json.loads(harness.jobctl("--json", "resume", "hello").stdout) == {
        "job_id": "hello",
        "paused": False,
    }
    assert harness.api.paused == set()
    r = harness.jobctl("reload")
    assert r.returncode == 0 and "reloaded: 5 jobs loaded, 0 invalid files" in r.stdout


def test_refusals_and_usage_exit_2(harness: Harness) -> None:
    for args in (
        ["show", "nope"],
        ["run", "nope"],
        ["pause", "nope"],
        ["logs", "999"],
        ["logs", "hello"],
        ["runs", "nope"],
        ["cancel", "999"],
        ["run", "params", "-p", "bogus=1"],
    ):
        r = harness.jobctl(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("jobctl: ") and r.stdout == ""
    assert "no job 'nope'" in harness.jobctl("show", "nope").stderr
    for args in (["frobnicate"], ["run"], ["runs", "--limit", "x"], ["run", "x", "-p", "k"]):
        r = harness.jobctl(*args)
        assert r.returncode == 2, (args, r.stderr)
    assert harness.api.changes == []


def test_unreachable_exit_3(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sock"
    r = run_jobctl("--socket", str(missing), "status")
    assert r.returncode == 3
    assert f"cannot reach the daemon at {missing}" in r.stderr and "is jobd running?" in r.stderr
    r = run_jobctl("status", env={"JOBD_SOCKET": str(missing)})
    assert r.returncode == 3 and "(from $JOBD_SOCKET)" in r.stderr
    cfg = tmp_path / "etc" / "jobd.toml"
    cfg.parent.mkdir()
    cfg.write_text('[daemon]\nsocket = "../run/x.sock"\n')
    r = run_jobctl("status", env={"JOBD_CONFIG": str(cfg)})
    assert r.returncode == 3 and str(tmp_path / "run" / "x.sock") in r.stderr
    cfg.write_text("[daemon\n")
    r = run_jobctl("status", env={"JOBD_CONFIG": str(cfg)})
    assert r.returncode == 2 and "$JOBD_CONFIG" in r.stderr


def test_socket_from_env_and_config() -> None:
    with serve() as h:
        r = run_jobctl("status", env={"JOBD_SOCKET": str(h.path)})
        assert r.returncode == 0, r.stderr
        cfg = h.dir / "jobd.toml"
        cfg.write_text('[daemon]\nsocket = "run/jobd.sock"\n')
        r = run_jobctl("--json", "status", env={"JOBD_CONFIG": str(cfg)})
        assert r.returncode == 0 and json.loads(r.stdout)["jobs_loaded"] == 5


def test_logs_larger_than_one_answer(harness: Harness) -> None:
    body = [b"x" * 700_000 + b"\n", "é".encode() * 400_000 + b"\n"]
    harness.api.add(FakeJob("big", output=body))
    assert harness.jobctl("run", "big", "--wait").returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(harness.path), "logs", "big"],
        capture_output=True,
        env=env,
        timeout=20,
        check=False,
    )
    assert out.stdout == b"".join(body)
    got = json.loads(harness.jobctl("--json", "logs", "big").stdout)["log"]
    assert got == b"".join(body).decode()


def test_runs_show_folded_slots(harness: Harness) -> None:
    """A run that covers folded slots says so: ``every+2`` in the table, the slots and the
    run key in ``--json``."""
    slot = datetime(2026, 3, 2, 12, 0, 35, tzinfo=UTC)
    folded = (
        datetime(2026, 3, 2, 12, 1, 35, tzinfo=UTC),
        datetime(2026, 3, 2, 12, 2, 35, tzinfo=UTC),
    )
    run = RunRecord(
        run_id=harness.api.journal.new_run_id(),
        job_id="hello",
        trigger=TriggerKind.EVERY,
        state=RunState.SUCCEEDED,
        queued_at=slot,
        scheduled_for=slot,
        started_at=slot,
        finished_at=slot,
        exit_code=0,
        folded_slots=folded,
    )
    harness.portal.call(harness.api.journal.put_runs, [run])
    lines = harness.jobctl("runs", "hello").stdout.splitlines()
    assert lines[1].split()[:4] == [str(run.run_id), "hello", "every+2", "succeeded"]
    [got] = json.loads(harness.jobctl("--json", "runs", "hello").stdout)
    assert got["folded_slots"] == ["2026-03-02T12:01:35+00:00", "2026-03-02T12:02:35+00:00"]
    assert len(got["run_key"]) == 32
