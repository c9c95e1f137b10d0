"""A hook survives a crash: the daemon is SIGKILLed after a run failed and before its
on_failure job could start; the next daemon runs the hook, once, with the facts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.control.conftest import REPO, run_jobctl

JOBS = """\
[jobs.blocker]
pool = "alerts"
command = ["sleep", "60"]

[jobs.broken]
command = "echo disk full; exit 3"
on_failure = ["notify"]

[jobs.notify]
pool = "alerts"
command = 'env | grep ^JOBD_FAILED_ | sort > {facts}; echo ran >> {ledger}'
"""


def _start(root: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JOBD_LOG_LEVEL": "WARNING"}
    env.pop("NOTIFY_SOCKET", None)
    with (root / "daemon.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")],
            env=env,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 20
    while _ctl(root, "status").returncode != 0:
        assert proc.poll() is None, (root / "daemon.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the daemon did not come up"
        time.sleep(0.05)
    return proc


def _ctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_jobctl(*args, env={"JOBD_CONFIG": str(root / "jobd.toml")})


def _runs(root: Path, job: str) -> list[dict[str, object]]:
    r = _ctl(root, "--json", "runs", job)
    assert r.returncode == 0, r.stderr
    runs: list[dict[str, object]] = json.loads(r.stdout)
    return runs


def _until(what: str, predicate: object, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_hook_runs_after_a_kill_between_failure_and_hook(tmp_path: Path) -> None:
    facts, ledger = tmp_path / "facts", tmp_path / "ledger"
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "jobs.toml").write_text(JOBS.format(facts=facts, ledger=ledger))
    (tmp_path / "jobd.toml").write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        shutdown_grace = "2s"

        [pools.alerts]
        max_parallel = 1
        """)
    )
    proc = _start(tmp_path)
    try:
        # The blocker holds the alerts pool, so the hook can only be queued when broken fails.
        assert _ctl(tmp_path, "run", "blocker").returncode == 0
        _until("the blocker to run", lambda: _runs(tmp_path, "blocker")[0]["state"] == "running")
        r = _ctl(tmp_path, "run", "broken", "--wait")
        assert r.returncode == 1, r.stderr
        failed_id = int(r.stdout.splitlines()[0])
        [hook] = _runs(tmp_path, "notify")
        assert hook["state"] == "queued" and hook["trigger"] == "hook"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not ledger.exists()
    # The next life, without the blocker (its interrupted run is cancelled: its job is gone).
    (tmp_path / "jobs.d" / "jobs.toml").write_text(
        JOBS.format(facts=facts, ledger=ledger).split("\n\n", 1)[1]
    )
    proc = _start(tmp_path)
    try:
        _until("the hook to finish", lambda: _runs(tmp_path, "notify")[0]["state"] == "succeeded")
        [hook] = _runs(tmp_path, "notify")
        assert hook["trigger"] == "hook"
        failed = _runs(tmp_path, "broken")[0]
        assert failed["run_id"] == failed_id and failed["state"] == "failed"
        log = json.loads(_ctl(tmp_path, "--json", "logs", str(failed_id)).stdout)
        got = dict(line.split("=", 1) for line in facts.read_text().splitlines())
        assert got["JOBD_FAILED_JOB"] == "broken"
        assert got["JOBD_FAILED_RUN_ID"] == str(failed_id)
        assert got["JOBD_FAILED_STATE"] == "failed"
        assert got["JOBD_FAILED_EXIT_CODE"] == "3"
        assert "disk full" in log["log"] and Path(got["JOBD_FAILED_LOG"]).is_file()
        assert ledger.read_text() == "ran\n"  # once
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
