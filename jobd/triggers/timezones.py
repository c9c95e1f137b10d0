"""Time zones by IANA name: resolving a name, and finding the machine's own zone."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

__all__ = ["machine_timezone", "resolve_timezone"]

_LOCALTIME = Path("/etc/localtime")
_TIMEZONE_FILE = Path("/etc/timezone")


def resolve_timezone(name: str) -> ZoneInfo:
    """The zone named ``name`` (``"Europe/Berlin"``, ``"UTC"``).

    Raises ``ValueError("unknown timezone 'Mars/Base'")`` for a name the tz database does not
    hold, and for a malformed one (empty, absolute, ``..``, NUL bytes); never another exception.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"unknown timezone '{name}'")
    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError, OSError, UnicodeError...
        raise ValueError(f"unknown timezone '{name}'") from exc


def _zone_name_from_path(path: str) -> str | None:
    """``/usr/share/zoneinfo/Europe/Berlin`` -> ``Europe/Berlin`` when that name resolves."""
    marker = "zoneinfo/"
    idx = path.rfind(marker)
    if idx < 0:
        return None
    name = path[idx + len(marker) :]
    for prefix in ("posix/", "right/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name if _valid(name) else None


def _valid(name: str) -> bool:
    try:
        resolve_timezone(name)
    except ValueError:
        return False
    return True


def machine_timezone(
    environ: Mapping[str, str] | None = None,
    localtime: Path = _LOCALTIME,
    timezone_file: Path = _TIMEZONE_FILE,
) -> str:
    """The machine's zone as an IANA name: ``$TZ`` when it names a zone (``Europe/Berlin``,
    ``:Europe/Berlin`` or a path into a zoneinfo directory), else the name the
    ``/etc/localtime`` symlink points at, else ``/etc/timezone``, else ``"UTC"``.

    POSIX rule strings in ``$TZ`` (``CET-1CEST``) are not names and are passed over.
    """
    env = os.environ if environ is None else environ
    tz = env.get("TZ", "").strip().removeprefix(":")
    if tz:
        if _valid(tz):
            return tz
        from_path = _zone_name_from_path(tz)
        if from_path is not None:
            return from_path
    try:
        target = os.readlink(localtime)
    except OSError:
        target = None
    if target is not None:
        from_link = _zone_name_from_path(target)
        if from_link is not None:
            return from_link
    try:
        name = timezone_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError):
        name = ""
    if name and _valid(name):
        return name
    return "UTC"
