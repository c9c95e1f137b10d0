"""Helpers for the expression tests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jobd.expressions import parse_condition

# Table tests use GitHub's own context names (foo, test, ...) besides jobd's roots.
TABLE_ROOTS = (
    "params",
    "matrix",
    "needs",
    "env",
    "job",
    "run",
    "now",
    "foo",
    "test",
    "context",
    "myarray",
    "myobject",
    "emptyarray",
    "emptyobject",
)


def ev(expr: str, contexts: Mapping[str, Any] | None = None) -> Any:
    """Evaluate one expression as the table tests do."""
    return parse_condition(expr, roots=TABLE_ROOTS).evaluate(contexts or {})


def same(actual: Any, expected: Any) -> bool:
    """Equal in kind and value: 1 is not true, NaN equals NaN, -0 keeps its sign."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float):
        if not isinstance(actual, int | float):
            return False
        if math.isnan(expected):
            return math.isnan(actual)
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    if isinstance(expected, dict):
        return (
            isinstance(actual, Mapping)
            and actual.keys() == expected.keys()
            and all(same(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected
