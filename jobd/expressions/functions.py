"""The functions an expression may call, with GitHub Actions' behaviour."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.expressions.values import (
    PRIMITIVES,
    Kind,
    equals,
    js_object,
    kind_of,
    literal_number,
    normalize,
    to_json,
    to_string,
    upper,
)


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # as documented (names are case-insensitive)
    min_args: int
    max_args: int
    call: Callable[[Sequence[Any]], Any]

    def arity(self) -> str:
        if self.min_args == self.max_args:
            n = self.min_args
            return f"{n} argument{'s' if n != 1 else ''}"
        if self.max_args >= MAX_ARGS:
            return f"at least {self.min_args} argument{'s' if self.min_args != 1 else ''}"
        return f"{self.min_args} or {self.max_args} arguments"


MAX_ARGS = 255


def _contains(args: Sequence[Any]) -> bool:
    search, item = normalize(args[0]), normalize(args[1])
    ks = kind_of(search)
    if ks in PRIMITIVES:
        if kind_of(item) not in PRIMITIVES:
            return False
        return to_string(item).lower() in to_string(search).lower()
    if ks is Kind.ARRAY:
        return any(equals(item, v) for v in search)
    return False


def _affix(args: Sequence[Any], *, start: bool) -> bool:
    text, affix = normalize(args[0]), normalize(args[1])
    if kind_of(text) not in PRIMITIVES or kind_of(affix) not in PRIMITIVES:
        return False
    t, a = upper(to_string(text)), upper(to_string(affix))
    return t.startswith(a) if start else t.endswith(a)


def format_string(fmt: str, args: Sequence[Any], *, check_only: bool = False) -> str:
    """``format('{0} and {{literal}}', x)``; raises ``ExpressionError`` on a bad format string.

    With ``check_only``, ``args`` only needs the right length (used at parse time)."""
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        lb, rb = fmt.find("{", i), fmt.find("}", i)
        if lb >= 0 and (rb < 0 or rb > lb):
            if fmt.startswith("{", lb + 1):  # '{{' is a literal '{'
                out.append(fmt[i : lb + 1])
                i = lb + 2
                continue
            j = lb + 1
            while j < n and "0" <= fmt[j] <= "9":
                j += 1
            if j == lb + 1 or j != rb:
                raise ExpressionError(
                    f"format: invalid format string '{fmt}': "
                    "use {0}, {1}, ... and '{{' / '}}' for braces"
                )
            index = int(fmt[lb + 1 : j])
            if index >= len(args):
                raise ExpressionError(
                    f"format: '{fmt}' refers to {{{index}}} but only {len(args)} "
                    f"argument{' follows' if len(args) == 1 else 's follow'} the format string"
                )
            out.append(fmt[i:lb])
            if not check_only:
                out.append(to_string(args[index]))
            i = rb + 1
        elif rb >= 0:
            if not fmt.startswith("}", rb + 1):
                raise ExpressionError(
                    f"format: invalid format string '{fmt}': a lone '}}' must be written '}}}}'"
                )
            out.append(fmt[i : rb + 1])
            i = rb + 2
        else:
            out.append(fmt[i:])
            break
    return "".join(out)


def _format(args: Sequence[Any]) -> str:
    return format_string(to_string(args[0]), args[1:])


def _join(args: Sequence[Any]) -> str:
    value = normalize(args[0])
    kv = kind_of(value)
    if kv in PRIMITIVES:
        return to_string(value)
    if kv is not Kind.ARRAY:
        return ""
    sep = ","
    if len(args) > 1 and kind_of(normalize(args[1])) in PRIMITIVES:
        sep = to_string(args[1])
    return sep.join(to_string(v) for v in value)


def _json_int(text: str) -> int | float:
    return literal_number(float(text))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _from_json(args: Sequence[Any]) -> Any:
    text = to_string(args[0])
    if not text.strip():
        raise ExpressionError("fromJson: the input is empty")
    try:
        # As JavaScript's JSON.parse: every number a double; objects as js_object builds them
        return json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=js_object, parse_int=_json_int
        )
    except RecursionError:
        raise ExpressionError("fromJson: the JSON is nested too deeply") from None
    except ValueError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise ExpressionError(f"fromJson: not valid JSON: {shown!r} ({exc})") from None


def _to_json(args: Sequence[Any]) -> str:
    return to_json(args[0])


def _case(args: Sequence[Any]) -> Any:
    """``case(pred1, value1, pred2, value2, ..., default)``: the value of the first predicate
    that is ``true``; a predicate must be a boolean."""
    for i in range(0, len(args) - 1, 2):
        predicate = normalize(args[i])
        if kind_of(predicate) is not Kind.BOOLEAN:
            raise ExpressionError(
                f"case: a predicate must be a boolean, got {kind_of(predicate).value}"
            )
        if predicate:
            return args[i + 1]
    return args[-1]


FUNCTIONS: dict[str, Function] = {
    f.name.lower(): f
    for f in (
        Function("contains", 2, 2, _contains),
        Function("startsWith", 2, 2, lambda a: _affix(a, start=True)),
        Function("endsWith", 2, 2, lambda a: _affix(a, start=False)),
        Function("format", 1, MAX_ARGS, _format),
        Function("join", 1, 2, _join),
        Function("fromJson", 1, 1, _from_json),
        Function("toJson", 1, 1, _to_json),
        Function("case", 3, MAX_ARGS, _case),
    )
}

# GitHub's job-status functions: jobd expresses them with trigger_rule instead.
STATUS_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled", "hashfiles"})
