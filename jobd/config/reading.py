"""Reading TOML safely (size, depth, line numbers of errors) and validating one table against
a key table."""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.config.keys import MAX_DEPTH, MAX_DURATION, MAX_FILE_BYTES, REQUIRES, STRINGS, Key
from jobd.config.locate import KeyPath, locate
from jobd.config.messages import Report, describe, hint, joined, show
from jobd.durations import parse_duration
from jobd.expressions import parse_template
from jobd.expressions.shell import shell_command

# --- reading TOML safely -------------------------------------------------------------------


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def read_toml(path: Path, report: Report, what: str) -> dict[str, Any] | None:
    """The TOML document at ``path``, or None with the reason added to ``report``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        report.add(f"is a directory, not a {what}")
        return None
    except OSError as e:
        report.add(f"cannot read: {e.strerror or e}")
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            report.add(f"is a directory, not a {what}")
            return None
        if not stat.S_ISREG(st.st_mode):
            report.add(f"is not a regular file; a {what} must be one")
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        report.add(f"cannot read: {e.strerror or e}")
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        report.add(f"is larger than 1 MiB, the limit for a {what}; not read")
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        report.add(
            f"looks binary (holds a NUL byte), not a TOML {what}",
            line=data.count(b"\n", 0, nul) + 1,
        )
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        report.add(
            f"is not valid UTF-8 (byte 0x{data[e.start]:02x}: {e.reason})",
            line=data.count(b"\n", 0, e.start) + 1,
        )
        return None
    text = text.removeprefix("\ufeff")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message, line = str(e), None
        m = _TOML_POSITION.search(message)
        if m:
            line = int(m.group(1))
            message = f"{message[: m.start()]} (column {m.group(2)})"
        elif (m := _TOML_END.search(message)) is not None:
            line = text.rstrip().count("\n") + 1
            message = f"{message[: m.start()]} (at the end of the file)"
        report.add(f"invalid TOML: {message}", line=line)
        return None
    except RecursionError:
        report.add(f"invalid TOML: arrays or tables nested more than {MAX_DEPTH} deep")
        return None
    except ValueError as e:  # e.g. an integer with too many digits
        report.add(f"invalid TOML: {e}")
        return None
    if _depth(doc) > MAX_DEPTH:
        report.add(f"arrays or tables nested more than {MAX_DEPTH} deep")
        return None
    report.locs = locate(text)
    return doc


def _depth(doc: object) -> int:
    """How deeply tables and arrays nest in ``doc`` (iterative: the input may be hostile)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


# --- validating one table against a key table ----------------------------------------------


class Table:
    """One table being validated: its values by key, problems reported with its location."""

    def __init__(
        self,
        report: Report,
        at: KeyPath,
        job: str | None,
        keys: Sequence[Key],
        raw: Mapping[str, Any],
        prefix: str = "",
    ) -> None:
        self.report = report
        self.at = at
        self.job = job
        self.prefix = prefix  # "stages[0]." inside a stage, "daemon." in the daemon config
        self.raw = raw
        self.count = len(report.problems)
        self.values: dict[str, Any] = {}
        self.known = known = {k.name: k for k in keys}
        for name, value in raw.items():
            key = known.get(name)
            if key is None:
                self.problem(name, "unknown key" + hint(name, known))
            elif not key.kind.accepts(value):
                self.problem(name, f"expected {key.kind.expected}, got {describe(value)}")
            elif value == "" or (isinstance(value, list) and len(value) < key.kind.min_items):
                self.problem(name, "must not be empty")
            elif isinstance(value, list) and key.kind is STRINGS and "" in value:
                self.problem(name, "must not hold an empty string", value.index(""))
            elif (
                "\x00" in value
                if isinstance(value, str)
                else (
                    isinstance(value, list)
                    and any(isinstance(v, str) and "\x00" in v for v in value)
                )
            ):
                self.problem(name, "must not hold a NUL character")
            elif key.minimum is not None and value < key.minimum:
                self.problem(name, f"must be at least {key.minimum:g}, got {value}")
            elif key.choices and value not in key.choices:
                self.problem(
                    name,
                    f"{show(value)} is not one of {joined(key.choices)}{hint(value, key.choices)}",
                )
            else:
                self.values[name] = value

    @property
    def ok(self) -> bool:
        """No problem was found in this table (so far)."""
        return len(self.report.problems) == self.count

    def problem(self, key: str | None, message: str, *sub: str | int) -> None:
        """Report ``message`` about ``key`` (None: the table itself) at ``key[sub...]``."""
        at = self.at if key is None else (*self.at, key, *sub)
        name = self.prefix.rstrip(".") or None if key is None else f"{self.prefix}{key}"
        self.report.add(message, at=at, job=self.job, key=name)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def duration(self, name: str, *, positive: bool = False) -> float | None:
        """The duration at ``name`` in seconds, None when absent or bad."""
        text = self.values.get(name)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            self.problem(name, str(e))
            return None
        if not math.isfinite(seconds) or seconds > MAX_DURATION:
            self.problem(name, f"{show(text)} is too long")
            return None
        if positive and seconds <= 0:
            self.problem(name, "must be longer than 0s")
            return None
        return seconds

    def template(self, name: str, text: str, *sub: str | int, shell: bool = False) -> None:
        """Check that ``text`` is a valid template (``${{ }}`` expressions); with ``shell``,
        also that each expression can reach the shell as a variable."""
        try:
            parsed = parse_template(text)
            if shell:
                shell_command(parsed)
        except ExpressionError as e:
            self.problem(name, str(e), *sub)

    def requires(self) -> None:
        for name, alternatives in REQUIRES.items():
            if (
                name in self.known
                and name in self.raw
                and not any(a in self.raw for a in alternatives)
            ):
                self.problem(name, f"only applies with {joined(alternatives)}")
