"""Line numbers of tables and keys in TOML source text.

``tomllib`` gives values but no positions, so messages could not name a line. This module
scans the same text again, structurally only (no values are built), and records the line where
each key path is first written: table headers, dotted keys, keys of inline tables and elements
of arrays (by index), arrays of tables (by index) included.

It is only run on text that ``tomllib`` accepted, so it may assume valid TOML; on anything it
does not understand it stops and keeps what it found so far, never raising.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "e": "\x1b",
}
_MAX_DEPTH = 200


class Locations:
    """Where each key path was written: ``line(("jobs", "etl", "cron"))`` -> 12.

    Built from text, it scans lazily: a valid file needs only its jobs' header lines, which a
    cheap line match finds; the full scan runs on the first question it cannot answer."""

    __slots__ = ("_headers", "_lines", "_text")

    def __init__(self, lines: dict[KeyPath, int] | None = None, *, text: str | None = None) -> None:
        self._lines = lines
        self._text = text
        self._headers: dict[KeyPath, int] | None = None

    def _map(self) -> dict[KeyPath, int]:
        if self._lines is None:
            scanner = _Scanner(self._text or "")
            # keep what was found: positions are a courtesy, never a failure
            with contextlib.suppress(_Stop, IndexError, RecursionError):
                scanner.document()
            self._lines = scanner.lines
        return self._lines

    def line(self, path: Sequence[str | int]) -> int | None:
        """The 1-based line of exactly ``path``, or None when it was not seen."""
        return self._map().get(tuple(path))

    def nearest(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, else of its closest written ancestor (its table header)."""
        p = tuple(path)
        if self._lines is None and len(p) == 2 and p[0] == "jobs":
            line = self._header_lines().get(p)
            if line is not None:
                return line
        lines = self._map()
        while p:
            line = lines.get(p)
            if line is not None:
                return line
            p = p[:-1]
        return None

    def _header_lines(self) -> dict[KeyPath, int]:
        """``[jobs.<id>]`` headers, first of each, by a line match (no full scan)."""
        if self._headers is None:
            self._headers = {}
            for n, text in enumerate((self._text or "").splitlines(), 1):
                m = _JOB_HEADER.match(text)
                if m:
                    self._headers.setdefault(("jobs", m.group(1) or m.group(2)), n)
        return self._headers

    def __len__(self) -> int:
        return len(self._map())


_JOB_HEADER = re.compile(
    r'[ \t]*\[[ \t]*jobs[ \t]*\.[ \t]*(?:([A-Za-z0-9_-]+)|"([^"\\]*)")'
    r"[ \t]*\][ \t]*(?:#.*)?$"
)


def locate(text: str) -> Locations:
    """Where the tables and keys of TOML ``text`` are (scanned on first need)."""
    return Locations(text=text)


