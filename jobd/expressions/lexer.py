"""Tokens of the expression language, read the way GitHub Actions reads them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, auto

from jobd.expressions.values import string_to_number


class T(Enum):
    LPAREN = auto()
    RPAREN = auto()
    LBRACKET = auto()
    RBRACKET = auto()
    COMMA = auto()
    DOT = auto()
    BANG = auto()
    NE = auto()
    EQ = auto()
    GT = auto()
    GE = auto()
    LT = auto()
    LE = auto()
    AND = auto()
    OR = auto()
    STAR = auto()
    NUMBER = auto()
    STRING = auto()
    IDENT = auto()
    TRUE = auto()
    FALSE = auto()
    NULL = auto()
    EOF = auto()


@dataclass(frozen=True, slots=True)
class Token:
    type: T
    lexeme: str
    pos: int  # offset in the expression text
    value: str | float | None = None

    def describe(self) -> str:
        return "end of expression" if self.type is T.EOF else f"'{self.lexeme}'"


_SINGLE = {
    "(": T.LPAREN,
    ")": T.RPAREN,
    "[": T.LBRACKET,
    "]": T.RBRACKET,
    ",": T.COMMA,
    "*": T.STAR,
}
_BOUNDARY = frozenset("()[],.!><=&|")
_KEYWORDS = {"true": T.TRUE, "false": T.FALSE, "null": T.NULL}
_HINTS = {"=": "==", "&": "&&", "|": "||"}


class Located(Exception):
    """A lexing or parsing problem at an offset of the expression; turned into an
    ``ExpressionError`` that names the column of the whole text."""

    def __init__(self, message: str, pos: int, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint


def _is_boundary(c: str) -> bool:
    return c in _BOUNDARY or c.isspace()


def _legal_identifier(s: str) -> bool:
    if not s or not (s[0].isascii() and (s[0].isalpha() or s[0] == "_")):
        return False
    return all(c.isascii() and (c.isalnum() or c in "_-") for c in s[1:])


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; raises ``Located`` on a bad symbol."""
    tokens: list[Token] = []
    i, n = 0, len(text)

    def previous() -> T:
        return tokens[-1].type if tokens else T.EOF

    def read_word(start: int, allow_dot: bool) -> int:
        j = start
        while j < n and (not _is_boundary(text[j]) or (allow_dot and text[j] == ".")):
            j += 1
        return j

    while i < n:
        c = text[i]
        start = i
        if c.isspace():
            i += 1
        elif c in _SINGLE:
            tokens.append(Token(_SINGLE[c], c, start))
            i += 1
        elif c == "." and previous() in (T.IDENT, T.RBRACKET, T.RPAREN, T.STAR):
            tokens.append(Token(T.DOT, c, start))
            i += 1
        elif c in "!<>=":
            if i + 1 < n and text[i + 1] == "=":
                tt = {"!": T.NE, "<": T.LE, ">": T.GE, "=": T.EQ}[c]
                tokens.append(Token(tt, c + "=", start))
                i += 2
            elif c == "=":
                raise Located("unexpected '='", start, "did you mean '=='?")
            else:
                tokens.append(Token({"!": T.BANG, "<": T.LT, ">": T.GT}[c], c, start))
                i += 1
        elif c in "&|":
            if i + 1 < n and text[i + 1] == c:
                tokens.append(Token(T.AND if c == "&" else T.OR, c * 2, start))
                i += 2
            else:
                raise Located(f"unexpected '{c}'", start, f"did you mean '{_HINTS[c]}'?")
        elif c == "'":
            i += 1
            chunks: list[str] = []
            while True:
                j = text.find("'", i)
                if j < 0:
                    raise Located(
                        "unclosed string",
                        start,
                        "strings are closed by a single quote; write '' for a quote inside one",
                    )
                chunks.append(text[i:j])
                if j + 1 < n and text[j + 1] == "'":
                    chunks.append("'")
                    i = j + 2
                    continue
                i = j + 1
                break
            tokens.append(Token(T.STRING, text[start:i], start, "".join(chunks)))
        elif c == '"':
            raise Located("unexpected '\"'", start, "strings take single quotes: 'like this'")
        elif c.isdigit() or c in "+-.":
            i = read_word(start, allow_dot=True)
            lexeme = text[start:i]
            value = string_to_number(lexeme) if c.isascii() else math.nan
            if math.isnan(value):
                raise Located(f"invalid number '{lexeme}'", start)
            tokens.append(Token(T.NUMBER, lexeme, start, value))
        else:
            i = read_word(start, allow_dot=False)
            if i == start:  # a lone character that is neither a boundary nor a word
                i += 1
            lexeme = text[start:i]
            if not _legal_identifier(lexeme):
                raise Located(f"unexpected symbol '{lexeme}'", start)
            tt = T.IDENT
            value = None
            if previous() is not T.DOT:
                if lexeme in _KEYWORDS:
                    tt = _KEYWORDS[lexeme]
                elif lexeme in ("NaN", "Infinity"):
                    tt, value = T.NUMBER, string_to_number(lexeme) if lexeme != "NaN" else math.nan
            tokens.append(Token(tt, lexeme, start, value))
    tokens.append(Token(T.EOF, "", n))
    return tokens
