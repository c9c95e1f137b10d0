"""At least once, nothing lost: a real daemon process is SIGKILLed at random moments, over and
over, and restarted; then every time slot in the window must have a finished run, no run that
had finished may have run again, and no job process may outlive its run."""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from jobd._enums import RunState
from jobd.config.loader import load_config, load_jobs
from jobd.journal.sqlite import SQLiteJournal

KILLS = 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

JOBS = """\
[jobs.tick]
every = "1s"
catchup = "all"
command = "echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; echo end $JOBD_RUN_ID >> {ledger}"

[jobs.cron_seconds]
cron = "*/2 * * * * *"
catchup = "all"
command = "echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; echo end $JOBD_RUN_ID >> {ledger}"

[jobs.slow]
every = "3s"
catchup = "all"
kill_grace = "500ms"
command = "echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; sleep 2; echo end $JOBD_RUN_ID >> {ledger}"

[jobs.retrying]
every = "2s"
catchup = "all"
retries = 2
retry_delay = "100ms"
command = "echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}; test $JOBD_ATTEMPT -ge 2 && echo end $JOBD_RUN_ID >> {ledger}"
"""


@dataclass
class World:
    root: Path
    config: Path
    ledger: Path
    journal: Path
    notify: socket.socket
    notify_path: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ledger = tmp_path / "ledger"
    ledger.touch()
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "crash.toml").write_text(JOBS.format(ledger=ledger))
    cfg = tmp_path / "jobd.toml"
    cfg.write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        max_parallel = 16
        shutdown_grace = "5s"
        timezone = "UTC"
        """)
    )
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    yield World(tmp_path, cfg, ledger, tmp_path / "var" / "jobd.db", sock, notify_path)
    sock.close()


def start(w: World) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": w.notify_path, "JOBD_LOG_LEVEL": "WARNING"}
    with open(w.root / "daemon.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(w.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 20
    w.notify.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            msg = w.notify.recv(4096).decode()
        except TimeoutError:
            assert proc.poll() is None, (w.root / "daemon.log").read_text()[-3000:]
            continue
        if "READY=1" in msg:
            return proc
    proc.kill()
    raise AssertionError("daemon did not get READY in 20 s")


def marker_processes(instance: str) -> list[tuple[int, int, int]]:
    """(pid, run id, attempt) of every live process that a daemon of ``instance`` started."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        env = dict(v.split(b"=", 1) for v in raw.split(b"\0") if b"=" in v)
        if env.get(b"JOBD_INSTANCE") == instance.encode() and b"JOBD_RUN_ID" in env:
            out.append((int(entry), int(env[b"JOBD_RUN_ID"]), int(env[b"JOBD_ATTEMPT"])))
    return out


def journal_rows(path: Path) -> dict[int, tuple[str, int]]:
    """run id -> (state, attempt), read while the daemon may be running (WAL readers)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {r: (s, a) for r, s, a in db.execute("SELECT run_id, state, attempt FROM runs")}
    finally:
        db.close()


def check_no_stale_processes(w: World) -> None:
    """After recovery, no process may remain from an attempt older than the journal's."""
    instance = str(w.journal.resolve())
    procs = marker_processes(instance)
    rows = journal_rows(w.journal)
    for pid, run_id, attempt in procs:
        journaled = rows.get(run_id)
        assert journaled is not None, f"process {pid} of unjournaled run {run_id}"
        assert attempt >= journaled[1], (
            f"process {pid} of run {run_id} attempt {attempt} outlived its attempt "
            f"(journal: {journaled})"
        )


async def read_journal(
    path: Path,
) -> tuple[dict[int, tuple[RunState, datetime | None, str]], dict[str, datetime]]:
    async with SQLiteJournal(path) as j:
        runs = await j.list_runs(limit=None)
        cursors = await j.cursors()
    return {r.run_id: (r.state, r.scheduled_for, r.job_id) for r in runs}, cursors


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(world: World) -> None:
    w = world
    seed = int(os.environ.get("JOBD_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash test seed {seed}")
    finished_before: list[tuple[int, set[int]]] = []  # (ledger lines, finished run ids)
    first_cursors: dict[str, datetime] = {}
    for _ in range(KILLS):
        proc = start(w)
        check_no_stale_processes(w)
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        runs, cursors = anyio.run(read_journal, w.journal)
        for job, c in cursors.items():
            first_cursors.setdefault(job, c)
        done = {rid for rid, (state, _, _) in runs.items() if state.finished}
        finished_before.append((len(w.ledger.read_text().splitlines()), done))

    # A last life: let every slot up to the window's end finish, then drain with SIGTERM.
    proc = start(w)
    check_no_stale_processes(w)
    window_end = datetime.now(UTC) + timedelta(seconds=1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = journal_rows(w.journal)
        db = sqlite3.connect(f"file:{w.journal}?mode=ro", uri=True)
        pending = db.execute(
            "SELECT count(*) FROM runs WHERE state IN ('queued', 'running') AND scheduled_for <= ?",
            (int((window_end - EPOCH).total_seconds() * 1e6),),
        ).fetchone()[0]
        slots = dict(db.execute("SELECT job_id, slot FROM cursors").fetchall())
        db.close()
        caught_up = all(
            slots.get(j, 0) >= int((window_end - EPOCH).total_seconds() * 1e6)
            for j in ("tick", "cron_seconds", "slow", "retrying")
        )
        if rows and caught_up and pending == 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the last life did not finish the window in 30 s")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    # No job process outlived the daemon's drain.
    assert marker_processes(str(w.journal.resolve())) == []

    runs, _ = anyio.run(read_journal, w.journal)
    jobs = load_jobs(load_config(w.config)).jobs

    # 1. Every time slot in the window has a finished run.
    for job_id, first in first_cursors.items():
        if job_id not in jobs:
            continue
        got = {sched for state, sched, jid in runs.values() if jid == job_id and state.finished}
        slot = jobs[job_id].time_triggers[0].next_after(first)
        expected = []
        while slot is not None and slot <= window_end:
            expected.append(slot)
            slot = jobs[job_id].time_triggers[0].next_after(slot)
        missing = [s.isoformat() for s in expected if s not in got]
        assert not missing, f"{job_id}: slots without a finished run: {missing} (seed {seed})"
        assert len(expected) > 5

    # 2. No run that had finished ran again.
    ledger = w.ledger.read_text().splitlines()
    for offset, done in finished_before:
        again = [
            line
            for line in ledger[offset:]
            if line.startswith("start ") and int(line.split()[1]) in done
        ]
        assert not again, f"finished runs ran again: {again[:5]} (seed {seed})"

    # 3. Runs succeeded (the retrying job on its second attempt at the latest).
    states = {
        state for state, sched, _ in runs.values() if sched is not None and sched <= window_end
    }
    assert states == {RunState.SUCCEEDED}, f"{states} (seed {seed})"
