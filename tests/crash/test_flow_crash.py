"""A flow cut by SIGKILL mid-way completes after a restart, and no finished step re-runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio

from jobd._enums import RunState, TriggerKind
from jobd.control.protocol import Client
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import SQLiteJournal


def start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def client(sock: Path) -> Client:
    deadline = time.monotonic() + 20
    while True:
        try:
            c = Client(sock, timeout=10)
            c.call("status")
            return c
        except OSError:
            assert time.monotonic() < deadline, "daemon did not come up"
            time.sleep(0.05)


async def flow_runs(db: Path, flow_id: str) -> list[RunRecord]:
    async with SQLiteJournal(db) as j:
        return sorted(await j.list_runs(flow_id=flow_id, limit=None), key=lambda r: r.run_id)


def test_sigkill_mid_flow(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "flow.toml").write_text(
        textwrap.dedent(f"""\
        [jobs.extract]
        command = "echo extract >> {ledger}"
        [jobs.transform]
        needs = ["extract"]
        command = "echo transform-start >> {ledger}; sleep 1.5; echo transform-end >> {ledger}"
        kill_grace = "200ms"
        [jobs.load]
        needs = ["transform"]
        command = "echo load >> {ledger}"
        """)
    )
    cfg = tmp_path / "jobd.toml"
    cfg.write_text('[daemon]\njobs_dir = "jobs.d"\nstate_dir = "var"\nsocket = "var/jobd.sock"\n')
    sock, db, log = tmp_path / "var" / "jobd.sock", tmp_path / "var" / "jobd.db", tmp_path / "log"

    daemon = start(cfg, log)
    try:
        with client(sock) as c:
            root = c.call("run", job_id="extract")
        flow_id = str(root.get("run", root)["run_id"])
        deadline = time.monotonic() + 10
        while "transform-start" not in (ledger.read_text() if ledger.exists() else ""):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        daemon.send_signal(signal.SIGKILL)  # transform is running, load not yet triggered
        daemon.wait(10)

        daemon = start(cfg, log)
        with client(sock) as c:
            deadline = time.monotonic() + 20
            while True:
                runs = c.call("runs", job_id="load", limit=5)
                runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
                if any(r["state"] == "succeeded" for r in runs):
                    break
                assert time.monotonic() < deadline, runs
                time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)

    lines = ledger.read_text().split()
    assert lines.count("extract") == 1  # finished before the kill: never again
    assert lines.count("load") == 1  # once per flow
    assert lines.count("transform-end") == 1  # the interrupted step re-ran to its end once
    runs = anyio.run(flow_runs, db, flow_id)
    by_job = {r.job_id: r for r in runs}
    assert len(runs) == 3 and all(r.state is RunState.SUCCEEDED for r in runs)
    assert by_job["transform"].trigger is TriggerKind.RECOVERY
    assert by_job["transform"].attempt == 2
    assert by_job["load"].trigger is TriggerKind.NEEDS
