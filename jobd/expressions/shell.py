"""Shell-string commands: each ``${{ }}`` reaches ``/bin/sh`` as a variable, never as text.

``command = "grep ${{ params.word }} '${{ params.file }}'"`` runs ``/bin/sh -c`` with the
script ``grep "${JOBD_EXPR_1}" ''"${JOBD_EXPR_2}"''`` and the values in the environment under
those names, so a value such as ``$(rm -rf ~)`` is data to the shell whatever it holds. Where an
expression sits decides how the reference is written, so the value arrives as one word as it
would have if pasted: outside quotes ``"${X}"``, inside double quotes ``${X}``, inside single
quotes ``'"${X}"'`` (close, reference, reopen). Places where no reference can carry the value
as data are refused at load time (``ExpressionError``): a quoted here-document's body, an
arithmetic expansion ``$(( ))``, and right after a backslash. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.expressions.template import Expression, Template
from jobd.expressions.values import render_string

PREFIX = "JOBD_EXPR_"

_CODE, _DQ, _SQ, _SUB, _BQ, _PARAM, _ARITH, _COMMENT, _HEREDOC, _HEREDOC_Q = (
    "code",
    "dq",
    "sq",
    "sub",
    "bq",
    "param",
    "arith",
    "comment",
    "heredoc",
    "heredoc_q",
)
_CODE_LIKE = frozenset({_CODE, _SUB, _BQ, _PARAM})
_WORD_END = frozenset(" \t\n;&|<>()")


class _Scanner:
    """Follows the quoting state of POSIX shell text, one piece at a time. It knows what
    matters for where a word is (quotes, ``$( )``, backquotes, ``${ }``, ``$(( ))``,
    comments, here-documents); it is not a parser and never needs to be one: whatever it
    gets wrong, values still come from the environment."""

    def __init__(self) -> None:
        self.stack: list[str] = [_CODE]
        self.escaped = False  # the previous character was an unquoted backslash
        self.arith_depth = 0
        self.pending: list[tuple[str, bool, bool]] = []  # here-docs: delimiter, quoted, <<-
        self.line = ""  # the here-document line read so far
        self.prev = "\n"

    @property
    def top(self) -> str:
        return self.stack[-1]

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def word(self) -> None:
        """An expression stands here: it is a word character to the shell."""
        self.escaped = False
        self.prev = "x"
        if self.top in (_HEREDOC, _HEREDOC_Q):
            self.line += "\0"  # never a delimiter line

    def _step(self, text: str, i: int) -> int:
        c = text[i]
        top = self.top
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if self.escaped:
            self.escaped = False
            self.prev = "x"
            return i + 1
        if top == _SQ:
            if c == "'":
                self.stack.pop()
            return i + 1
        if top == _COMMENT:
            if c == "\n":
                self.stack.pop()
                return self._newline(i)
            return i + 1
        if top in (_HEREDOC, _HEREDOC_Q):
            if c == "\n":
                delim, _, strip = self.pending[0]
                line = self.line.lstrip("\t") if strip else self.line
                self.line = ""
                if line == delim:
                    self.pending.pop(0)
                    self.stack.pop()
                    if self.pending:
                        self.stack.append(_HEREDOC_Q if self.pending[0][1] else _HEREDOC)
                return i + 1
            self.line += c
            if top == _HEREDOC and c == "\\":
                self.escaped = True
            return i + 1
        if c == "\\":
            self.escaped = True
            return i + 1
        if top == _ARITH:
            if c == "(":
                self.arith_depth += 1
            elif c == ")":
                if self.arith_depth == 0 and nxt == ")":
                    self.stack.pop()
                    self.prev = "x"
                    return i + 2
                self.arith_depth -= 1
            return i + 1
        if c == "$" and nxt == "(":
            if text[i + 2 : i + 3] == "(":
                self.stack.append(_ARITH)
                self.arith_depth = 0
                return i + 3
            self.stack.append(_SUB)
            self.prev = "("
            return i + 2
        if c == "$" and nxt == "{":
            self.stack.append(_PARAM)
            return i + 2
        if c == "`":
            if top == _BQ:
                self.stack.pop()
            else:
                self.stack.append(_BQ)
            self.prev = "x"
            return i + 1
        if top == _DQ:
            if c == '"':
                self.stack.pop()
                self.prev = "x"
            return i + 1
        # code-like: code, $( ), backquotes, ${ }
        if c == "'":
            self.stack.append(_SQ)
        elif c == '"':
            self.stack.append(_DQ)
        elif (c == ")" and top == _SUB) or (c == "}" and top == _PARAM):
            self.stack.pop()
        elif c == "#" and (self.prev in _WORD_END) and top != _PARAM:
            self.stack.append(_COMMENT)
        elif c == "<" and nxt == "<" and text[i + 2 : i + 3] != "<":
            return self._heredoc(text, i + 2)
        elif c == "\n":
            self.prev = c
            return self._newline(i)
        self.prev = c
        return i + 1

    def _newline(self, i: int) -> int:
        self.prev = "\n"
        if self.pending and self.top == _CODE:
            self.stack.append(_HEREDOC_Q if self.pending[0][1] else _HEREDOC)
            self.line = ""
        return i + 1

    def _heredoc(self, text: str, i: int) -> int:
        strip = text[i : i + 1] == "-"
        i += strip
        while i < len(text) and text[i] in " \t":
            i += 1
        start, quoted = i, False
        while i < len(text) and text[i] not in _WORD_END:
            if text[i] in "'\"\\":
                quoted = True
            i += 1
        word = text[start:i]
        delim = word.replace("'", "").replace('"', "").replace("\\", "")
        if delim:
            self.pending.append((delim, quoted, strip))
        self.prev = "x"
        return i


def _reference(
    name: str, where: str, scanner: _Scanner, template: Template, expr: Expression
) -> str:
    if scanner.escaped:
        raise ExpressionError(
            f"'${{{{ {expr.source} }}}}' right after a backslash in a shell "
            f"command: remove the backslash ('{_short(template.source)}')"
        )
    if where == _ARITH:
        raise ExpressionError(
            f"'${{{{ {expr.source} }}}}' inside '$(( ))' in a shell command: the shell would "
            f"evaluate the value as an arithmetic expression; assign it to a variable outside "
            f"'$(( ))' and check it is a number first ('{_short(template.source)}')"
        )
    if where == _HEREDOC_Q:
        raise ExpressionError(
            f"'${{{{ {expr.source} }}}}' inside a quoted here-document (<<'EOF') in a shell "
            f"command: values reach the shell as variables, which such a here-document does "
            f"not expand; quote nothing in its delimiter (<<EOF) ('{_short(template.source)}')"
        )
    if where == _SQ:
        return f"'\"${{{name}}}\"'"
    if where in (_DQ, _HEREDOC, _COMMENT):
        return f"${{{name}}}"
    return f'"${{{name}}}"'


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """A shell-string command: the script ``/bin/sh`` gets and the expressions whose values
    go in the environment, by variable name."""

    script: str
    variables: tuple[tuple[str, Expression], ...]

    def render(self, context: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
        """The script (the same for every run) and the environment entries to add."""
        env: dict[str, str] = {}
        for name, expr in self.variables:
            value = render_string(expr.evaluate(context))
            if "\x00" in value:
                raise ExpressionError(
                    f"the value of '{expr.source}' holds a NUL character, "
                    "which no environment variable can"
                )
            env[name] = value
        return self.script, env


@lru_cache(maxsize=1024)
def shell_command(template: Template) -> ShellCommand:
    """The shell script for ``template``: literal text as written, each expression a quoted
    variable reference. ``ExpressionError`` where no reference can stand (see the module)."""
    scanner = _Scanner()
    out: list[str] = []
    variables: list[tuple[str, Expression]] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            scanner.feed(part)
            continue
        if not part.source:  # an empty ${{ }}: null, nothing at all, as pasted
            continue
        name = f"{PREFIX}{len(variables) + 1}"
        out.append(_reference(name, scanner.top, scanner, template, part))
        variables.append((name, part))
        scanner.word()
    return ShellCommand("".join(out), tuple(variables))
