"""The daemon SIGKILLed at each named step of a run's life (``JOBD_TEST_CRASH_AT``, a
test-only hook), then restarted: each (run, attempt) started at most once, no finished run
started again, every time slot has a finished run of its own (``catchup = "all"``), a watched
change is not lost, and ``JOBD_RUN_KEY`` is one per slot and cell, across attempts and
recovery. Expected slots come from the offset rule written out in tests/slots.py."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobd._crashpoints import CRASH_VAR, POINTS
from tests.slots import EPOCH, every_slots

LINE = (
    "echo start $JOBD_RUN_ID $JOBD_ATTEMPT $JOBD_RUN_KEY "
    "${{JOBD_SCHEDULED_FOR:--}} ${{JOBD_MATRIX_N:--}} >> {ledger}"
)

JOBS = """\
[jobs.tick]
every = "1s"
catchup = "all"
kill_grace = "300ms"
command = "{line}; sleep 0.2; echo end $JOBD_RUN_ID >> {ledger}"

[jobs.cells]
every = "2s"
catchup = "all"
matrix = {{ n = ["1", "2"] }}
command = "{line}"

[jobs.inbox]
watch = ["{inbox}/*.txt"]
command = "{line}; echo $JOBD_CHANGED_PATHS >> {seen}"
"""


def start(cfg: Path, log: Path, crash: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", CRASH_VAR)}
    if crash is not None:
        env[CRASH_VAR] = crash
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def rows(db: Path) -> list[tuple[int, str, str, int | None, int]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(
            "SELECT run_id, job_id, state, scheduled_for, attempt FROM runs"
        ).fetchall()
    finally:
        con.close()


def cursors(db: Path) -> dict[str, datetime]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {
            j: EPOCH + timedelta(microseconds=us)
            for j, us in con.execute("SELECT job_id, slot FROM cursors")
        }
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_crash_at_a_named_point(tmp_path: Path, point: str) -> None:
    ledger, seen, inbox = tmp_path / "ledger", tmp_path / "seen", tmp_path / "inbox"
    inbox.mkdir()
    ledger.touch()
    seen.touch()
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "jobs.toml").write_text(
        JOBS.format(line=LINE.format(ledger=ledger), ledger=ledger, inbox=inbox, seen=seen)
    )
    cfg = tmp_path / "jobd.toml"
    cfg.write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        shutdown_grace = "5s"
        timezone = "UTC"
        """)
    )
    db, log = tmp_path / "var" / "jobd.db", tmp_path / "daemon.log"

    first = start(cfg, log, point)
    deadline = time.monotonic() + 20
    # A slow start-up may meet the first slot, and so the crash point, before the socket.
    while not (tmp_path / "var" / "jobd.sock").exists() and first.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.02)
    # A change counts once the watch's baseline is journaled (its "inbox:watch" cursor comes
    # after the manifest; a job seen for the first time starts fresh). When the first life
    # crashes before that, the change predates every baseline and is not expected to run.
    baseline = False
    while first.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error):  # not migrated yet
            baseline = db.exists() and "inbox:watch" in cursors(db)
        if baseline:
            break
        time.sleep(0.02)
    (inbox / "a.txt").write_text("a")  # while down, it triggers at the next start
    assert first.wait(20) == -signal.SIGKILL, f"never passed {point}"

    # A job's slots count from its first journaled cursor (a job seen for the first time
    # starts fresh); one that the first life never journaled starts in the second.
    firsts = cursors(db) if db.exists() else {}
    second = start(cfg, log, None)
    fresh = datetime.now(UTC) + timedelta(seconds=2)
    window_end = datetime.now(UTC) + timedelta(seconds=1)
    expected = {
        "tick": every_slots("tick", 1, firsts.get("tick", fresh), window_end),
        "cells": every_slots("cells", 2, firsts.get("cells", fresh), window_end),
    }
    try:
        deadline = time.monotonic() + 30
        status = ""
        while True:
            assert time.monotonic() < deadline, f"the restarted daemon did not catch up: {status}"
            assert second.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
            if not db.exists():
                continue
            done: dict[str, Counter[int]] = defaultdict(Counter)
            unfinished = 0
            for _rid, job, state, slot, _attempt in rows(db):
                if state in ("queued", "running"):
                    unfinished += 1
                elif slot is not None:
                    done[job][slot] += 1
            watch_done = any(
                job == "inbox" and state == "succeeded" for _, job, state, _, _ in rows(db)
            )
            have = all(
                all(
                    done[j][int((s - EPOCH) / timedelta(microseconds=1))]
                    >= (2 if j == "cells" else 1)
                    for s in slots
                )
                for j, slots in expected.items()
            )
            status = f"slots {have}, watch {watch_done}, unfinished {unfinished}, {dict(done)}"
            if have and (watch_done or not baseline) and unfinished == 0:
                break
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(30)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]

    # Each (run, attempt) started at most once; keys per slot and cell, across attempts.
    starts = [line.split() for line in ledger.read_text().splitlines() if line.startswith("start ")]
    twice = [k for k, n in Counter((s[1], s[2]) for s in starts).items() if n > 1]
    assert not twice, f"(run, attempt) started twice: {twice}"
    key_of: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    jobs_of_run = {str(rid): job for rid, job, _, _, _ in rows(db)}
    for _, run, _try, key, when, cell in starts:
        key_of[(jobs_of_run.get(run, "?"), when if when != "-" else f"run {run}", cell)].add(key)
    assert all(len(keys) == 1 for keys in key_of.values()), key_of
    all_keys = [next(iter(keys)) for keys in key_of.values()]
    assert len(all_keys) == len(set(all_keys)), "two slots or cells share a key"
    if point in ("after-spawn", "after-exit"):  # the crashed attempt ran, then its re-run
        assert any(int(s[2]) == 2 for s in starts), starts

    # The watched change ran, and no finished run started again after it finished.
    assert not baseline or str(inbox / "a.txt") in seen.read_text()
    assert all(state in ("succeeded",) for _, _, state, _, _ in rows(db)), rows(db)
