"""The example setup in config/: it passes ``jobd check`` and its jobs do what they say."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

from jobd.cli.check import run_check
from jobd.config.loader import load_config, load_jobs
from jobd.config.model import CommandAction, EntrypointAction, ScriptAction

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / "config" / "jobd.toml"


def test_example_config_passes_check() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_check(CONFIG, [], out=out, err=err) == 0
    assert err.getvalue() == ""
    assert out.getvalue() == "ok: 7 jobs in 5 files\n"


def test_example_config_stays_inside_the_checkout() -> None:
    config = load_config(CONFIG)
    assert config.state_dir == ROOT / "var" and config.socket == ROOT / "var" / "jobd.sock"
    jobs = load_jobs(config).jobs
    assert sorted(jobs) == [
        "alert",
        "heartbeat",
        "jobd-example-app:app-report",
        "nightly-cleanup",
        "notify",
        "report",
        "transform",
    ]
    assert jobs["nightly-cleanup"].on_failure == ("notify",)
    for job in jobs.values():
        assert job.workdir.is_relative_to(ROOT)
    assert jobs["transform"].watch is not None
    assert jobs["transform"].watch.patterns == (str(ROOT / "var" / "inbox" / "*.csv"),)
    assert jobs["report"].needs == ("transform",)
    assert jobs["alert"].needs == ("transform",) and jobs["alert"].trigger_rule == "one_failed"


def test_pyproject_example_is_a_symlink_into_the_project() -> None:
    link = ROOT / "config" / "jobs.d" / "pyproject-example.toml"
    assert link.is_symlink()
    assert link.resolve() == ROOT / "config" / "examples" / "pyproject.toml"
    job = load_jobs(load_config(CONFIG)).jobs["jobd-example-app:app-report"]
    assert job.action == EntrypointAction(
        entrypoint="app.jobs:report", path=(ROOT / "config" / "examples",)
    )
    code = "import sys; sys.path[:0] = [sys.argv[1]]; import app.jobs; app.jobs.report()"
    out = subprocess.run(
        [sys.executable, "-c", code, str(job.action.path[0])],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "JOBD_JOB_ID": "jobd-example-app:app-report", "JOBD_RUN_ID": "7"},
    )
    assert (
        "job jobd-example-app:app-report (run 7): " in out.stdout and "% of / is free" in out.stdout
    )


def test_heartbeat_prints_the_time() -> None:
    job = load_jobs(load_config(CONFIG)).jobs["heartbeat"]
    assert isinstance(job.action, CommandAction) and isinstance(job.action.command, str)
    out = subprocess.run(
        ["/bin/sh", "-c", job.action.command],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=job.workdir,
    )
    assert out.stdout.startswith("heartbeat at 20") and out.stdout.endswith("Z\n")


def test_cleanup_removes_only_old_files(tmp_path: Path) -> None:
    job = load_jobs(load_config(CONFIG)).jobs["nightly-cleanup"]
    assert isinstance(job.action, CommandAction) and isinstance(job.action.command, str)
    # run it from a stand-in for config/jobs.d, so ../../var/tmp is tmp_path/var/tmp
    cwd = tmp_path / "config" / "jobs.d"
    cwd.mkdir(parents=True)
    scratch = tmp_path / "var" / "tmp"
    scratch.mkdir(parents=True)
    old, new = scratch / "old.dat", scratch / "new.dat"
    old.write_text("x")
    new.write_text("y")
    week_and_a_day = time.time() - 8 * 86400
    os.utime(old, (week_and_a_day, week_and_a_day))
    subprocess.run(
        ["/bin/sh", "-c", job.action.command], cwd=cwd, check=True, timeout=30, capture_output=True
    )
    assert not old.exists() and new.exists()


def test_transform_summarises_changed_csvs(tmp_path: Path) -> None:
    job = load_jobs(load_config(CONFIG)).jobs["transform"]
    assert isinstance(job.action, ScriptAction)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "fruit.csv").write_text("name,qty\napples,3\npears,5\n")
    (inbox / "veg.csv").write_text("name,qty\nleek,1\n")
    output = tmp_path / "output"
    env = {
        **os.environ,
        "OUTBOX": str(tmp_path / "outbox"),
        "JOBD_OUTPUT": str(output),
        "JOBD_CHANGED_PATHS": f"{inbox / 'fruit.csv'}\n{inbox / 'veg.csv'}\n{inbox / 'gone.csv'}",
    }
    subprocess.run(
        [sys.executable, str(job.action.script)],
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
        cwd=tmp_path,
    )
    assert (tmp_path / "outbox" / "summary.txt").read_text() == (
        "fruit.csv: 2 rows; columns: name, qty\n"
        "veg.csv: 1 rows; columns: name, qty\n"
        "gone.csv: gone\n"
    )
    assert output.read_text() == "rows=3\n"


FAILED_FACTS = {
    "JOBD_FAILED_JOB": "nightly-cleanup",
    "JOBD_FAILED_RUN_ID": "41",
    "JOBD_FAILED_STATE": "failed",
    "JOBD_FAILED_EXIT_CODE": "2",
    "JOBD_FAILED_LOG": "/var/lib/jobd/logs/nightly-cleanup/41.log",
    "JOBD_FAILED_MESSAGE": "exit code 2",
    "JOBD_TRIGGER": "hook",
}


def _notify(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    job = load_jobs(load_config(CONFIG)).jobs["notify"]
    assert isinstance(job.action, ScriptAction)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFY_")}
    return subprocess.run(
        [sys.executable, str(job.action.script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**env, **FAILED_FACTS, **extra},
    )


def test_notifier_unconfigured_only_logs() -> None:
    out = _notify({})
    assert "job nightly-cleanup run 41 failed (exit 2): exit code 2" in out.stdout
    assert "/var/lib/jobd/logs/nightly-cleanup/41.log" in out.stdout
    assert "only logged" in out.stderr


def test_notifier_posts_to_a_webhook() -> None:
    import http.server
    import json
    import threading

    got: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        _notify({"NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook"})
        thread.join(10)
    finally:
        server.server_close()
    [body] = got
    assert body["event"] == "failed"
    assert body["facts"] == {
        "job": "nightly-cleanup",
        "run_id": "41",
        "state": "failed",
        "exit_code": "2",
        "message": "exit code 2",
        "log": "/var/lib/jobd/logs/nightly-cleanup/41.log",
    }
    assert (
        str(body["text"])
        .splitlines()[0]
        .endswith("job nightly-cleanup run 41 failed (exit 2): exit code 2")
    )


DOCS = ROOT / "docs" / "job-files.md"


def toml_blocks(path: Path) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            if inside and current:
                blocks.append("\n".join(current) + "\n")
            inside, current = line == "```toml", []
        elif inside:
            current.append(line)
    return [b for b in blocks if "[jobs." in b or "[jobs]" in b or "[tool.scheduled." in b]


def test_job_file_examples_in_the_docs_load(tmp_path: Path) -> None:
    """Every example job file in docs/job-files.md is valid, as written."""
    (tmp_path / "jobd.toml").write_text(
        '[daemon]\ntimezone = "UTC"\n[pools.db]\nmax_parallel = 1\n'
    )
    (tmp_path / "jobs.d").mkdir()
    blocks = toml_blocks(DOCS)
    assert len(blocks) >= 7
    for n, block in enumerate(blocks):
        (tmp_path / "jobs.d" / f"{n:02}.toml").write_text(block)
    jobset = load_jobs(load_config(tmp_path / "jobd.toml"))
    assert jobset.invalid == {}
    assert {
        "extract",
        "load",
        "report",
        "sync",
        "ingest",
        "publish",
        "vacuum",
        "nightly",
        "build",
        "shop:clean-files",
        "test",
    } <= set(jobset.jobs)


def test_transform_is_robust_to_hostile_names(tmp_path: Path) -> None:
    """A name with newlines cannot name another file; a symlink is not followed."""
    job = load_jobs(load_config(CONFIG)).jobs["transform"]
    assert isinstance(job.action, ScriptAction)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "w.toml").write_text("secret,stuff\nline,1\n")
    hostile = inbox / "x\nw.toml\n.csv"
    hostile.write_text("name,qty\na,1\n")
    link = inbox / "link.csv"
    link.symlink_to(tmp_path / "w.toml")
    listing = tmp_path / "paths"
    listing.write_bytes(f"{hostile}\0{link}\0".encode())
    output = tmp_path / "output"
    env = {
        **os.environ,
        "OUTBOX": str(tmp_path / "outbox"),
        "JOBD_OUTPUT": str(output),
        "JOBD_CHANGED_PATHS_FILE": str(listing),
        "JOBD_CHANGED_PATHS": f"{link}",
    }
    subprocess.run(
        [sys.executable, str(job.action.script)],
        env=env,
        check=True,
        timeout=30,
        capture_output=True,
        cwd=tmp_path,
    )
    assert (tmp_path / "outbox" / "summary.txt").read_text() == (
        "'x\\nw.toml\\n.csv': 1 rows; columns: name, qty\nlink.csv: skipped (not a regular file)\n"
    )
    assert output.read_text() == "rows=1\n"
