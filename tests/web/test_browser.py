"""The dashboard in a real browser: Debian's headless Chromium driven through its
chromedriver (Selenium; nothing downloaded) against a real daemon on the example config.

Screenshots go to ``$JOBD_SCREENSHOTS`` when set (``JOBD_SCREENSHOTS=docs/img`` refreshes the
ones docs/dashboard.md shows), else to the test's temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from jobd._enums import RunState, TriggerKind
from jobd.config.loader import load_config, load_jobs
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import SQLiteJournal
from jobd.triggers.catchup import slots_between
from tests.web.test_process import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
EXAMPLE_JOBS = (
    "alert",
    "heartbeat",
    "jobd-example-app:app-report",
    "nightly-cleanup",
    "report",
    "transform",
)
TOKEN = "browser-test-token-0123456789"
EXTRA_JOBS = """\
[jobs.doomed]
command = "echo about to fail; exit 1"

[jobs.chatty]
command = ["sh", "-c", "echo line one; sleep 1.5; echo 'line two <b>not bold</b>'; sleep 30"]
"""
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
    "--hide-scrollbars",
)

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; .ci/run does)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.chrome.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


class Jobd:
    def __init__(self, root: Path, proc: subprocess.Popen[str], url: str) -> None:
        self.root, self.proc, self.url = root, proc, url
        self.socket = root / "var" / "jobd.sock"

    def jobctl(self, *args: str) -> Any:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobd.cli.jobctl",
                "--socket",
                str(self.socket),
                "--json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode in (0, 1), out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def jobd(tmp_path: Path) -> Iterator[Jobd]:
    shutil.copytree(REPO / "config", tmp_path / "config", symlinks=True)
    port = free_port()
    (tmp_path / "config" / "token").write_text(TOKEN + "\n")
    os.chmod(tmp_path / "config" / "token", 0o600)
    cfg = tmp_path / "config" / "jobd.toml"
    text = cfg.read_text().replace('"127.0.0.1:8750"', f'"127.0.0.1:{port}"')
    cfg.write_text(text + 'token_file = "token"\n')  # a token: logs are shown
    (tmp_path / "config" / "jobs.d" / "zz-browser.toml").write_text(EXTRA_JOBS)
    anyio.run(seed_history, cfg)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOBD_CONFIG")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", "--config", str(cfg)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    d = Jobd(tmp_path, proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while (
            not d.socket.exists()
            or subprocess.run(
                [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(d.socket), "status"],
                capture_output=True,
                timeout=30,
            ).returncode
            != 0
        ):
            assert proc.poll() is None and time.monotonic() < deadline, "no daemon"
            time.sleep(0.1)
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="jobd-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def seed_history(cfg: Path) -> None:
    """The last hour as the journal would hold it: heartbeats on their slots with a
    ten-minute gap (the daemon was down), a few failures, and a pipeline flow every 12 min."""
    config = load_config(cfg)
    jobs = load_jobs(config).jobs
    now = datetime.now(UTC)
    slots = slots_between(
        jobs["heartbeat"].time_triggers,
        now - timedelta(hours=1),
        now - timedelta(seconds=30),
        limit=1000,
    )
    async with SQLiteJournal(config.journal_path) as journal:
        runs = []
        for n, slot in enumerate(slots):
            if now - timedelta(minutes=35) < slot < now - timedelta(minutes=25):
                continue  # down: these slots were missed
            state = RunState.FAILED if n % 37 == 5 else RunState.SUCCEEDED
            runs.append(
                RunRecord(
                    run_id=journal.new_run_id(),
                    job_id="heartbeat",
                    trigger=TriggerKind.EVERY,
                    state=state,
                    queued_at=slot,
                    scheduled_for=slot,
                    started_at=slot,
                    finished_at=slot + timedelta(seconds=1 + n % 4),
                    exit_code=int(state is RunState.FAILED),
                )
            )
        for k in range(5):
            t = now - timedelta(minutes=58 - 12 * k)
            root = journal.new_run_id()
            failed = k == 2
            runs.append(
                RunRecord(
                    run_id=root,
                    job_id="transform",
                    trigger=TriggerKind.WATCH,
                    flow_id=str(root),
                    state=RunState.FAILED if failed else RunState.SUCCEEDED,
                    queued_at=t,
                    started_at=t,
                    finished_at=t + timedelta(seconds=40),
                    exit_code=int(failed),
                )
            )
            after = t + timedelta(seconds=41)
            for job, runs_it in (("report", not failed), ("alert", failed)):
                runs.append(
                    RunRecord(
                        run_id=journal.new_run_id(),
                        job_id=job,
                        trigger=TriggerKind.NEEDS,
                        flow_id=str(root),
                        queued_at=after,
                        state=RunState.SUCCEEDED
                        if runs_it
                        else RunState.UPSTREAM_FAILED
                        if job == "report"
                        else RunState.SKIPPED,
                        started_at=after if runs_it else None,
                        finished_at=after + timedelta(seconds=70 if runs_it else 0),
                        exit_code=0 if runs_it else None,
                        message=None if runs_it else "trigger rule: not met",
                    )
                )
        await journal.put_runs(runs)


def wait(
    driver: WebDriver, what: Callable[[WebDriver], Any], message: str, within: float = 15
) -> Any:
    return WebDriverWait(driver, within, poll_frequency=0.1).until(what, message)


def colour(driver: WebDriver, css: str, prop: str) -> str:
    return str(
        driver.execute_script(
            "return getComputedStyle(document.querySelector(arguments[0]))[arguments[1]]", css, prop
        )
    )


def rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def until_done(jobd: Jobd, job: str, within: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        runs = jobd.jobctl("runs", job)
        runs = runs["runs"] if isinstance(runs, dict) else runs
        if runs and runs[0]["state"] not in ("queued", "running"):
            return dict(runs[0])
        assert time.monotonic() < deadline, f"{job} did not finish"
        time.sleep(0.1)


def test_dashboard_in_chromium(jobd: Jobd, browser: WebDriver, tmp_path: Path) -> None:
    from jobd.web.views import STATE_COLOURS

    shots = Path(os.environ.get("JOBD_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)

    # The token once in the URL: the dashboard sets its cookie and drops it from the address.
    browser.get(f"{jobd.url}/?token={TOKEN}")
    assert browser.current_url == f"{jobd.url}/"
    rows = browser.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr[data-job]")
    listed = {r.get_attribute("data-job") for r in rows}
    assert set(EXAMPLE_JOBS) <= listed, listed

    # Live: once the page's event stream is open, a failed run turns its row red, no reload.
    wait(browser, lambda b: b.find_element(By.ID, "live").is_displayed(), "no event stream")
    marker = browser.execute_script("return window.jobdMarker = 'same page'")
    jobd.jobctl("run", "doomed")
    row = 'tr[data-job="doomed"]'
    wait(
        browser,
        lambda b: (
            "st-failed" in (b.find_element(By.CSS_SELECTOR, row).get_attribute("class") or "")
        ),
        "row not red",
    )
    assert browser.execute_script("return window.jobdMarker") == marker  # not reloaded
    assert colour(browser, row + " td.state", "backgroundColor") == rgb(STATE_COLOURS["failed"])
    assert browser.find_element(By.CSS_SELECTOR, row + " td.state").text == "failed"

    # The example pipeline: a CSV in the inbox; transform, then report, alert skipped.
    (jobd.root / "var" / "inbox").mkdir(parents=True, exist_ok=True)
    (jobd.root / "var" / "inbox" / "fruit.csv").write_text("name,qty\napples,3\npears,5\n")
    report = until_done(jobd, "report")
    until_done(jobd, "alert")
    browser.save_screenshot(str(shots / "jobs.png"))
    browser.get(f"{jobd.url}/flows/{report['flow_id']}")
    nodes = browser.find_elements(By.CSS_SELECTOR, "svg.graph g.node")
    edges = browser.find_elements(By.CSS_SELECTOR, "svg.graph g.edge")
    assert len(nodes) == 3 and len(edges) == 2
    states = {n.get_attribute("data-job"): n.get_attribute("data-state") for n in nodes}
    assert states == {"transform": "succeeded", "report": "succeeded", "alert": "skipped"}
    for job, state in states.items():
        fill = colour(browser, f'g.node[data-job="{job}"] rect', "fill")
        assert fill == rgb(STATE_COLOURS[str(state)]), (job, fill)
    rules = {
        (e.get_attribute("data-up"), e.get_attribute("data-down")): e.find_element(
            By.CSS_SELECTOR, "text"
        ).text
        for e in edges
    }
    assert rules == {("transform", "report"): "all_success", ("transform", "alert"): "one_failed"}
    browser.save_screenshot(str(shots / "flow.png"))

    # A run's log, followed while it runs.
    run = jobd.jobctl("run", "chatty")
    run_id = (run.get("run") or run)["run_id"]
    browser.get(f"{jobd.url}/runs/{run_id}")
    wait(browser, lambda b: "line one" in b.find_element(By.ID, "log").text, "no first line")
    assert browser.find_element(By.ID, "run-state").text == "running"
    wait(
        browser,
        lambda b: "line two <b>not bold</b>" in b.find_element(By.ID, "log").text,
        "the log was not followed",
    )
    assert browser.find_elements(By.CSS_SELECTOR, "#log b") == []  # text, not markup
    assert browser.find_element(By.ID, "run-state").text == "running"
    browser.save_screenshot(str(shots / "run.png"))
    jobd.jobctl("cancel", str(run_id))
    wait(
        browser,
        lambda b: b.find_element(By.ID, "run-state").text == "cancelled",
        "the state did not follow",
    )

    for name, page in (
        ("runs", "/runs"),
        ("timeline", "/timeline?hours=1"),
        ("job", "/jobs/transform"),
        ("why", "/why/report"),
    ):
        browser.get(jobd.url + page)
        assert browser.find_elements(By.TAG_NAME, "h1"), page
        if name == "timeline":  # bars by state, and the marks of the seeded hour
            bars = browser.find_elements(By.CSS_SELECTOR, "#timeline rect.bar")
            assert {"st-failed", "st-succeeded", "st-cancelled"} <= {
                c for b in bars for c in (b.get_attribute("class") or "").split()
            }
            lane = '#timeline g.lane[data-job="heartbeat"] text.mark.missed'
            assert len(browser.find_elements(By.CSS_SELECTOR, lane)) >= 55  # 10 min of 10 s
            assert browser.find_elements(By.CSS_SELECTOR, "#timeline text.mark.skipped")
        browser.save_screenshot(str(shots / f"{name}.png"))
    logs = browser.get_log("browser")  # type: ignore[no-untyped-call]
    assert [entry for entry in logs if entry.get("level") == "SEVERE"] == []
