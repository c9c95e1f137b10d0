"""Agreement with ``systemd-analyze calendar`` (systemd's own OnCalendar= engine), for cron
expressions whose meaning both share. The binary must be there: CI installs the ``systemd``
package; a missing binary fails the test rather than skipping it."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from jobd.triggers.cron import CronTrigger

_LINE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$")
_DOW = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    assert os.access(path, os.X_OK), (
        "systemd-analyze is missing: install the 'systemd' package (apt-get install systemd)"
    )
    return path


def _time_field(text: str, first: int = 0, width: int = 2) -> str:
    """A cron field in systemd's syntax: 5 -> 05, */15 -> 00/15, 1-3 -> 01..03, lists as
    they are; ``first`` is the field's lowest value (1 for days and months)."""
    out = []
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            s = "*" if not step else f"{first:0{width}d}"
        elif "-" in base:
            a, b = base.split("-")
            s = f"{int(a):0{width}d}..{int(b):0{width}d}"
        else:
            s = f"{int(base):0{width}d}"
        out.append(f"{s}/{step}" if step else s)
    return ",".join(out)


def to_on_calendar(expression: str, zone: str) -> str:
    """A 5- or 6-field cron expression (no names; a day field starting with '*', so the day
    fields apply together as in systemd) as OnCalendar."""
    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    sec, minute, hour, dom, month, dow = fields
    assert dom.startswith("*") or dow.startswith("*"), "systemd has no OR of the day fields"
    days = ""
    if dow != "*":
        parts = []
        for part in dow.split(","):
            if "-" in part:
                a, b = part.split("-")
                parts.append(f"{_DOW[int(a)]}..{_DOW[int(b)]}")
            else:
                parts.append(_DOW[int(part)])
        days = ",".join(parts) + " "
    return (
        f"{days}*-{_time_field(month, 1)}-{_time_field(dom, 1)} "
        f"{_time_field(hour)}:{_time_field(minute)}:{_time_field(sec)} {zone}"
    )


def systemd_times(spec: str, base: datetime, n: int) -> list[datetime]:
    proc = subprocess.run(
        [
            _systemd_analyze(),
            "calendar",
            f"--iterations={n}",
            f"--base-time={base.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            spec,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
    )
    times = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for line in proc.stdout.splitlines()
        if (m := _LINE.search(line.strip()))
    ]
    assert len(times) == n, proc.stdout
    return times


def ours(expression: str, zone: str, base: datetime, n: int) -> list[datetime]:
    trigger = CronTrigger.parse(expression, zone)
    out: list[datetime] = []
    at = base
    while len(out) < n:
        nxt = trigger.next_after(at)
        assert nxt is not None
        out.append(nxt)
        at = nxt
    return out


BASE = datetime(2025, 1, 1, tzinfo=UTC)
SPRING_BERLIN = datetime(2025, 3, 29, 20, 0, tzinfo=UTC)  # the night before the gap
SPRING_NY = datetime(2025, 3, 9, 3, 0, tzinfo=UTC)
SPRING_LORD_HOWE = datetime(2025, 10, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "base", "n"),
    [
        ("*/15 * * * *", "UTC", BASE, 50),
        ("*/15 * * * *", "Europe/Berlin", SPRING_BERLIN, 50),
        ("*/15 * * * *", "America/New_York", SPRING_NY, 50),
        ("*/15 * * * *", "Australia/Lord_Howe", SPRING_LORD_HOWE, 50),
        ("0 3 * * 1-5", "Europe/Berlin", datetime(2025, 3, 1, tzinfo=UTC), 50),
        ("0 3 * * 1-5", "America/New_York", datetime(2025, 10, 1, tzinfo=UTC), 50),
        ("30 2 1 * *", "Europe/Berlin", BASE, 50),
        ("30 2 1 * *", "UTC", BASE, 20),
        ("0 0 29 2 *", "UTC", BASE, 8),
        ("0 0 29 2 *", "America/New_York", BASE, 8),
        # a wall time inside the spring gap is skipped that day, by both
        ("30 2 * * *", "Europe/Berlin", datetime(2025, 3, 1, tzinfo=UTC), 50),
        ("30 2 * * *", "America/New_York", datetime(2025, 2, 20, tzinfo=UTC), 50),
        ("15 2 * * *", "Australia/Lord_Howe", datetime(2025, 9, 20, tzinfo=UTC), 30),
        # and a fixed time inside the autumn fold runs once, in its first pass, by both
        ("30 2 * * *", "Europe/Berlin", datetime(2025, 10, 1, tzinfo=UTC), 50),
        ("30 1 * * *", "America/New_York", datetime(2025, 10, 20, tzinfo=UTC), 50),
        ("45 1 * * 0", "Australia/Lord_Howe", datetime(2025, 3, 1, tzinfo=UTC), 20),
        ("0,30 9-17 * * 1-5", "Europe/Berlin", datetime(2025, 3, 27, tzinfo=UTC), 50),
        ("*/20 */7 * * * *", "America/New_York", SPRING_NY, 50),
        # a day field starting with '*' makes both day fields apply together, as in systemd
        ("0 12 */2 * 0", "Europe/Berlin", BASE, 30),
    ],
)
def test_agrees_with_systemd_analyze(expression: str, zone: str, base: datetime, n: int) -> None:
    spec = to_on_calendar(expression, zone)
    assert ours(expression, zone, base, n) == systemd_times(spec, base, n), spec


@pytest.mark.parametrize(
    ("zone", "base"),
    [
        ("Europe/Berlin", datetime(2025, 10, 25, 22, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2025, 11, 2, 3, 0, tzinfo=UTC)),
        ("Australia/Lord_Howe", datetime(2025, 4, 5, 12, 0, tzinfo=UTC)),
    ],
)
def test_in_a_fold_wildcard_hours_also_run_the_second_pass(zone: str, base: datetime) -> None:
    # systemd runs each wall time once, in the first pass; jobd runs wildcard-hour expressions
    # through the second pass too, as real time passes. Elsewhere both agree exactly.
    expression, n = "*/15 * * * *", 40
    theirs = systemd_times(to_on_calendar(expression, zone), base, n)
    mine = [t for t in ours(expression, zone, base, n + 8) if t <= theirs[-1]]
    tz = ZoneInfo(zone)
    second_pass = [t for t in mine if t.astimezone(tz).fold == 1]
    assert second_pass, "the window must hold a fold"
    assert sorted(set(theirs) | set(second_pass)) == mine
    assert not set(theirs) & set(second_pass)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(mine))


def test_the_translation_is_what_systemd_reads() -> None:
    assert to_on_calendar("*/15 * * * *", "Europe/Berlin") == "*-*-* *:00/15:00 Europe/Berlin"
    assert to_on_calendar("0 3 * * 1-5", "UTC") == "Mon..Fri *-*-* 03:00:00 UTC"
    proc = subprocess.run(
        [_systemd_analyze(), "calendar", "Mon..Fri *-*-* 03:00:00 UTC"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
    )
    assert "Normalized form: Mon..Fri *-*-* 03:00:00 UTC" in proc.stdout
