"""How ``jobctl`` shows things to people: aligned tables, relative times, durations, colour.

Pure functions over data and an injected ``now``; nothing here reads the clock or the terminal
except ``wants_colour``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, TextIO

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

STATE_COLOURS: Mapping[str, str] = {
    "succeeded": "32",  # green
    "failed": "31",  # red
    "timed_out": "31",
    "running": "36",  # cyan
    "queued": "33",  # yellow
    "cancelled": "35",  # magenta
    "skipped": "2",  # dim
    "upstream_failed": "38;5;208",  # orange, as in Airflow
    "paused": "33",
    "invalid": "31",
}


def wants_colour(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (no-color.org) or TERM=dumb."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    """ANSI styling that is a no-op when colour is off."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def sgr(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def bold(self, text: str) -> str:
        return self.sgr(text, "1")

    def dim(self, text: str) -> str:
        return self.sgr(text, "2")

    def state(self, text: str, state: str | None = None) -> str:
        code = STATE_COLOURS.get(state or text)
        return self.sgr(text, code) if code else text


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style) -> str:
    """Columns aligned on visible width (colour codes do not count); the last column is not
    padded, so lines carry no trailing blanks."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], visible_len(cell))
    lines = []
    for n, row in enumerate([list(headers), *[list(r) for r in rows]]):
        cells = []
        for i, cell in enumerate(row):
            text = style.bold(cell) if n == 0 else cell
            pad = "" if i == len(row) - 1 else " " * (widths[i] - visible_len(cell))
            cells.append(text + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string from the daemon as an aware datetime; None for None or junk."""
    if not isinstance(value, str):
        return None
    from datetime import datetime  # imported when used: jobctl's start is measured

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def utcnow() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def columns(env: Mapping[str, str] | None = None) -> int:
    """The terminal's width, as ``shutil.get_terminal_size`` finds it (without importing
    shutil): ``$COLUMNS``, else the terminal of stdout, else 80."""
    env = os.environ if env is None else env
    try:
        return max(int(env.get("COLUMNS", "")), 20)
    except ValueError:
        pass
    try:
        return os.get_terminal_size(1).columns or 80
    except (OSError, ValueError):
        return 80


def duration(seconds: float) -> str:
    """``850ms``, ``4.2s``, ``3m 05s``, ``2h 03m``, ``3d 4h``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _short(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def relative(when: datetime | None, now: datetime) -> str:
    """``in 3m``, ``2h ago``, ``now``; ``-`` for None."""
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    if abs(delta) < 1:
        return "now"
    return f"in {_short(delta)}" if delta > 0 else f"{_short(-delta)} ago"


def clock(when: datetime | None) -> str:
    """A timestamp for people: ``2024-05-01 10:00:00 UTC`` / ``... +02:00``."""
    if when is None:
        return "-"
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    off = when.utcoffset()
    if off is None:
        return text
    if not off:
        return f"{text} UTC"
    return f"{text} {when.strftime('%z')[:3]}:{when.strftime('%z')[3:]}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def spec(seconds: float) -> str:
    """A duration as a job file writes it: ``250ms``, ``10s``, ``1h30m``, ``1d2h``."""
    if seconds < 0:
        return f"-{spec(-seconds)}"
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def span(seconds: float) -> str:
    """A distance in time as ``systemctl list-timers`` shows it: ``45s``, ``21min``,
    ``1h 21min``, ``2 days 3h``."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}min"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}min" if s % 3600 >= 60 else f"{s // 3600}h"
    days = s // 86400
    word = "day" if days == 1 else "days"
    return f"{days} {word} {s % 86400 // 3600}h" if s % 86400 >= 3600 else f"{days} {word}"


def zoned(when: datetime, zone: str | None) -> datetime:
    """``when`` in the IANA ``zone`` (unchanged when the zone is unknown here)."""
    if not zone:
        return when
    try:
        from zoneinfo import ZoneInfo  # only when a time is shown

        return when.astimezone(ZoneInfo(zone))
    except (ValueError, KeyError, OSError):
        return when


def stamp(when: datetime, zone: str | None) -> str:
    """``Sat 2026-12-05 08:00:00 CET``: the instant in the job's zone, as systemd shows it."""
    local = zoned(when, zone)
    name = local.tzname() or ""
    if name and (name[0] in "+-"):
        name = f"UTC{name}"
    return f"{local.strftime('%a %Y-%m-%d %H:%M:%S')} {name}".rstrip()


def when_text(when: datetime | None, now: datetime, zone: str | None) -> str:
    """``Sat 2026-12-05 08:00:00 CET (in 21min)`` / ``(... ago)``; ``-`` for None."""
    if when is None:
        return "-"
    delta = (when - now).total_seconds()
    rel = "now" if abs(delta) < 1 else f"in {span(delta)}" if delta > 0 else f"{span(delta)} ago"
    return f"{stamp(when, zone)} ({rel})"
