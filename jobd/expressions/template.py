"""Templates (text with ``${{ }}`` parts) and conditions: the public face of the language."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.expressions.evaluator import evaluate
from jobd.expressions.lexer import Located
from jobd.expressions.parser import ROOTS, Node, parse_expression
from jobd.expressions.values import render_string, truthy

OPEN, CLOSE = "${{", "}}"


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"at column {column}" if line == 1 else f"at line {line}, column {column}"


def _shown(source: str) -> str:
    return source if len(source) <= 100 else source[:97] + "..."


def _error(located: Located, text: str, base: int, source: str) -> ExpressionError:
    message = f"{located.message} {_where(text, base + located.pos)} in '{_shown(source)}'"
    if located.hint:
        message += f"; {located.hint}"
    return ExpressionError(message)


@dataclass(frozen=True, slots=True)
class Expression:
    """One parsed expression. Equal when their source text is equal."""

    source: str
    node: Node = field(compare=False, repr=False)
    contexts: frozenset[str] = field(compare=False)
    """Context roots the expression reads (lower case)."""
    properties: frozenset[tuple[str, str]] = field(compare=False, repr=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value against ``context`` (root name → data); ``ExpressionError`` on a runtime
        error such as ``fromJson`` of bad JSON."""
        try:
            return evaluate(self.node, context)
        except ExpressionError as exc:
            raise ExpressionError(f"{exc} in '{_shown(self.source)}'") from None
        except RecursionError:
            raise ExpressionError(
                f"a value is nested too deeply in '{_shown(self.source)}'"
            ) from None

    def reads(self, root: str) -> frozenset[str]:
        """First-level names read under ``root`` by a literal name (``needs.build.result``
        reads ``build`` under ``needs``); dynamic keys such as ``needs[params.x]`` are not
        listed."""
        return frozenset(p for r, p in self.properties if r == root)


@dataclass(frozen=True, slots=True)
class Template:
    """Text with zero or more ``${{ expression }}`` parts. Equal when their source is equal."""

    source: str
    parts: tuple[str | Expression, ...] = field(compare=False, repr=False)

    @property
    def has_expressions(self) -> bool:
        return any(isinstance(p, Expression) for p in self.parts)

    @property
    def contexts(self) -> frozenset[str]:
        """Context roots read by any part (lower case)."""
        return frozenset().union(*(p.contexts for p in self.parts if isinstance(p, Expression)))

    def reads(self, root: str) -> frozenset[str]:
        """First-level names read under ``root`` by any part (see ``Expression.reads``)."""
        return frozenset().union(*(p.reads(root) for p in self.parts if isinstance(p, Expression)))

    def render(self, context: Mapping[str, Any]) -> str:
        """The text with each expression replaced by its value as a string: null is empty,
        numbers as GitHub writes them (``20``, not ``20.0``), arrays and objects as JSON."""
        if not self.has_expressions:
            return "".join(p for p in self.parts if isinstance(p, str))
        return "".join(
            p if isinstance(p, str) else render_string(p.evaluate(context)) for p in self.parts
        )


def _find_close(text: str, start: int) -> int:
    """Offset of the ``}}`` that ends an expression starting at ``start``, skipping quoted
    strings; -1 when there is none."""
    i, quoted = start, False
    while i < len(text):
        c = text[i]
        if c == "'":
            quoted = not quoted  # '' inside a string toggles twice
        elif not quoted and text.startswith(CLOSE, i):
            return i
        i += 1
    return -1


def _parse(text: str, base: int, end: int, whole: str, roots: Collection[str]) -> Expression:
    raw = whole[base:end]
    source = raw.strip()
    lead = len(raw) - len(raw.lstrip())
    try:
        parsed = parse_expression(source, roots)
    except Located as exc:
        raise _error(exc, whole, base + lead, source or raw) from None
    return Expression(source, parsed.node, parsed.contexts, parsed.properties)


_EMPTY = Expression("", parse_expression("null", ()).node, frozenset(), frozenset())


@lru_cache(maxsize=1024)
def _parse_template(text: str, roots: tuple[str, ...]) -> Template:
    parts: list[str | Expression] = []
    i = 0
    while True:
        j = text.find(OPEN, i)
        if j < 0:
            break
        if j > i:
            parts.append(text[i:j])
        start = j + len(OPEN)
        end = _find_close(text, start)
        if end < 0:
            naive = text.find(CLOSE, start)
            if naive >= 0:  # a '}}' inside an unclosed string: let the lexer say so
                _parse(text, start, naive, text, roots)
            raise ExpressionError(
                f"unclosed '{OPEN}' {_where(text, j)} in '{_shown(text)}'; close it with '{CLOSE}'"
            )
        if not text[start:end].strip():
            parts.append(_EMPTY)  # GitHub: an empty expression is null (renders as nothing)
        else:
            parts.append(_parse(text, start, end, text, roots))
        i = end + len(CLOSE)
    if i < len(text) or not parts:
        parts.append(text[i:])
    return Template(text, tuple(parts))


def parse_template(text: str, *, roots: Collection[str] = ROOTS) -> Template:
    """Parse text holding zero or more ``${{ expression }}`` parts.

    Raises ``ExpressionError`` with a message for the user, e.g. ``unclosed '${{' at column 7``
    or ``unknown function 'lenght' at column 5 in 'lenght(x)'; did you mean ...``. ``roots``
    narrows the contexts an expression may read (default: all of ``ROOTS``).
    """
    return _parse_template(text, tuple(roots))


@lru_cache(maxsize=1024)
def _parse_condition(text: str, roots: tuple[str, ...]) -> Expression:
    stripped = text.strip()
    if not stripped:
        raise ExpressionError("empty condition")
    if OPEN in stripped:
        template = _parse_template(text, roots)
        exprs = [p for p in template.parts if isinstance(p, Expression)]
        rest = "".join(p for p in template.parts if isinstance(p, str))
        if len(exprs) != 1 or rest.strip():
            raise ExpressionError(
                f"a condition is one expression, written bare or as a single "
                f"'{OPEN} ... {CLOSE}': '{_shown(text)}'"
            )
        if exprs[0] is _EMPTY:  # stricter than GitHub, where an empty if: means success()
            raise ExpressionError(f"empty condition: '{_shown(text)}'")
        return exprs[0]
    return _parse(text, 0, len(text), text, roots)


def parse_condition(text: str, *, roots: Collection[str] = ROOTS) -> Expression:
    """Parse a condition: ``${{ expr }}`` or a bare ``expr`` (as GitHub's ``if:``)."""
    return _parse_condition(text, tuple(roots))


def evaluate_condition(text: str, context: Mapping[str, Any]) -> bool:
    """Parse ``text`` as a condition and tell whether its value is truthy."""
    return truthy(parse_condition(text).evaluate(context))
