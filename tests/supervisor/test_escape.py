"""A job cannot outlive its run: a job that double-forks and calls ``setsid`` leaves its
process group, and is still stopped at the run's end, on timeout, on cancel and at recovery
(by its cgroup leaf where the daemon has one, by its marker otherwise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from jobd._enums import RunState
from jobd.config.model import DaemonConfig
from jobd.executors.contain import Containment, delegated_cgroup, instance_tag
from jobd.executors.local import LocalExecutor
from jobd.supervisor.daemon import Daemon

from .conftest import settle, started, write_config

MakeConfig = Callable[..., DaemonConfig]

# The escapee: a subshell forks setsid, which starts a new session and writes its pid.
ESCAPE = (
    "(setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' &) ; "
    "while [ ! -s {pidfile} ]; do sleep 0.01; done"
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def gone(pid: int, within: float = 10) -> None:
    with anyio.fail_after(within):
        while alive(pid):  # noqa: ASYNC110 (another process: nothing to wait on)
            await anyio.sleep(0.02)


def escapee(pidfile: Path) -> int:
    pid = int(pidfile.read_text())
    assert os.getpgid(pid) != os.getpgid(os.getpid())
    return pid


CONTAINMENTS = {
    "marker": lambda: Containment(None),
    "cgroup": lambda: Containment(delegated_cgroup()),
}


@pytest.fixture(params=sorted(CONTAINMENTS))
def executor(request: pytest.FixtureRequest) -> LocalExecutor:
    c = CONTAINMENTS[request.param]()
    if request.param == "cgroup" and c.base is None:
        pytest.skip("no delegated cgroup v2 here (needs a writable own cgroup)")
    return LocalExecutor(containment=c)


@pytest.mark.parametrize("how", ["exit", "timeout", "cancel"])
async def test_setsid_escapee_is_stopped(
    make_config: MakeConfig, tmp_path: Path, executor: LocalExecutor, how: str
) -> None:
    pidfile = tmp_path / "escapee.pid"
    tail = {"exit": "true", "timeout": "sleep 30", "cancel": "sleep 30"}[how]
    config = make_config(f"""
        [jobs.escape]
        command = "{ESCAPE.format(pidfile=pidfile)}; {tail}"
        timeout = "1s"
        kill_grace = "200ms"
        """)
    daemon = Daemon(
        config, executor=executor, control=False, watch_jobs_dir=False, handle_signals=False
    )
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(10):
            await tg.start(daemon.run)
        run = await daemon.run_job("escape", {})
        await started(daemon, run.run_id)
        with anyio.fail_after(10):
            while not pidfile.exists() or not pidfile.read_text().strip():  # noqa: ASYNC110
                await anyio.sleep(0.02)
        pid = escapee(pidfile)
        if how == "cancel":
            await daemon.cancel_run(run.run_id)
        await settle(daemon, 15)
        await gone(pid)
        done = await daemon.journal.get_run(run.run_id)
        assert done is not None
        assert (
            done.state
            is {
                "exit": RunState.SUCCEEDED,
                "timeout": RunState.TIMED_OUT,
                "cancel": RunState.CANCELLED,
            }[how]
        )
        text = await anyio.Path(done.log_path or "").read_text()
        assert "outlived the run's process group" in text
        daemon.stop()
    base = executor.contained().base
    if base is not None:
        assert not list(base.glob(f"jobd-{instance_tag(daemon.instance)}-*"))


@pytest.mark.slow
def test_setsid_escapee_is_stopped_at_recovery(tmp_path: Path) -> None:
    """kill -9 the daemon while the run runs; the next start stops the escapee."""
    pidfile = tmp_path / "escapee.pid"
    cfg = write_config(
        tmp_path,
        f"""
        [jobs.escape]
        command = "{ESCAPE.format(pidfile=pidfile)}; sleep 300"
        kill_grace = "200ms"
        """,
    )
    log = (tmp_path / "daemon.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    first = start()
    try:
        sock = tmp_path / "var" / "jobd.sock"
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        subprocess.run(
            [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(sock), "run", "escape"],
            check=True,
            capture_output=True,
            timeout=20,
        )
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pid = escapee(pidfile)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert alive(pid)
    second = start()
    try:
        anyio.run(gone, pid, 20.0)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
        log.close()


def zombies_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if len(fields) > 1 and fields[0] == "Z" and fields[1] == str(pid):
            out.append(int(entry))
    return out


@pytest.mark.slow
def test_daemon_reaps_the_escapees_it_stops(tmp_path: Path) -> None:
    """The daemon is a child subreaper: the orphaned escapee comes to it, is stopped at the
    run's end, and is reaped (no zombie left under the daemon)."""
    pidfile = tmp_path / "escapee.pid"
    cfg = write_config(
        tmp_path,
        f"""
        [jobs.escape]
        command = "{ESCAPE.format(pidfile=pidfile)}"
        kill_grace = "200ms"
        """,
    )
    with (tmp_path / "daemon.log").open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        sock = tmp_path / "var" / "jobd.sock"
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.05)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobd.cli.jobctl",
                "--socket",
                str(sock),
                "run",
                "escape",
                "--wait",
            ],
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 0, done
        pid = int(pidfile.read_text())
        deadline = time.monotonic() + 10
        while alive(pid) or zombies_of(daemon.pid):
            assert time.monotonic() < deadline, (alive(pid), zombies_of(daemon.pid))
            time.sleep(0.05)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
