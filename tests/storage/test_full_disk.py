"""A full disk under a running daemon: it stays up, logs one clear error, refuses manual
runs while it lasts, loses no accepted trigger and no time slot, and resumes by itself once
space is freed."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.slots import EPOCH, every_slots

from .conftest import jobctl, wait_for, write_config
from .test_startup import fill


@pytest.mark.slow
def test_daemon_survives_a_full_disk(tmpfs: Callable[..., Path], tmp_path: Path) -> None:
    state = tmpfs("state", "4m")
    ledger = tmp_path / "ledger"
    cfg = write_config(
        tmp_path,
        state,
        f"""
        [jobs.tick]
        every = "1s"
        catchup = "all"
        command = "echo $JOBD_SCHEDULED_FOR >> {ledger}"
        """,
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(cfg), "--log-level", "INFO"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: (tmp_path / "jobd.sock").exists(), 20, "no socket")
        started = datetime.now(UTC)
        time.sleep(2)
        fill(state / "filler")
        time.sleep(3)
        assert proc.poll() is None, log.read_text()[-3000:]
        refused = jobctl(cfg, "run", "tick")
        assert refused.returncode == 2 and "journal cannot be written now" in refused.stderr, (
            refused
        )
        (state / "filler").unlink()
        # the journal retries its writes (backing off up to 5 s): it resumes by itself
        wait_for(
            lambda: '"journal_fault": null' in jobctl(cfg, "status", "--json").stdout,
            15,
            "the journal did not resume",
        )
        resumed = jobctl(cfg, "run", "tick", "--wait")
        assert resumed.returncode == 0, resumed
        time.sleep(2)
        stopped = datetime.now(UTC)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text
    assert len([line for line in text.splitlines() if "cannot write:" in line]) == 1, text
    assert "writes go through again" in text

    db = sqlite3.connect(state / "jobd.db")
    rows = db.execute(
        "SELECT scheduled_for, state FROM runs WHERE job_id = 'tick' AND scheduled_for IS NOT NULL"
    ).fetchall()
    db.close()
    done = {EPOCH + timedelta(microseconds=us) for us, st in rows if st == "succeeded"}
    expected = every_slots(
        "tick", 1, started + timedelta(seconds=1), stopped - timedelta(seconds=1)
    )
    missing = [s.isoformat() for s in expected if s not in done]
    assert len(expected) >= 4 and not missing, missing
