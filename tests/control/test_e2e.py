"""The real ``jobctl`` against the real daemon (``python -m jobd --config ...``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.conftest import REPO, run_jobctl

CONFIG = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
"""
JOBS = """\
[jobs.hello]
command = ["sh", "-c", "echo hi; sleep 0.2; echo there"]

[jobs.bad]
command = "echo oops; exit 3"

[jobs.long]
command = ["sleep", "30"]

[jobs.greet]
command = ["echo", "hello ${{ params.name }}"]
params = { name = "world" }
"""


class Daemon:
    def __init__(self, root: Path, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.proc = proc
        self.config = root / "jobd.toml"
        self.socket = root / "var" / "jobd.sock"

    def jobctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_jobctl(*args, env={"JOBD_CONFIG": str(self.config)})


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="jobd-e2e-"))
    (root / "jobs.d").mkdir()
    (root / "jobd.toml").write_text(CONFIG)
    (root / "jobs.d" / "main.toml").write_text(JOBS)
    (root / "jobs.d" / "broken.toml").write_text("[jobs.x]\ncron = 5\ncommand = 1\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JOBD_SOCKET", None)
    err = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")],
        cwd=root,
        env=env,
        stdout=err,
        stderr=err,
    )
    d = Daemon(root, proc)
    try:
        deadline = time.monotonic() + 15
        while d.jobctl("status").returncode not in (0, 1):  # 1: an invalid file (broken.toml)
            assert proc.poll() is None, (root / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.1)
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        err.close()
        shutil.rmtree(root, ignore_errors=True)


def test_status_list_show(daemon: Daemon) -> None:
    st = json.loads(daemon.jobctl("--json", "status").stdout)
    assert st["pid"] == daemon.proc.pid and st["jobs_loaded"] == 4
    assert [f["file"].endswith("broken.toml") for f in st["invalid_files"]] == [True]
    r = daemon.jobctl("list")
    assert r.returncode == 0 and "broken.toml" in r.stdout
    assert {line.split()[0] for line in r.stdout.splitlines()[1:5]} == {
        "bad",
        "greet",
        "hello",
        "long",
    }
    r = daemon.jobctl("show", "greet")
    assert r.returncode == 0 and "greet" in r.stdout


def test_run_wait_logs_runs(daemon: Daemon) -> None:
    r = daemon.jobctl("run", "hello", "--wait")
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.splitlines()[0]
    assert "hi\n" in r.stdout and "there\n" in r.stdout
    assert "hi\n" in daemon.jobctl("logs", run_id).stdout
    r = daemon.jobctl("run", "bad", "--wait")
    assert r.returncode == 1 and "oops" in r.stdout
    r = daemon.jobctl("run", "greet", "-p", "name=jobd", "--wait")
    assert r.returncode == 0 and "hello jobd" in r.stdout
    runs = json.loads(daemon.jobctl("--json", "runs", "--limit", "3").stdout)
    assert [x["job_id"] for x in runs] == ["greet", "bad", "hello"]
    assert runs[1]["exit_code"] == 3 and runs[1]["state"] == "failed"
    assert daemon.jobctl("run", "nope").returncode == 2
    assert daemon.jobctl("run", "greet", "-p", "nope=1").returncode == 2


def test_cancel_pause_reload_why(daemon: Daemon) -> None:
    run_id = daemon.jobctl("run", "long").stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOBD_CONFIG": str(daemon.config)}
    follow = subprocess.Popen(
        [sys.executable, "-m", "jobd.cli.jobctl", "logs", "--follow", run_id],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            json.loads(daemon.jobctl("--json", "logs", run_id).stdout)["run"]["state"] != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert follow.poll() is None  # following a running run
        r = daemon.jobctl("cancel", "long")
        assert r.returncode == 0 and run_id in r.stdout
        follow.communicate(timeout=15)  # the run ended: so does the follow
        assert follow.returncode == 0
    finally:
        follow.kill()
    deadline = time.monotonic() + 10
    while json.loads(daemon.jobctl("--json", "logs", run_id).stdout)["run"]["state"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert daemon.jobctl("pause", "hello").returncode == 0
    assert "hello" in json.loads(daemon.jobctl("--json", "status").stdout)["paused"]
    assert daemon.jobctl("resume", "hello").returncode == 0
    assert daemon.jobctl("reload").returncode == 0
    assert daemon.jobctl("why", "hello").returncode == 0


def test_stop_removes_the_socket(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    assert not daemon.socket.exists()
    r = daemon.jobctl("status")
    assert r.returncode == 3 and str(daemon.socket) in r.stderr
