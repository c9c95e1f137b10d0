"""``jobd import crontab``: a real-world crontab becomes job files that ``jobd check`` accepts,
whose schedules fire exactly when croniter (the oracle) says the crontab's lines fire."""

from __future__ import annotations

import io
import subprocess
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from jobd.cli.check import run_check
from jobd.cli.daemon import main as jobd_main
from jobd.config.loader import load_config, load_jobs
from jobd.config.model import CommandAction
from jobd.migrate.crontab import convert, split_percent
from jobd.triggers.catchup import next_fire_times

CRONTAB = r"""# m h  dom mon dow   command  (crontab of www-data on web-1)
SHELL=/bin/bash
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
MAILTO=ops@example.com
APP_ENV="production"

# Nightly database backup, kept 14 days
30 2 * * * /usr/local/bin/backup.sh --full >> /var/log/backup.log 2>&1
# Rotate uploads every 15 minutes in office hours
*/15 9-17 * * mon-fri /opt/app/bin/rotate-uploads
@daily /usr/bin/find /tmp/app -mtime +7 -delete
0 6 * * 1 /opt/app/bin/report --date $(date +\%Y-\%m-\%d)
0 0 1,15 * * cat > {stdin_file}%hello%world
@reboot /opt/app/bin/warm-cache
# 0 3 * * * /opt/app/bin/retired-job
5 4 * 1-6/2 0,6 /opt/app/bin/odd-months
0 */4 * * * /opt/app/bin/sync-feeds

CRON_TZ=Europe/Berlin
45 23 28-31 * * /opt/app/bin/month-end
"""

# The schedule each job must keep, by job id, with its zone (hand-read from the crontab).
EXPECTED = {
    "backup": ("30 2 * * *", "UTC"),
    "rotate-uploads": ("*/15 9-17 * * mon-fri", "UTC"),
    "find": ("0 0 * * *", "UTC"),
    "report": ("0 6 * * 1", "UTC"),
    "cat": ("0 0 1,15 * *", "UTC"),
    "odd-months": ("5 4 * 1-6/2 0,6", "UTC"),
    "sync-feeds": ("0 */4 * * *", "UTC"),
    "month-end": ("45 23 28-31 * *", "Europe/Berlin"),
}


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    stdin_file = tmp_path / "stdin.txt"
    crontab = tmp_path / "crontab"
    crontab.write_text(CRONTAB.format(stdin_file=stdin_file))
    assert len(crontab.read_text().splitlines()) == 20
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobd.toml").write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        timezone = "UTC"
        """)
    )
    code = jobd_main(
        ["import", "crontab", str(crontab), "-o", str(tmp_path / "jobs.d" / "cron.toml")]
    )
    assert code == 0
    return tmp_path


def test_jobd_check_accepts_the_result(imported: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_check(imported / "jobd.toml", [], out=out, err=err) == 0, err.getvalue()
    assert out.getvalue().startswith("ok: 8 jobs")


def test_schedules_fire_as_croniter_says(imported: Path) -> None:
    jobs = load_jobs(load_config(imported / "jobd.toml")).jobs
    assert set(jobs) == set(EXPECTED)
    for job_id, (expr, zone) in EXPECTED.items():
        job = jobs[job_id]
        assert job.timezone == zone
        start = datetime(2026, 1, 1, tzinfo=ZoneInfo(zone))
        it = croniter(expr, start)
        oracle = [it.get_next(datetime) for _ in range(40)]
        ours = next_fire_times(job.time_triggers, start, 40)
        assert ours == oracle, job_id


def test_comments_env_and_what_was_left(imported: Path) -> None:
    jobs = load_jobs(load_config(imported / "jobd.toml")).jobs
    assert jobs["backup"].description == "Nightly database backup, kept 14 days"
    assert jobs["rotate-uploads"].description == "Rotate uploads every 15 minutes in office hours"
    assert jobs["find"].description is None
    assert jobs["backup"].env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "APP_ENV": "production",
    }
    action = jobs["report"].action
    assert isinstance(action, CommandAction)
    assert action.command == "/opt/app/bin/report --date $(date +%Y-%m-%d)"
    text = (imported / "jobs.d" / "cron.toml").read_text()
    for left in (
        "SHELL=/bin/bash",
        "MAILTO=ops@example.com",
        "@reboot",
        "'%' in the command",
        "commented-out entry not imported: 0 3 * * * /opt/app/bin/retired-job",
    ):
        assert left in text, left


def test_percent_is_stdin_as_under_cron(imported: Path) -> None:
    """crontab(5): the text after the first unescaped % is the command's standard input,
    each further % a newline."""
    jobs = load_jobs(load_config(imported / "jobd.toml")).jobs
    action = jobs["cat"].action
    assert isinstance(action, CommandAction) and isinstance(action.command, str)
    subprocess.run(["/bin/sh", "-c", action.command], check=True, timeout=10)
    assert (imported / "stdin.txt").read_text() == "hello\nworld\n"


def test_split_percent() -> None:
    assert split_percent(r"date +\%F") == ("date +%F", None)
    assert split_percent("mail -s hi%a%b") == ("mail -s hi", "a\nb")
    assert split_percent(r"x%50\% off") == ("x", "50% off")


def test_system_crontab_user_field_and_nothing_to_import() -> None:
    r = convert("17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", system=True)
    [job] = r.jobs
    assert job.keys["user"] == "root" and job.keys["cron"] == "17 * * * *"
    assert job.keys["command"] == "cd / && run-parts --report /etc/cron.hourly"
    assert convert("# only a comment\nMAILTO=\n").jobs == []


def test_unreadable_or_empty_input_exits_1(tmp_path: Path) -> None:
    assert jobd_main(["import", "crontab", str(tmp_path / "missing")]) == 1
    (tmp_path / "empty").write_text("@reboot x\n")
    assert jobd_main(["import", "crontab", str(tmp_path / "empty")]) == 1
    assert jobd_main(["import", "nonsense"]) == 2


def test_output_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("@hourly true\n")
    (tmp_path / "out.toml").write_text("keep")
    assert (
        jobd_main(["import", "crontab", str(tmp_path / "c"), "-o", str(tmp_path / "out.toml")]) == 1
    )
    assert (tmp_path / "out.toml").read_text() == "keep"
