"""Least disclosure on a real daemon: a second uid outside the socket's group sees no ``env``
values, and every log and output file is 0640 in 0750 directories whoever writes first (the
daemon runs with umask 0 here, so the modes come from jobd itself)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.conftest import REPO, run_jobctl
from tests.control.test_auth import NOBODY, jobctl_as

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another uid")

CONFIG = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
socket_mode = "0666"
"""
JOBS = """\
[jobs.secret]
command = 'echo out; echo "mode=$(stat -c %a "$JOBD_OUTPUT")" >> "$JOBD_OUTPUT"'
env = { TOKEN = "s3cr3t-value", PLAIN = "also-hidden" }

[jobs.staged]
stages = [{ name = "one", command = "true", env = { STAGE_TOKEN = "st4ge-value" } }]

[jobs.quiet]
command = "exit 3"

[jobs.asuser]
user = "nobody"
command = 'echo hello; echo "mode=$(stat -c %a "$JOBD_OUTPUT") who=$(id -u)" >> "$JOBD_OUTPUT"'
"""


def _umask0() -> None:
    os.umask(0)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="jobd-disc-"))
    root.chmod(0o755)  # nobody must reach the socket
    (root / "jobs.d").mkdir()
    (root / "jobd.toml").write_text(CONFIG)
    (root / "jobs.d" / "jobs.toml").write_text(JOBS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("JOBD_SOCKET", None)
    err = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(root / "jobd.toml")],
        cwd=root,
        env=env,
        stdout=err,
        stderr=err,
        preexec_fn=_umask0,
    )
    try:
        deadline = time.monotonic() + 15
        while run_jobctl("--socket", str(root / "var" / "jobd.sock"), "status").returncode:
            assert proc.poll() is None, (root / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.1)
        yield root
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def _sock(root: Path) -> str:
    return str(root / "var" / "jobd.sock")


def test_a_reader_outside_the_group_sees_env_names_only(daemon: Path) -> None:
    for job, secrets in (("secret", ["s3cr3t-value", "also-hidden"]), ("staged", ["st4ge-value"])):
        code, out, err = jobctl_as(NOBODY, NOBODY, "--socket", _sock(daemon), "--json", "show", job)
        assert code == 0, err
        for secret in secrets:
            assert secret not in out
        code, human, err = jobctl_as(NOBODY, NOBODY, "--socket", _sock(daemon), "show", job)
        assert code == 0, err
        for secret in secrets:
            assert secret not in human
        root_view = run_jobctl("--socket", _sock(daemon), "--json", "show", job)
        for secret in secrets:
            assert secret in root_view.stdout  # root may change it: it sees them
    shown = json.loads(
        jobctl_as(NOBODY, NOBODY, "--socket", _sock(daemon), "--json", "show", "secret")[1]
    )
    assert shown["definition"]["env"] == {"TOKEN": "<hidden>", "PLAIN": "<hidden>"}
    code, out, _ = jobctl_as(NOBODY, NOBODY, "--socket", _sock(daemon), "--json", "list")
    assert code == 0 and "s3cr3t" not in out


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_logs_and_outputs_are_private_whoever_writes_first(daemon: Path) -> None:
    runs = {}
    for job in ("secret", "quiet", "asuser", "staged"):
        out = run_jobctl("--socket", _sock(daemon), "--json", "run", "--wait", job, timeout=30)
        runs[job] = json.loads(out.stdout.strip().splitlines()[-1])["run"]
    var = daemon / "var"
    assert runs["secret"]["outputs"] == {"mode": "640"}  # the job wrote into a 0640 file
    assert runs["asuser"]["outputs"] == {"mode": "640 who=65534"}
    assert _mode(var / "logs") == 0o750
    assert _mode(var / "outputs") == 0o711  # runs of other users reach their own file only
    logs = [p for p in (var / "logs").rglob("*") if p.is_file()]
    # "quiet": its log's first write is jobd's own note; "secret": the job's output
    assert {p.parent.name for p in logs} >= {"secret", "quiet", "asuser", "staged"}
    for path in logs:
        assert _mode(path) == 0o640, path
        assert _mode(path.parent) == 0o750, path.parent
    assert (
        "attempt 1 ended"
        in (var / "logs" / "quiet").joinpath(f"{runs['quiet']['run_id']}.log").read_text()
    )
    # The journal holds them now; the runner removes each file just after the final write
    # that `run --wait` saw, so give that removal a moment.
    deadline = time.monotonic() + 5
    while list((var / "outputs").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list((var / "outputs").iterdir()) == []
