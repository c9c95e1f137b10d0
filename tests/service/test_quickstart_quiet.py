"""The README's quick start, left alone: only jobd's own lines in its log, and a watch of a path
that does not exist yet (var/inbox) does not fire when its parent (var/, where the journal is
written on every run) changes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.service.test_logs import jobctl

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_quick_start_logs_only_jobd_and_the_missing_inbox_stays_quiet(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config", symlinks=True)
    cfg = tmp_path / "config" / "jobd.toml"  # the dashboard on a free port, not 8750
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:8750"', '"127.0.0.1:0"'))
    assert '"127.0.0.1:0"' in cfg.read_text()
    var, err = tmp_path / "var", tmp_path / "stderr"
    sock = var / "jobd.sock"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG", "JOURNAL_STREAM", "JOBD_LOG_LEVEL")
    }
    with err.open("wb") as f:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(tmp_path / "config" / "jobd.toml")],
            env=env,
            stderr=f,
        )
    try:
        deadline = time.monotonic() + 20
        while jobctl(sock, "status").returncode != 0:
            assert time.monotonic() < deadline and daemon.poll() is None, err.read_text()
            time.sleep(0.05)
        assert not (var / "inbox").exists()
        for i in range(3):  # each run writes the journal in var/, the inbox's parent
            assert jobctl(sock, "run", "heartbeat", "--wait").returncode == 0
            (var / f"note{i}.csv").write_text("name,qty\n")  # matches *.csv, not in the inbox
        time.sleep(1.0)  # transform's debounce is 500ms: a wrong trigger would have fired
        out = jobctl(sock, "--json", "runs", "transform")
        assert out.returncode == 0, out.stderr
        runs = json.loads(out.stdout)
        assert (runs["runs"] if isinstance(runs, dict) else runs) == []
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    lines = err.read_text().splitlines()
    loggers = {line.split()[3].rstrip(":") for line in lines}
    assert loggers and all(name == "jobd" or name.startswith("jobd.") for name in loggers), lines
    assert sum("job 'heartbeat' succeeded" in line for line in lines) >= 3
