"""The syntax tree and the parser of one expression (the text inside ``${{ }}``).

Precedence, loosest first: ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``!``, then property access
(``a.b``, ``a['b']``, ``a.*``) and calls. Names of contexts and functions are case-insensitive;
a context outside the allowed roots and an unknown function are errors here, at load time.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.expressions.functions import FUNCTIONS, STATUS_FUNCTIONS, format_string
from jobd.expressions.lexer import Located, T, Token, tokenize
from jobd.expressions.values import literal_number

ROOTS: tuple[str, ...] = ("params", "matrix", "needs", "env", "job", "run", "now")
MAX_DEPTH = 50  # nesting of parentheses, '!' and operators (GitHub's limit)
MAX_LENGTH = 21000  # characters in one expression (GitHub's limit)


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Context:
    name: str  # lower case, one of the allowed roots
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Star:
    """``*`` in ``a.*`` or ``a[*]``."""


@dataclass(frozen=True, slots=True)
class Index:
    target: Node
    key: Node | Star
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    op: T
    left: Node
    right: Node
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Logical:
    op: T  # T.AND or T.OR; evaluates to one of its operands
    args: tuple[Node, ...]
    height: int = field(default=1, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # lower case key of FUNCTIONS
    args: tuple[Node, ...]
    height: int = field(default=1, compare=False)


Node = Literal | Context | Index | Not | Compare | Logical | Call


@dataclass(frozen=True, slots=True)
class Parsed:
    node: Node
    contexts: frozenset[str]
    properties: frozenset[tuple[str, str]]  # (root, first property) read with a literal name


def _height(*children: Node | Star) -> int:
    return 1 + max((c.height for c in children if not isinstance(c, Star)), default=0)


def _suggest(name: str, choices: Collection[str]) -> str | None:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


class _Parser:
    def __init__(self, text: str, roots: Collection[str]) -> None:
        self.text = text
        self.roots = tuple(roots)
        self.allowed = {r.lower(): r for r in roots}
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.contexts: set[str] = set()
        self.properties: set[tuple[str, str]] = set()

    # --- token helpers ---

    def peek(self) -> Token:
        return self.tokens[self.i]

    def match(self, *types: T) -> Token | None:
        tok = self.tokens[self.i]
        if tok.type in types:
            self.i += 1
            return tok
        return None

    def expect(self, tt: T, what: str) -> Token:
        tok = self.match(tt)
        if tok is None:
            raise self.unexpected(self.peek(), f"expected {what}")
        return tok

    def unexpected(self, tok: Token, hint: str = "") -> Located:
        if tok.type is T.EOF:
            return Located("unexpected end of expression", tok.pos, hint)
        return Located(f"unexpected token {tok.describe()}", tok.pos, hint)

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Located(f"expression nested more than {MAX_DEPTH} levels deep", tok.pos)

    def node(self, n: Node, tok: Token) -> Node:
        if n.height > MAX_DEPTH:
            raise Located(f"expression nested more than {MAX_DEPTH} levels deep", tok.pos)
        return n

    # --- grammar ---

    def parse(self) -> Parsed:
        if self.peek().type is T.EOF:
            raise Located("empty expression", 0)
        node = self.expression()
        tok = self.peek()
        if tok.type is not T.EOF:
            hint = (
                "a value must be followed by an operator"
                if tok.type in (T.IDENT, T.NUMBER, T.STRING, T.TRUE, T.FALSE, T.NULL, T.LPAREN)
                else ""
            )
            raise self.unexpected(tok, hint)
        return Parsed(node, frozenset(self.contexts), frozenset(self.properties))

    def expression(self) -> Node:
        self.enter(self.peek())
        try:
            return self.logical(T.OR)
        finally:
            self.depth -= 1

    def logical(self, op: T) -> Node:
        sub = self.logical_and if op is T.OR else self.equality
        first = sub()
        tok = self.peek()
        if tok.type is not op:
            return first
        args = [first]
        while self.match(op):
            args.append(sub())
        return self.node(Logical(op, tuple(args), _height(*args)), tok)

    def logical_and(self) -> Node:
        return self.logical(T.AND)

    def equality(self) -> Node:
        left = self.comparison()
        while (tok := self.match(T.EQ, T.NE)) is not None:
            right = self.comparison()
            left = self.node(Compare(tok.type, left, right, _height(left, right)), tok)
        return left

    def comparison(self) -> Node:
        left = self.unary()
        while (tok := self.match(T.LT, T.LE, T.GT, T.GE)) is not None:
            right = self.unary()
            left = self.node(Compare(tok.type, left, right, _height(left, right)), tok)
        return left

    def unary(self) -> Node:
        tok = self.match(T.BANG)
        if tok is None:
            return self.postfix()
        self.enter(tok)
        try:
            operand = self.unary()
        finally:
            self.depth -= 1
        return self.node(Not(operand, _height(operand)), tok)

    def postfix(self) -> Node:
        node, indexable = self.primary()
        if not indexable:
            return node
        while True:
            if (tok := self.match(T.LBRACKET)) is not None:
                key: Node | Star = Star() if self.match(T.STAR) else self.expression()
                self.expect(T.RBRACKET, "']'")
            elif (tok := self.match(T.DOT)) is not None:
                name = self.peek()
                if self.match(T.STAR):
                    key = Star()
                elif self.match(T.IDENT):
                    key = Literal(name.lexeme)
                else:
                    raise self.unexpected(
                        name, "a property name follows '.'; write a['...'] for other names"
                    )
            else:
                return node
            if (
                isinstance(node, Context)
                and isinstance(key, Literal)
                and isinstance(key.value, str)
            ):
                self.properties.add((node.name, key.value))
            node = self.node(Index(node, key, _height(node, key)), tok)

    def primary(self) -> tuple[Node, bool]:
        tok = self.peek()
        match tok.type:
            case T.TRUE | T.FALSE | T.NULL:
                self.i += 1
                return Literal({T.TRUE: True, T.FALSE: False, T.NULL: None}[tok.type]), False
            case T.NUMBER:
                self.i += 1
                assert isinstance(tok.value, float)
                return Literal(literal_number(tok.value)), False
            case T.STRING:
                self.i += 1
                return Literal(tok.value), False
            case T.LPAREN:
                self.i += 1
                inner = self.expression()
                self.expect(T.RPAREN, "')'")
                return inner, True
            case T.IDENT:
                self.i += 1
                if self.peek().type is T.LPAREN:
                    return self.call(tok), True
                return self.context(tok), True
        raise self.unexpected(tok)

    def context(self, tok: Token) -> Node:
        name = tok.lexeme.lower()
        if name not in self.allowed:
            allowed = ", ".join(self.roots)
            hint = f"expressions may read {allowed}"
            close = _suggest(name, self.roots)
            if close:
                hint = f"did you mean '{close}'? {hint}"
            if name in FUNCTIONS:
                hint = f"'{FUNCTIONS[name].name}' is a function: call it with (...)"
            raise Located(f"unknown context '{tok.lexeme}'", tok.pos, hint)
        self.contexts.add(name)
        return Context(name)

    def call(self, tok: Token) -> Node:
        self.expect(T.LPAREN, "'('")
        name = tok.lexeme.lower()
        fn = FUNCTIONS.get(name)
        if fn is None:
            names = [f.name for f in FUNCTIONS.values()]
            if name in STATUS_FUNCTIONS:
                hint = (
                    "jobd has no status functions: a job's trigger_rule decides how it "
                    "runs after its needs (see docs/pipelines.md)"
                )
            else:
                close = _suggest(name, names)
                hint = (
                    (f"did you mean '{close}'? " if close else "")
                    + "functions: "
                    + ", ".join(names)
                )
            raise Located(f"unknown function '{tok.lexeme}'", tok.pos, hint)
        args: list[Node] = []
        if self.match(T.RPAREN) is None:
            while True:
                args.append(self.expression())
                if self.match(T.COMMA) is None:
                    self.expect(T.RPAREN, "',' or ')'")
                    break
        if not fn.min_args <= len(args) <= fn.max_args:
            raise Located(f"function '{fn.name}' takes {fn.arity()}, got {len(args)}", tok.pos)
        if name == "case" and len(args) % 2 == 0:
            raise Located(
                f"function 'case' takes an odd number of arguments (pairs of a "
                f"condition and a value, then the default), got {len(args)}",
                tok.pos,
            )
        if name == "format" and isinstance(args[0], Literal) and isinstance(args[0].value, str):
            try:
                format_string(args[0].value, [None] * (len(args) - 1), check_only=True)
            except ExpressionError as exc:
                raise Located(str(exc), tok.pos) from None
        return self.node(Call(name, tuple(args), _height(*args)), tok)


def parse_expression(text: str, roots: Collection[str] = ROOTS) -> Parsed:
    """Parse one expression; raises ``Located`` with an offset into ``text``."""
    if len(text) > MAX_LENGTH:
        raise Located(f"expression longer than {MAX_LENGTH} characters", 0)
    return _Parser(text, roots).parse()
