"""The example config end to end, as a newcomer runs it: a real daemon on config/, a CSV
dropped into the inbox, and `jobctl runs` showing transform and report in one flow."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "config"


def jobctl(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(socket), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.slow
def test_drop_a_csv_and_the_pipeline_runs(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", symlinks=True)
    cfg = tmp_path / "config" / "jobd.toml"  # the dashboard on a free port, not 8750
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:8750"', '"127.0.0.1:0"'))
    var = tmp_path / "var"
    sock = var / "jobd.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(tmp_path / "config" / "jobd.toml")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while jobctl(sock, "status").returncode != 0:
            assert time.monotonic() < deadline and daemon.poll() is None, "no daemon"
            time.sleep(0.1)
        listed = json.loads(jobctl(sock, "--json", "list").stdout)
        ids = {j["job_id"] for j in (listed["jobs"] if isinstance(listed, dict) else listed)}
        assert {"heartbeat", "transform", "report"} <= ids

        (var / "inbox").mkdir(parents=True, exist_ok=True)
        (var / "inbox" / "fruit.csv").write_text("name,qty\napples,3\npears,5\n")

        deadline = time.monotonic() + 30
        while True:
            out = jobctl(sock, "--json", "runs", "report")
            runs = json.loads(out.stdout) if out.returncode == 0 else []
            runs = runs["runs"] if isinstance(runs, dict) else runs
            if any(r["state"] == "succeeded" for r in runs):
                break
            assert time.monotonic() < deadline, (out, daemon.poll())
            time.sleep(0.2)
        report = runs[0]
        transform = json.loads(jobctl(sock, "--json", "runs", "transform").stdout)
        transform = transform["runs"] if isinstance(transform, dict) else transform
        assert transform[0]["state"] == "succeeded" and transform[0]["trigger"] == "watch"
        assert report["trigger"] == "needs"
        assert report["flow_id"] == transform[0]["flow_id"] is not None
        assert "transform success, 2 rows" in (var / "outbox" / "report.log").read_text()
        human = jobctl(sock, "runs")
        assert human.returncode == 0 and "FLOW" in human.stdout.splitlines()[0]
        [line] = [
            ln
            for ln in human.stdout.splitlines()
            if ln.split()[:2] == [str(report["run_id"]), "report"]
        ]
        assert report["flow_id"] in line.split()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
