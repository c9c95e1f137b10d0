"""Durations as users write them: ``"250ms"``, ``"30s"``, ``"15m"``, ``"2h"``, ``"1d"``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: one or more number+unit parts (``"1h30m"``); raise ``ValueError``.

    Units: ms, s, m, h, d, w. A bare number is refused, since its unit would be a guess.
    """
    s = text.strip()
    if not s:
        raise ValueError('empty duration; write a number and a unit, e.g. "30s"')
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(
                f"'{text}' is not a duration; write a number and a unit "
                '(ms, s, m, h, d, w), e.g. "250ms", "30s", "1h30m"'
            )
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` (``90`` -> ``"1m30s"``)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    if ms:
        out.append(f"{ms}ms")
    return "".join(out) or "0s"
