"""``jobd import timer``: a systemd timer and its service become one job that ``jobd check``
accepts; OnCalendar= expressions map to cron as systemd.time(7) defines them."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from jobd.cli.check import run_check
from jobd.cli.daemon import main as jobd_main
from jobd.config.loader import load_config, load_jobs
from jobd.config.model import CommandAction, StagesAction
from jobd.migrate.systemd import Unsupported, calendar_to_cron, convert, timespan

# (OnCalendar=, cron, zone): read off systemd.time(7) by hand.
CALENDARS = [
    ("daily", "0 0 * * *", None),
    ("hourly", "0 * * * *", None),
    ("weekly", "0 0 * * 1", None),
    ("monthly", "0 0 1 * *", None),
    ("quarterly", "0 0 1 1,4,7,10 *", None),
    ("Mon..Fri *-*-* 09:00", "0 9 * * 1,2,3,4,5", None),
    ("Sat,Sun 10:30", "30 10 * * 6,0", None),
    ("*-*-01 04:00:00", "0 4 1 * *", None),
    ("*-*-* *:0/15", "0/15 * * * *", None),
    ("*:0/15", "0/15 * * * *", None),
    ("*-*-* 02:30:15 Europe/Berlin", "15 30 2 * * *", "Europe/Berlin"),
    ("*-01..06-* 03:00", "0 3 * 1-6 *", None),
]


@pytest.mark.parametrize(("spec", "cron", "zone"), CALENDARS)
def test_calendar_to_cron(spec: str, cron: str, zone: str | None) -> None:
    assert calendar_to_cron(spec) == (cron, zone)


@pytest.mark.parametrize("spec", ["2027-*-* 00:00", "Mon *-*-01 00:00", "*-*-* 1~3:00"])
def test_what_cron_cannot_say(spec: str) -> None:
    with pytest.raises(Unsupported):
        calendar_to_cron(spec)


def test_timespans() -> None:
    assert timespan("5min") == 300 and timespan("1h 30min") == 5400 and timespan("90") == 90
    with pytest.raises(ValueError):
        timespan("soon")


TIMER = """\
[Unit]
Description=Backup timer

[Timer]
OnCalendar=*-*-* 03:15:00
Persistent=true
RandomizedDelaySec=10min

[Install]
WantedBy=timers.target
"""
SERVICE = """\
[Unit]
Description=Back up the database
OnFailure=notify-email@%n.service

[Service]
Type=oneshot
User=backup
WorkingDirectory=/var/lib/backup
Environment="TARGET=s3://bucket/db" RETAIN=14
EnvironmentFile=-/etc/default/backup
ExecStart=/usr/local/bin/dump-db --all
ExecStart=/usr/local/bin/upload "/var/lib/backup/db dump.gz"
TimeoutStartSec=2h
Nice=10
"""


def test_timer_and_service(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "db-backup.timer").write_text(TIMER)
    (units / "db-backup.service").write_text(SERVICE)
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
    out = tmp_path / "jobs.d" / "db-backup.toml"
    assert jobd_main(["import", "timer", str(units / "db-backup.timer"), "-o", str(out)]) == 0
    err = io.StringIO()
    assert run_check(tmp_path / "jobd.toml", [], out=io.StringIO(), err=err) == 0, err.getvalue()
    job = load_jobs(load_config(tmp_path / "jobd.toml")).jobs["db-backup"]
    assert job.description == "Back up the database"
    assert [t.describe() for t in job.time_triggers] == ["cron '15 3 * * *' (UTC)"]
    assert job.catchup == "latest"  # Persistent=true
    assert job.user == "backup" and job.workdir == Path("/var/lib/backup")
    assert job.env == {"TARGET": "s3://bucket/db", "RETAIN": "14"}
    assert job.env_file == Path("/etc/default/backup") and job.timeout == 7200
    assert isinstance(job.action, StagesAction)
    assert [s.action for s in job.action.stages] == [
        CommandAction(command=("/usr/local/bin/dump-db", "--all")),
        CommandAction(command=("/usr/local/bin/upload", "/var/lib/backup/db dump.gz")),
    ]
    text = out.read_text()
    assert "RandomizedDelaySec=10min: no jobd equivalent" in text
    assert "OnFailure=notify-email@%n.service" in text and "Nice= not carried over" in text


def test_not_persistent_means_no_catchup_and_monotonic_timers() -> None:
    r = convert(
        "[Timer]\nOnUnitActiveSec=15min\nOnBootSec=5min\n",
        "[Service]\nExecStart=/bin/true\n",
        name="tick",
    )
    [job] = r.jobs
    assert job.keys["every"] == "15m" and job.keys["catchup"] == "none"
    assert any("OnBootSec=5min" in n.text for n in r.notes)
    assert convert("[Timer]\nOnCalendar=daily\n", "[Service]\n", name="x").jobs == []
