"""``${{ }}`` expressions with GitHub Actions' semantics, parsed and evaluated safely.

Never evaluated as Python: a small lexer and parser build a tree that a walker evaluates over
plain data. See docs/expressions.md for the language.
"""

from __future__ import annotations

from jobd._exceptions import ExpressionError
from jobd.expressions.parser import ROOTS
from jobd.expressions.template import (
    Expression,
    Template,
    evaluate_condition,
    parse_condition,
    parse_template,
)
from jobd.expressions.values import format_number, render_string, to_json, to_string, truthy

__all__ = [
    "ROOTS",
    "Expression",
    "ExpressionError",
    "Template",
    "evaluate_condition",
    "format_number",
    "parse_condition",
    "parse_template",
    "render_string",
    "to_json",
    "to_string",
    "truthy",
]
