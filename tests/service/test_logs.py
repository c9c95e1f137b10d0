"""The daemon's own log: plain lines for people, ``<N>`` lines for journald, a line per finished
run, and no third-party chatter.

Priorities are syslog's (sd-daemon(3), syslog(3)): 2 crit, 3 err, 4 warning, 6 info, 7 debug.
"""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord
from jobd.logs import (
    JournaldFormatter,
    configure,
    journal_stream_matches,
    run_end,
    syslog_priority,
    to_journald,
)

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 2, 0, 1, 500_000, tzinfo=UTC)
STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


# --- pure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
    ],
)
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8:12345", True),
        ("8:12346", False),
        ("9:12345", False),
        ("", False),
        (None, False),
        ("8", False),
        ("8:x", False),
        ("x:12345", False),
    ],
)
def test_journal_stream_must_name_this_stream(value: str | None, expected: bool) -> None:
    assert journal_stream_matches(value, 8, 12345) is expected


def test_journald_lines_have_a_priority_each_and_no_time() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "jobd.runner", logging.ERROR, __file__, 1, "run %s failed", (7,), sys.exc_info()
        )
    lines = JournaldFormatter().format(record).splitlines()
    assert lines[0] == "<3>jobd.runner: run 7 failed"
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert not any(STAMP.search(line) for line in lines)


def _run(**kw: object) -> RunRecord:
    base: dict[str, object] = dict(
        run_id=42,
        job_id="nightly",
        trigger=TriggerKind.CRON,
        state=RunState.SUCCEEDED,
        queued_at=T0,
        started_at=T0,
        finished_at=T1,
        exit_code=0,
        log_path="/var/lib/jobd/logs/nightly/42.log",
    )
    base.update(kw)
    return RunRecord(**base)  # type: ignore[arg-type]


def test_a_successful_run_ends_at_info() -> None:
    assert run_end(_run()) == (
        logging.INFO,
        "run 42 of job 'nightly' succeeded, trigger cron, exit code 0, in 1.500s",
    )


def test_a_failed_run_ends_at_error_with_its_log() -> None:
    run = _run(
        state=RunState.FAILED,
        exit_code=3,
        attempt=2,
        trigger=TriggerKind.MANUAL,
        message="exit code 3",
    )
    assert run_end(run) == (
        logging.ERROR,
        "run 42 of job 'nightly' failed, trigger manual, attempt 2, exit code 3, "
        "in 1.500s: exit code 3; log /var/lib/jobd/logs/nightly/42.log",
    )


def test_timed_out_is_an_error_and_cancelled_a_warning() -> None:
    assert run_end(_run(state=RunState.TIMED_OUT, exit_code=None))[0] == logging.ERROR
    level, text = run_end(_run(state=RunState.CANCELLED, exit_code=None, message="jobctl cancel"))
    assert level == logging.WARNING
    assert text.endswith(
        "cancelled, trigger cron, in 1.500s: jobctl cancel; log /var/lib/jobd/logs/nightly/42.log"
    )


def test_upstream_failed_is_a_warning_naming_why() -> None:
    run = _run(
        state=RunState.UPSTREAM_FAILED,
        trigger=TriggerKind.NEEDS,
        started_at=None,
        exit_code=None,
        log_path=None,
        message="extract failed",
    )
    assert run_end(run) == (
        logging.WARNING,
        "run 42 of job 'nightly' upstream_failed, trigger needs: extract failed",
    )


def test_a_skipped_run_is_info_without_times() -> None:
    assert run_end(
        _run(
            state=RunState.SKIPPED,
            started_at=None,
            exit_code=None,
            message="condition is false: false",
        )
    ) == (logging.INFO, "run 42 of job 'nightly' skipped, trigger cron: condition is false: false")


# --- the logging setup ------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("watchfiles", "aiosqlite", "asyncio")}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)


def test_configure_plain_for_a_terminal_journald_for_its_stream(
    tmp_path: Path, restore_logging: None
) -> None:
    with (tmp_path / "err").open("w") as f:
        st = os.fstat(f.fileno())
        assert not to_journald(f, {})
        assert to_journald(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not to_journald(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not to_journald(io.StringIO(), {"JOURNAL_STREAM": "1:1"})  # no descriptor
        assert configure("INFO", stream=f, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("jobd").warning("careful")
        logging.getLogger("watchfiles.main").info("1 change detected")
        logging.getLogger("aiosqlite").info("chatter")
        logging.getLogger("asyncio").warning("a real problem")
    assert (tmp_path / "err").read_text() == ("<4>jobd: careful\n<4>asyncio: a real problem\n")


# --- a real daemon under a journald-like stderr -----------------------------------------

JOBS = """\
[jobs.ok]
command = "true"

[jobs.broken]
command = "echo about to fail; exit 3"
"""


def jobctl(sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _start(
    config: Path, err: Path, sock: Path, *, journal: bool
) -> tuple[subprocess.Popen[bytes], int]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG", "JOURNAL_STREAM", "JOBD_LOG_LEVEL")
    }
    f = err.open("wb")
    if journal:
        st = os.fstat(f.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(config)],
        env=env,
        stderr=f,
        stdout=subprocess.DEVNULL,
    )
    f.close()
    deadline = time.monotonic() + 20
    while jobctl(sock, "status").returncode != 0:
        assert time.monotonic() < deadline and daemon.poll() is None, err.read_text()
        time.sleep(0.05)
    return daemon, daemon.pid


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=60) == 0


def test_under_journald_a_failing_run_is_an_error_line_without_timestamps(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "t.toml").write_text(JOBS)
    config = tmp_path / "jobd.toml"
    config.write_text('[daemon]\njobs_dir = "jobs.d"\nstate_dir = "var"\nsocket = "var/s"\n')
    err, sock = tmp_path / "stderr", tmp_path / "var" / "s"
    daemon, _ = _start(config, err, sock, journal=True)
    try:
        assert jobctl(sock, "run", "ok", "--wait").returncode == 0
        assert jobctl(sock, "run", "broken", "--wait").returncode == 1
        (tmp_path / "jobs.d" / "bad.toml").write_text("[jobs.x]\ncron = '@daily'\n")
        assert jobctl(sock, "reload").returncode == 0
    finally:
        _stop(daemon)
    lines = err.read_text().splitlines()
    assert lines and all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert not any(STAMP.search(line) for line in lines), lines
    log = tmp_path / "var" / "logs" / "broken" / "2.log"
    assert "<3>jobd.runner: run 2 of job 'broken' failed, trigger manual, exit code 3" in "\n".join(
        lines
    )
    [failed] = [ln for ln in lines if "job 'broken' failed" in ln]
    assert failed.endswith(f"; log {log}") and log.is_file()
    assert any(
        ln.startswith("<6>jobd.runner: run 1 of job 'ok' succeeded, trigger manual") for ln in lines
    )
    assert any(ln.startswith("<3>") and "bad.toml" in ln for ln in lines)  # a rejected file


def test_without_journald_lines_are_stamped(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    config = tmp_path / "jobd.toml"
    config.write_text('[daemon]\njobs_dir = "jobs.d"\nstate_dir = "var"\nsocket = "var/s"\n')
    err, sock = tmp_path / "stderr", tmp_path / "var" / "s"
    daemon, _ = _start(config, err, sock, journal=False)
    _stop(daemon)
    lines = err.read_text().splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
