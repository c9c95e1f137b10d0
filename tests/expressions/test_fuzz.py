"""Whatever text a user writes, parsing and rendering raise only ExpressionError, and nothing
of it is ever run as Python."""

from __future__ import annotations

import ast
import contextlib
import copy
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobd.expressions
from jobd.expressions import ExpressionError, parse_condition, parse_template

CTX: dict[str, Any] = {
    "params": {"a": "1", "b": "x", "json": '{"k": [1, 2, {"z": null}]}'},
    "matrix": {"os": "linux", "n": 3, "list": [1, "two", None], "obj": {"k": {"v": True}}},
    "needs": {"up": {"result": "success", "outputs": {"o": "[1,2]"}}},
    "env": {"HOME": "/root"},
    "job": {"id": "j"},
    "run": {"attempt": 1},
    "now": {"year": 2024},
}

PIECES = [
    "${{",
    "}}",
    " ",
    "'",
    "''",
    "(",
    ")",
    "[",
    "]",
    ".",
    ",",
    "*",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "=",
    "&",
    "|",
    "-",
    "+",
    "0",
    "1.5",
    "0x1f",
    "1e3",
    "NaN",
    "Infinity",
    "true",
    "false",
    "null",
    "params",
    "matrix",
    "needs",
    "env",
    "job",
    "run",
    "now",
    "a",
    "b",
    "json",
    "os",
    "list",
    "obj",
    "k",
    "up",
    "outputs",
    "result",
    "contains(",
    "startsWith(",
    "endsWith(",
    "format(",
    "join(",
    "fromJson(",
    "toJson(",
    "'{0}'",
    "'{'",
    "'x'",
    "__import__('os')",
    "__class__",
    "lambda: 1",
    "\n",
    '"',
    "{{",
    "}",
    "$",
    "\\",
    "ı",
    "é",
    "\x00",
]

texts = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(PIECES), max_size=25).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=25).map(lambda p: "${{ " + "".join(p) + " }}"),
)


def _render(text: str) -> None:
    try:
        template = parse_template(text)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        assert isinstance(template.render(CTX), str)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_random_templates_raise_only_expression_error(text: str) -> None:
    before = copy.deepcopy(CTX)
    _render(text)
    assert before == CTX  # nothing reached into the context and changed it


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES[2:]), min_size=1, max_size=25).map("".join))
def test_random_conditions_raise_only_expression_error(text: str) -> None:
    try:
        expr = parse_condition(text)
    except ExpressionError:
        return
    with contextlib.suppress(ExpressionError):
        expr.evaluate(CTX)


def test_python_payloads_are_not_python() -> None:
    canary: dict[str, Any] = {"params": {}}
    for payload in (
        "__import__('os').system('false')",
        "params.__setitem__('x', 1)",
        "params.update({'x': 1})",
        "exec('x=1')",
        "eval('1')",
        "().__class__",
        "[c for c in ()]",
        "lambda: 0",
        "1 if 1 else 0",
        "params['x'] = 1",
        "import os",
        "open('/etc/passwd')",
        "{'a': 1}",
    ):
        for text in (payload, "${{ " + payload + " }}"):
            try:
                parse_condition(text).evaluate(canary)
            except ExpressionError:
                continue
            raise AssertionError(f"{text!r} was accepted")
    assert canary == {"params": {}}


def test_the_package_never_calls_python_evaluation() -> None:
    builtins = {"eval", "exec", "compile", "__import__", "getattr"}
    methods = {"eval", "exec", "import_module", "literal_eval", "__import__"}
    root = Path(jobd.expressions.__file__).parent
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            bad = (isinstance(f, ast.Name) and f.id in builtins) or (
                isinstance(f, ast.Attribute)
                and (
                    f.attr in methods
                    or (
                        f.attr in builtins
                        and not (isinstance(f.value, ast.Name) and f.value.id == "re")
                    )
                )
            )
            assert not bad, f"{path.name}:{node.lineno} calls {ast.unparse(f)}"
