"""Metrics, and jobctl as a new user meets it: the real ``jobctl`` against the real daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobd import __version__
from tests.control.conftest import REPO, run_jobctl

CONFIG = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
timezone = "UTC"
"""
JOBS = """\
[jobs.heartbeat]
description = "Tells the monitoring we are alive"
cron = "0 6 * * *"
timezone = "Asia/Kolkata"
command = "echo beat"

[jobs.bad]
command = "echo oops; exit 3"

[jobs.flaky]
command = "exit 1"
retries = 1
retry_delay = "2s"
retry_backoff = 1.0
"""


class Daemon:
    def __init__(self, root: Path, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.proc = proc
        self.config = root / "jobd.toml"

    def jobctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_jobctl(*args, env={"JOBD_CONFIG": str(self.config)})


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="jobd-observe-"))
    (root / "jobs.d").mkdir()
    (root / "jobd.toml").write_text(CONFIG)
    (root / "jobs.d" / "main.toml").write_text(JOBS)
    (root / "jobs.d" / "broken.toml").write_text("[jobs.x]\ncommand = 1\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
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
        while d.jobctl("status").returncode == 3:
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


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_parse_and_match_runs(daemon: Daemon) -> None:
    for job in ("heartbeat", "heartbeat", "bad"):
        assert daemon.jobctl("run", job, "--wait").returncode in (0, 1)
    r = daemon.jobctl("metrics")
    assert r.returncode == 0, r.stderr
    samples = _samples(r.stdout)
    runs = json.loads(daemon.jobctl("--json", "runs", "--limit", "1000").stdout)
    finished = Counter((x["job_id"], x["state"]) for x in runs)
    counted = {
        (dict(labels)["job"], dict(labels)["state"]): value
        for (name, labels), value in samples.items()
        if name == "jobd_runs_finished_total"
    }
    assert counted == dict(finished) and finished[("heartbeat", "succeeded")] == 2
    started = Counter(x["job_id"] for x in runs if x["started_at"])
    assert {
        dict(labels)["job"]: v
        for (name, labels), v in samples.items()
        if name == "jobd_runs_started_total"
    } == dict(started)
    assert samples[("jobd_run_duration_seconds_count", (("job", "heartbeat"),))] == 2
    assert samples[("jobd_queue_depth", ())] == 0 and samples[("jobd_runs_running", ())] == 0
    assert samples[("jobd_bus_depth", ())] == 0
    assert samples[("jobd_journal_commit_seconds_count", ())] >= 3
    assert samples[("jobd_event_loop_stall_max_seconds", ())] >= 0
    assert samples[("jobd_invalid_job_files", ())] == 1
    last = samples[("jobd_last_success_timestamp_seconds", (("job", "heartbeat"),))]
    assert abs(last - time.time()) < 120
    as_json = json.loads(daemon.jobctl("--json", "metrics").stdout)
    assert as_json["content_type"].startswith("text/plain") and "jobd_build_info" in as_json["text"]


def test_run_wait_counts_the_whole_run_across_retries(daemon: Daemon) -> None:
    r = daemon.jobctl("run", "flaky", "--wait")
    assert r.returncode == 1
    m = re.search(r"failed \(exit 1\) after ([0-9.]+)(ms|s) \(2 attempts\)", r.stderr)
    assert m is not None, r.stderr
    # the retry waited at least half its 2s retry_delay (jitter): inside the run's time
    assert m.group(2) == "s" and float(m.group(1)) >= 1.0


def test_did_you_mean(daemon: Daemon) -> None:
    r = daemon.jobctl("run", "hearbeat")
    assert r.returncode == 2
    assert "no job 'hearbeat'; did you mean 'heartbeat'?" in r.stderr


def test_errors_are_json_under_json(daemon: Daemon) -> None:
    r = daemon.jobctl("--json", "run", "hearbeat")
    assert (r.returncode, r.stderr) == (2, "")
    error = json.loads(r.stdout)["error"]
    assert error["exit_code"] == 2 and error["code"] == 1  # NOT_FOUND (docs/protocol.md)
    assert error["data"] == {"job_id": "hearbeat", "did_you_mean": ["heartbeat"]}
    r = run_jobctl("--json", "--socket", str(daemon.root / "nowhere.sock"), "status")
    assert r.returncode == 3 and json.loads(r.stdout)["error"]["exit_code"] == 3
    r = daemon.jobctl("--json", "runs", "--limit", "0")
    assert r.returncode == 2 and "--limit" in json.loads(r.stdout)["error"]["message"]
    r = daemon.jobctl("--json", "stauts")
    assert r.returncode == 2 and "did you mean 'status'" in json.loads(r.stdout)["error"]["message"]


def test_version_needs_no_daemon() -> None:
    r = run_jobctl("--socket", "/nonexistent/jobd.sock", "--version")
    assert (r.returncode, r.stdout) == (0, f"jobctl {__version__}\n")
    r = run_jobctl("--version", "--json")
    assert json.loads(r.stdout) == {"version": __version__}


def test_show_and_why_speak_in_the_jobs_zone(daemon: Daemon) -> None:
    r = daemon.jobctl("show", "heartbeat")
    assert r.returncode == 0
    assert "Tells the monitoring we are alive" in r.stdout
    assert re.search(r"kill_grace\s+10s$", r.stdout, re.M), r.stdout
    assert "next runs (Asia/Kolkata)" in r.stdout
    # 06:00 in Kolkata, as systemctl list-timers shows times: weekday, date, zone, distance
    assert re.search(r"^  \w{3} \d{4}-\d\d-\d\d 06:00:00 IST \(in [0-9a-z ]+\)$", r.stdout, re.M), (
        r.stdout
    )
    r = daemon.jobctl("why", "heartbeat")
    assert re.search(r"Next: \w{3} \d{4}-\d\d-\d\d 06:00:00 IST \(in [^)]+\), by cron", r.stdout), (
        r.stdout
    )


def test_list_wide_shows_descriptions(daemon: Daemon) -> None:
    r = daemon.jobctl("list", "--wide")
    header = r.stdout.splitlines()[0].split()
    assert header[:3] == ["JOB", "DESCRIPTION", "TRIGGERS"]
    assert "Tells the monitoring we are alive" in r.stdout
    assert "Tells the monitoring" not in daemon.jobctl("list").stdout


def test_jobd_help_lists_its_commands() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "jobd", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 0
    assert re.search(r"^  check ", r.stdout, re.M) and re.search(r"^  import ", r.stdout, re.M)


def test_status_exits_1_while_job_files_are_invalid(daemon: Daemon) -> None:
    r = daemon.jobctl("status")
    assert r.returncode == 1 and "broken.toml" in r.stdout
    assert daemon.jobctl("--json", "status").returncode == 1
    (daemon.root / "jobs.d" / "broken.toml").unlink()
    assert daemon.jobctl("reload").returncode == 0
    assert daemon.jobctl("status").returncode == 0
