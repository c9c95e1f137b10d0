"""The five-job graph of Airflow's upstream_failed on a real daemon process, seen through
jobctl: A fails → B (all_success) → C (none_failed); D (one_failed) and E (all_failed) need B.
Airflow ends it with B and C upstream_failed and D and E run; so must jobd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

JOBS = """
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
command = "echo alert"
[jobs.e]
needs = ["b"]
trigger_rule = "all_failed"
command = "echo cleanup"
"""


def jobctl(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(socket), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def runs_of(out: str) -> list[dict[str, Any]]:
    data = json.loads(out)
    return list(data["runs"] if isinstance(data, dict) else data)


@pytest.mark.slow
def test_five_job_graph_as_in_airflow(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "graph.toml").write_text(JOBS)
    sock = tmp_path / "jobd.sock"
    (tmp_path / "jobd.toml").write_text(
        f'[daemon]\njobs_dir = "jobs.d"\nstate_dir = "{tmp_path / "var"}"\nsocket = "{sock}"\n'
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG", "NO_COLOR")
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(tmp_path / "jobd.toml")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while jobctl(sock, "status").returncode != 0:
            assert time.monotonic() < deadline and daemon.poll() is None, "no daemon"
            time.sleep(0.1)
        assert jobctl(sock, "run", "a", "--wait").returncode == 1
        deadline = time.monotonic() + 20
        while True:
            runs = runs_of(jobctl(sock, "--json", "runs").stdout)
            if len(runs) == 5 and all(r["state"] not in ("queued", "running") for r in runs):
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.1)
        assert {r["job_id"]: r["state"] for r in runs} == {
            "a": "failed",
            "b": "upstream_failed",
            "c": "upstream_failed",
            "d": "succeeded",
            "e": "succeeded",
        }
        assert len({r["flow_id"] for r in runs}) == 1
        only = runs_of(jobctl(sock, "--json", "runs", "--state", "upstream_failed").stdout)
        assert sorted(r["job_id"] for r in only) == ["b", "c"]
        human = jobctl(sock, "runs", "--state", "upstream_failed")
        assert human.returncode == 0
        assert sum("upstream_failed" in line for line in human.stdout.splitlines()) == 2
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