class _Stop(Exception):
    """The text is not what the scanner expected."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lineno = 1
        self.lines: dict[KeyPath, int] = {}
        self.aot: dict[KeyPath, int] = {}  # array-of-tables path -> its current index

    # --- low level -------------------------------------------------------------------------

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def advance(self, n: int = 1) -> None:
        self.lineno += self.text.count("\n", self.pos, self.pos + n)
        self.pos += n

    def skip_blank(self) -> None:
        """Spaces and tabs only."""
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_ws_nl(self) -> None:
        """Whitespace, newlines and comments, as allowed inside arrays."""
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r":
                self.pos += 1
            elif c == "\n":
                self.advance()
            elif c == "#":
                self.skip_comment()
            else:
                return

    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    def record_with_parents(self, path: KeyPath, line: int) -> None:
        for i in range(1, len(path) + 1):
            self.record(path[:i], line)

    # --- document --------------------------------------------------------------------------

    def document(self) -> None:
        current: KeyPath = ()
        while self.pos < len(self.text):
            self.skip_ws_nl()
            if self.pos >= len(self.text):
                return
            line = self.lineno
            if self.peek(2) == "[[":
                self.advance(2)
                names = self.key()
                if self.peek(2) != "]]":
                    raise _Stop
                self.advance(2)
                parent = self.concrete(names[:-1])
                array = (*parent, names[-1])
                index = self.aot.get(array, -1) + 1
                self.aot[array] = index
                current = (*array, index)
                self.record_with_parents(current, line)
            elif self.peek() == "[":
                self.advance()
                names = self.key()
                if self.peek() != "]":
                    raise _Stop
                self.advance()
                current = self.concrete(names)
                self.record_with_parents(current, line)
            else:
                names = self.key()
                if self.peek() != "=":
                    raise _Stop
                self.advance()
                path = (*current, *names)
                self.record_with_parents(path, line)
                self.skip_blank()
                self.value(path, 0)
            self.skip_blank()
            self.skip_comment()

    def concrete(self, names: Sequence[str]) -> KeyPath:
        """Header names to a concrete path: arrays of tables get their current index."""
        path: KeyPath = ()
        for name in names:
            path = (*path, name)
            if path in self.aot:
                path = (*path, self.aot[path])
        return path

    # --- keys ------------------------------------------------------------------------------

    def key(self) -> list[str]:
        names: list[str] = []
        while True:
            self.skip_blank()
            names.append(self.simple_key())
            self.skip_blank()
            if self.peek() != ".":
                return names
            self.advance()

    def simple_key(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _BARE:
            self.pos += 1
        if self.pos == start:
            raise _Stop
        return self.text[start : self.pos]

    # --- values ----------------------------------------------------------------------------

    def value(self, path: KeyPath, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Stop
        c = self.peek()
        if c == "{":
            self.inline_table(path, depth)
        elif c == "[":
            self.array(path, depth)
        elif self.peek(3) in ('"""', "'''"):
            self.multiline_string()
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        else:
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#\r":
                self.pos += 1
            # a datetime may hold one space ("1979-05-27 07:32:00"); trailing blanks are not
            # part of the value, which is all that matters here
            if self.pos == start:
                raise _Stop

    def inline_table(self, path: KeyPath, depth: int) -> None:
        self.advance()  # {
        self.skip_ws_nl()
        if self.peek() == "}":
            self.advance()
            return
        while True:
            self.skip_ws_nl()
            line = self.lineno
            names = self.key()
            if self.peek() != "=":
                raise _Stop
            self.advance()
            sub = (*path, *names)
            self.record_with_parents(sub, line)
            self.skip_ws_nl()
            self.value(sub, depth + 1)
            self.skip_ws_nl()
            c = self.peek()
            self.advance()
            if c == "}":
                return
            if c != ",":
                raise _Stop
            self.skip_ws_nl()
            if self.peek() == "}":  # trailing comma (TOML 1.1)
                self.advance()
                return

    def array(self, path: KeyPath, depth: int) -> None:
        self.advance()  # [
        index = 0
        while True:
            self.skip_ws_nl()
            if self.peek() == "]":
                self.advance()
                return
            sub = (*path, index)
            self.record(sub, self.lineno)
            self.value(sub, depth + 1)
            index += 1
            self.skip_ws_nl()
            c = self.peek()
            self.advance()
            if c == "]":
                return
            if c != ",":
                raise _Stop

    # --- strings ---------------------------------------------------------------------------

    def basic_string(self) -> str:
        self.advance()  # "
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise _Stop
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\n":
                raise _Stop
            if c == "\\":
                e = text[self.pos + 1 : self.pos + 2]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    self.pos += 2
                elif e in ("u", "U", "x"):
                    size = {"u": 4, "U": 8, "x": 2}[e]
                    digits = text[self.pos + 2 : self.pos + 2 + size]
                    try:
                        out.append(chr(int(digits, 16)))
                    except ValueError:
                        raise _Stop from None
                    self.pos += 2 + size
                else:
                    raise _Stop
            else:
                out.append(c)
                self.pos += 1

    def literal_string(self) -> str:
        end = self.text.find("'", self.pos + 1)
        nl = self.text.find("\n", self.pos + 1)
        if end < 0 or 0 <= nl < end:
            raise _Stop
        s = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return s

    def multiline_string(self) -> None:
        quote = self.peek(3)
        self.advance(3)
        text = self.text
        while self.pos < len(text):
            if quote == '"""' and text[self.pos] == "\\":
                self.advance(2)
                continue
            if text.startswith(quote, self.pos):
                # up to two quotes may end the content right before the closing delimiter
                n = 3
                while n < 5 and text.startswith(quote[0], self.pos + n):
                    n += 1
                self.advance(n)
                return
            self.advance()
        raise _Stop
