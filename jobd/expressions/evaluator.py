"""Evaluation of a parsed expression against a context: a walk over the tree, no Python ``eval``.

Reading a property that does not exist gives ``null`` (as GitHub). ``&&`` and ``||`` return one
of their operands, short-circuiting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jobd._exceptions import ExpressionError
from jobd.expressions.functions import FUNCTIONS
from jobd.expressions.lexer import T
from jobd.expressions.parser import (
    Call,
    Compare,
    Context,
    Index,
    Literal,
    Logical,
    Node,
    Not,
    Star,
)
from jobd.expressions.values import (
    PRIMITIVES,
    FilteredArray,
    Kind,
    equals,
    greater,
    kind_of,
    less,
    lookup,
    normalize,
    to_number,
    to_string,
    truthy,
)


def evaluate(node: Node, context: Mapping[str, Any]) -> Any:
    """The value of ``node``; raises ``ExpressionError`` when a function fails."""
    match node:
        case Literal(value=value):
            return value
        case Context(name=name):
            found, value = lookup(context, name)
            return normalize(value) if found else None
        case Index(target=target, key=key):
            key_value = key if isinstance(key, Star) else evaluate(key, context)
            return _index(evaluate(target, context), key_value)
        case Not(operand=operand):
            return not truthy(evaluate(operand, context))
        case Logical(op=op, args=args):
            result: Any = None
            for arg in args:
                result = evaluate(arg, context)
                if truthy(result) == (op is T.OR):
                    break
            return result
        case Compare(op=op, left=left, right=right):
            a, b = evaluate(left, context), evaluate(right, context)
            match op:
                case T.EQ:
                    return equals(a, b)
                case T.NE:
                    return not equals(a, b)
                case T.LT:
                    return less(a, b)
                case T.LE:
                    return less(a, b) or equals(a, b)
                case T.GT:
                    return greater(a, b)
                case _:
                    return greater(a, b) or equals(a, b)
        case Call(name=name, args=args):
            return FUNCTIONS[name].call([evaluate(a, context) for a in args])
    raise ExpressionError(f"cannot evaluate {node!r}")  # unreachable: the parser builds nodes


def _index(target: Any, key: Any) -> Any:
    """``target[key]``: GitHub's index rules (strings index objects, whole non-negative numbers
    index arrays, ``*`` lists every value; anything else is null)."""
    star = isinstance(key, Star)
    if isinstance(target, FilteredArray):
        out = FilteredArray()
        for item in target:
            item = normalize(item)
            k = kind_of(item)
            if k is Kind.OBJECT:
                if star:
                    out.extend(item.values())
                else:
                    found, value = _object_get(item, key)
                    if found:
                        out.append(value)
            elif k is Kind.ARRAY:
                if star:
                    out.extend(item)
                else:
                    i = _array_index(key)
                    if i is not None and i < len(item):
                        out.append(item[i])
        return out
    target = normalize(target)
    kt = kind_of(target)
    if star:
        if kt is Kind.OBJECT:
            return FilteredArray(normalize(v) for v in target.values())
        if kt is Kind.ARRAY:
            return FilteredArray(normalize(v) for v in target)
        return FilteredArray()
    if kt is Kind.OBJECT:
        found, value = _object_get(target, key)
        return normalize(value) if found else None
    if kt is Kind.ARRAY:
        i = _array_index(key)
        if i is not None and i < len(target):
            return normalize(target[i])
    return None


def _object_get(obj: Mapping[Any, Any], key: Any) -> tuple[bool, Any]:
    if kind_of(normalize(key)) not in PRIMITIVES:
        return False, None
    return lookup(obj, to_string(key))


def _array_index(key: Any) -> int | None:
    n = to_number(key)
    if math.isnan(n) or math.isinf(n) or n < 0:
        return None
    return math.floor(n)
