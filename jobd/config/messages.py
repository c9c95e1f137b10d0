"""Messages about what a user wrote: quoting, "did you mean", paths, and the report of one
file's problems."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from jobd._exceptions import Problem, source_path
from jobd.config.locate import KeyPath, Locations

# --- messages ----------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with control characters escaped and cut to ``limit`` characters."""
    out = _CONTROL.sub(
        lambda m: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(
            m.group(), f"\\x{ord(m.group()):02x}"
        ),
        text,
    )
    return out if len(out) <= limit else out[: limit - 3] + "..."


def show(value: object, limit: int = 60) -> str:
    """A user's value quoted for a message: ``'abc'``."""
    return f"'{one_line(str(value), limit)}'"


def describe(value: object) -> str:
    """``value``'s TOML type, with the value when short: ``an integer (3)``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({one_line(str(value), 30)})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({show(value, 40)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a date/time ({value})"


def hint(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def display_path(path: Path) -> str:
    """How a file is named in messages (relative to the working directory below it)."""
    try:
        cwd = Path.cwd()
    except OSError:
        return str(path)
    if cwd == Path(cwd.anchor):
        return str(path)  # relative to "/" would read like a relative path
    return source_path(path)


def resolved(path: Path) -> Path:
    """``path`` with symlinks resolved, as far as they can be."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


def joined(words: Sequence[str], last: str = "or") -> str:
    quoted = [f"{w}" for w in words]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"


class Report:
    """Collects the problems of one file, with its locations."""

    def __init__(self, path: Path) -> None:
        self.file = one_line(display_path(path))
        self.locs = Locations({})
        self.problems: list[Problem] = []

    def add(
        self,
        message: str,
        *,
        at: KeyPath = (),
        line: int | None = None,
        job: str | None = None,
        key: str | None = None,
    ) -> None:
        if line is None and at:
            line = self.locs.nearest(at)
        self.problems.append(
            Problem(
                file=self.file,
                message=one_line(message),
                line=line,
                job=None if job is None else one_line(job, 80),
                key=None if key is None else one_line(key, 80),
            )
        )
