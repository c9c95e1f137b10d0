"""A systemd ``.timer`` and its ``.service`` as one jobd job. Pure: texts in, a job out.

- ``OnCalendar=`` becomes ``cron`` (``systemd.time(7)``: weekday ranges and lists, ``*``,
  numbers, lists, ``a..b`` ranges and ``/step`` in every field, a time zone at the end; the
  shorthands ``minutely`` ... ``yearly``); a year other than ``*`` cannot be carried over.
- ``OnUnitActiveSec=`` / ``OnUnitInactiveSec=`` become ``every`` (a fixed cadence, noted);
  ``OnBootSec=``, ``OnStartupSec=`` and ``RandomizedDelaySec=`` cannot be carried over.
- ``Persistent=true`` is ``catchup = "latest"`` (jobd's default); without it systemd does
  not catch up, so ``catchup = "none"``.
- ``ExecStart=`` becomes ``command`` (a list: systemd runs no shell); several (a oneshot
  service) become ``stages``. ``Description=``, ``WorkingDirectory=``, ``User=``,
  ``Environment=``, ``EnvironmentFile=`` and ``TimeoutStartSec=``/``RuntimeMaxSec=`` carry
  over; ``OnFailure=`` names units, not jobs: noted, to be made an ``on_failure`` hook.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from jobd.migrate._emit import Converted, Result

SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_DOW = {d: str((i + 1) % 7) for i, d in enumerate(_DAYS)}  # cron: 0 = Sunday
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_SPAN_UNITS = {
    "": 1,
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
    "ms": 0.001,
    "msec": 0.001,
}


class Unsupported(ValueError):
    """A calendar expression that cron cannot say."""


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (a key may repeat; an empty value resets it, as systemd
    does). Continuation lines (ending in ``\\``) are joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    return sections


def timespan(text: str) -> float:
    """A systemd time span (``5min``, ``1h 30min``, ``90``) in seconds."""
    total, pos, text = 0.0, 0, text.strip().lower()
    for m in _SPAN.finditer(text):
        if text[pos : m.start()].strip() or m.group(2) not in _SPAN_UNITS:
            raise ValueError(f"not a time span: {text!r}")
        total += float(m.group(1)) * _SPAN_UNITS[m.group(2)]
        pos = m.end()
    if text[pos:].strip() or pos == 0:
        raise ValueError(f"not a time span: {text!r}")
    return total


def duration(seconds: float) -> str:
    """Seconds as a jobd duration."""
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out) or "0s"


def _field(text: str, *, what: str) -> str:
    """One calendar component as a cron field: ``*``, ``5``, ``1,15``, ``1..5`` -> ``1-5``,
    ``0/15`` -> ``0-59/15`` style steps are kept as cron writes them (``*/15``, ``5/15``)."""
    parts = []
    for item in text.split(","):
        base, _, step = item.partition("/")
        if not re.fullmatch(r"\*|\d+(\.\.\d+)?", base) or (step and not step.isdigit()):
            raise Unsupported(f"{what} {text!r}")
        base = str(int(base)) if base.isdigit() else base.replace("..", "-")
        if "-" in base:
            lo, hi = base.split("-")
            base = f"{int(lo)}-{int(hi)}"
        parts.append(f"{base}/{int(step)}" if step else base)
    return ",".join(parts)


def _weekdays(text: str) -> str:
    out = []
    for item in text.lower().split(","):
        lo, dots, hi = item.partition("..")
        if lo[:3] not in _CRON_DOW or (dots and hi[:3] not in _CRON_DOW):
            raise Unsupported(f"weekday {item!r}")
        if dots:
            a, b = _DAYS.index(lo[:3]), _DAYS.index(hi[:3])
            days = _DAYS[a : b + 1] if a <= b else _DAYS[a:] + _DAYS[: b + 1]
            out += [_CRON_DOW[d] for d in days]
        else:
            out.append(_CRON_DOW[lo[:3]])
    return ",".join(dict.fromkeys(out))


def calendar_to_cron(spec: str) -> tuple[str, str | None]:
    """An ``OnCalendar=`` value as a cron expression (6 fields when seconds matter) and the
    time zone it names, if any; ``Unsupported`` when cron cannot say it."""
    text = SHORTHANDS.get(spec.strip().lower(), spec.strip())
    words = text.split()
    zone = None
    if len(words) > 1 and (
        ("/" in words[-1] and not re.search(r"[\d*]", words[-1][:1])) or words[-1] in ("UTC", "GMT")
    ):
        zone = words.pop()
    dow = "*"
    if words and words[0][:3].lower() in _CRON_DOW:
        dow = _weekdays(words.pop(0))
    date, time = "*-*-*", "00:00:00"
    for w in words:
        if ":" in w:
            time = w
        elif "-" in w:
            date = w
        else:
            raise Unsupported(f"calendar component {w!r}")
    d = date.split("-")
    if len(d) == 2:
        d = ["*", *d]
    if len(d) != 3:
        raise Unsupported(f"date {date!r}")
    if d[0] != "*":
        raise Unsupported(f"a year ({d[0]}): cron repeats every year")
    t = time.split(":")
    if len(t) == 2:
        t.append("00")
    if len(t) != 3:
        raise Unsupported(f"time {time!r}")
    hour, minute = _field(t[0], what="hour"), _field(t[1], what="minute")
    second = _field(t[2], what="second")
    day, month = _field(d[2], what="day"), _field(d[1], what="month")
    if dow != "*" and day != "*":
        raise Unsupported("both a weekday and a day of the month (systemd wants both, cron either)")
    five = f"{minute} {hour} {day} {month} {dow}"
    return (five if second == "0" else f"{second} {five}"), zone


def convert(timer_text: str, service_text: str, *, name: str) -> Result:
    """The job of a timer unit and the service it starts."""
    result = Result()
    timer = parse_unit(timer_text).get("Timer", {})
    units = parse_unit(service_text)
    service, unit = units.get("Service", {}), units.get("Unit", {})
    keys: dict[str, object] = {}
    if unit.get("Description"):
        keys["description"] = unit["Description"][-1]
    crons: list[str] = []
    zones: set[str] = set()
    for spec in timer.get("OnCalendar", []):
        try:
            cron, zone = calendar_to_cron(spec)
        except Unsupported as exc:
            result.note(
                None, f"OnCalendar={spec}: cannot be said in cron ({exc}); not carried over"
            )
            continue
        crons.append(cron)
        if zone:
            zones.add(zone)
    if crons:
        keys["cron"] = crons[0] if len(crons) == 1 else crons
    if len(zones) > 1:
        result.note(
            None,
            f"OnCalendar= names several time zones ({', '.join(sorted(zones))});"
            " a job has one: the first is used",
        )
    if zones:
        keys["timezone"] = sorted(zones)[0]
    for key in ("OnUnitActiveSec", "OnUnitInactiveSec"):
        for value in timer.get(key, []):
            if "every" in keys or crons:
                result.note(None, f"{key}={value}: a job has one cadence; not carried over")
                continue
            keys["every"] = duration(timespan(value))
            result.note(
                None,
                f'{key}={value}: carried over as every = "{keys["every"]}", '
                "a fixed cadence (systemd counts from the last run instead)",
            )
    for key in (
        "OnBootSec",
        "OnStartupSec",
        "OnActiveSec",
        "RandomizedDelaySec",
        "AccuracySec",
        "WakeSystem",
    ):
        for value in timer.get(key, []):
            result.note(None, f"{key}={value}: no jobd equivalent; not carried over")
    persistent = (timer.get("Persistent") or ["false"])[-1].lower() in ("true", "yes", "1", "on")
    if not persistent and ("cron" in keys or "every" in keys):
        keys["catchup"] = "none"  # systemd runs no missed slot without Persistent=true
    commands = []
    for value in service.get("ExecStart", []):
        argv = shlex.split(value.lstrip("-@+!:"))
        if value.startswith("@") and len(argv) > 1:
            argv = [argv[0], *argv[2:]]  # @path argv0 args: argv[0] is only a name
        if argv:
            commands.append(argv)
    if not commands:
        result.note(None, "the service has no ExecStart=; nothing to run")
        return result
    if len(commands) == 1:
        keys["command"] = commands[0]
    else:
        keys["stages"] = [
            {"name": f"step-{i}", "command": c} for i, c in enumerate(commands, start=1)
        ]
    if service.get("WorkingDirectory"):
        keys["workdir"] = service["WorkingDirectory"][-1].lstrip("-")
    if service.get("User"):
        keys["user"] = service["User"][-1]
    env: dict[str, str] = {}
    for value in service.get("Environment", []):
        for pair in shlex.split(value):
            k, _, v = pair.partition("=")
            env[k] = v
    if env:
        keys["env"] = env
    if service.get("EnvironmentFile"):
        keys["env_file"] = service["EnvironmentFile"][-1].lstrip("-")
        if len(service["EnvironmentFile"]) > 1:
            result.note(None, "several EnvironmentFile=: a job has one; the last is used")
    for key in ("RuntimeMaxSec", "TimeoutStartSec"):
        if service.get(key) and "timeout" not in keys and service[key][-1] != "infinity":
            keys["timeout"] = duration(timespan(service[key][-1]))
    if unit.get("OnFailure"):
        result.note(
            None,
            f"OnFailure={' '.join(unit['OnFailure'])}: units, not jobs; make "
            "the notifier a job and name it in on_failure",
        )
    for key in _ignored(service):
        result.note(None, f"[Service] {key}= not carried over")
    result.jobs.append(Converted(job_id=name, keys=keys, origin=f"{name}.timer + service"))
    return result


_CARRIED = frozenset(
    {
        "ExecStart",
        "WorkingDirectory",
        "User",
        "Environment",
        "EnvironmentFile",
        "RuntimeMaxSec",
        "TimeoutStartSec",
        "Type",
    }
)


def _ignored(service: Mapping[str, list[str]]) -> list[str]:
    return [k for k in service if k not in _CARRIED and service[k]]
