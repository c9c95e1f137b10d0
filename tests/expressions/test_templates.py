"""Templates and conditions: parsing, rendering, contexts and the messages users see."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from jobd.expressions import (
    ROOTS,
    ExpressionError,
    evaluate_condition,
    parse_condition,
    parse_template,
)

CTX: dict[str, Any] = {
    "params": {"name": "world", "count": "3", "empty": ""},
    "matrix": {"os": "linux", "node": 20, "py": 3.12, "flag": True, "list": ["a", "b"]},
    "needs": {
        "extract": {"result": "success", "outputs": {"rows": "42", "json": '{"a": [1]}'}},
        "load": {"result": "failure", "outputs": {}},
    },
    "env": {"HOME": "/root"},
    "job": {"id": "etl"},
    "run": {"id": 7, "attempt": 2},
    "now": {"year": 2024, "iso": "2024-05-01T00:00:00+00:00"},
}


def render(text: str, ctx: dict[str, Any] | None = None) -> str:
    return parse_template(text).render(CTX if ctx is None else ctx)


def test_plain_text_has_no_expressions() -> None:
    t = parse_template("echo hello $HOME {{ not ours }} $ {")
    assert not t.has_expressions
    assert t.contexts == frozenset()
    assert t.render({}) == "echo hello $HOME {{ not ours }} $ {"
    assert parse_template("").render({}) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello ${{ params.name }}!", "hello world!"),
        ("${{ matrix.os }}-${{ matrix.node }}", "linux-20"),
        ("${{matrix.py}}", "3.12"),
        ("${{ matrix.flag }} ${{ null }} ${{ params.missing }}|", "true  |"),
        ("${{ matrix.list }}", '["a","b"]'),
        ("${{ needs.extract.outputs }}", '{"rows":"42","json":"{\\"a\\": [1]}"}'),
        ("${{ needs.extract.outputs.rows }} rows", "42 rows"),
        ("${{ fromJson(needs.extract.outputs.json).a[0] }}", "1"),
        ("${{ run.attempt > 1 && 'retry' || 'first' }}", "retry"),
        ("${{ 1.0 }} ${{ 2.50 }} ${{ 1e3 }}", "1 2.5 1000"),
        ("${{ '}}' }}", "}}"),
        ("${{ 'it''s' }}", "it's"),
        ("a ${{ 'x' }} b ${{ 'y' }} c", "a x b y c"),
        ("${{ params.NAME }}", "world"),
        ("${{ Params.name }}", "world"),
        ("${{ format('{0}/{1}', env.HOME, job.id) }}", "/root/etl"),
        ("line1\n${{ params.name }}\nline3", "line1\nworld\nline3"),
        ("}} ${{ params.name }} }}", "}} world }}"),
        ("a${{ }}b${{}}c", "abc"),  # an empty expression is null, as in GitHub
    ],
)
def test_render(text: str, expected: str) -> None:
    assert render(text) == expected


def test_contexts_and_reads() -> None:
    t = parse_template("${{ needs.extract.outputs.rows }} ${{ matrix.os }} ${{ needs['load'] }}")
    assert t.has_expressions
    assert t.contexts == {"needs", "matrix"}
    assert t.reads("needs") == {"extract", "load"}
    assert t.reads("params") == frozenset()
    c = parse_condition("needs.a.result == 'success' && contains(needs.*.result, 'failure')")
    assert c.contexts == {"needs"}
    assert c.reads("needs") == {"a"}


def test_condition_forms() -> None:
    assert parse_condition("${{ 1 == 1 }}").evaluate({}) is True
    assert parse_condition("  ${{ params.name }}  ").evaluate(CTX) == "world"
    assert parse_condition("params.name == 'WORLD'").evaluate(CTX) is True
    assert evaluate_condition("params.count > 2", CTX) is True
    assert evaluate_condition("params.empty", CTX) is False
    assert evaluate_condition("params.missing || matrix.node", CTX) is True
    assert evaluate_condition("${{ needs.load.result == 'success' }}", CTX) is False
    assert evaluate_condition("matrix.list", CTX) is True  # an empty or full array is truthy
    # equal sources give equal (cached) expressions
    assert parse_condition("1 == 1") == parse_condition("1 == 1")
    assert parse_template("${{ 1 }}") == parse_template("${{ 1 }}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("echo ${{ params.a", "unclosed '${{' at column 6 in 'echo ${{ params.a'"),
        (
            "x ${{ params.a && && params.b }}",
            "unexpected token '&&' at column 19 in 'params.a && && params.b'",
        ),
        ("${{ params.a && }}", "unexpected end of expression at column 16 in 'params.a &&'"),
        ("${{ lenght(params.a) }}", "unknown function 'lenght' at column 5"),
        ("${{ contians(params.a, 'x') }}", "did you mean 'contains'?"),
        ("${{ fromjson('1', 2) }}", "function 'fromJson' takes 1 argument, got 2"),
        ("${{ contains('a') }}", "function 'contains' takes 2 arguments, got 1"),
        ("${{ join() }}", "function 'join' takes 1 or 2 arguments, got 0"),
        ("${{ format() }}", "function 'format' takes at least 1 argument, got 0"),
        (
            "${{ github.sha }}",
            "unknown context 'github' at column 5 in 'github.sha'; expressions may "
            "read params, matrix, needs, env, job, run, now",
        ),
        ("${{ parms.x }}", "did you mean 'params'?"),
        ("${{ format }}", "'format' is a function: call it with (...)"),
        ("${{ success() }}", "jobd has no status functions"),
        ('${{ "x" }}', "unexpected '\"' at column 5 in '\"x\"'; strings take single quotes"),
        (
            "${{ params.a = 1 }}",
            "unexpected '=' at column 14 in 'params.a = 1'; did you mean '=='?",
        ),
        ("${{ params.a & 1 }}", "did you mean '&&'?"),
        ("${{ params.a | 1 }}", "did you mean '||'?"),
        ("${{ 'abc }}", "unclosed string at column 5"),
        ("${{ params.a params.b }}", "unexpected token 'params' at column 14"),
        ("${{ 1.2.3 }}", "invalid number '1.2.3' at column 5"),
        ("${{ (params.a }}", "unexpected end of expression"),
        ("${{ params[ }}", "unexpected end of expression"),
        ("${{ 'a'[0] }}", "unexpected token '['"),
        ("${{ params.a, 1 }}", "unexpected token ','"),
        ("${{ params.# }}", "unexpected symbol '#'"),
        ("${{ f(x) }}", "unknown function 'f'"),
        ("${{ __import__('os') }}", "unknown function '__import__'"),
        ("one\ntwo ${{ params.a ! }}", "at line 2, column 18"),
    ],
)
def test_parse_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template(text)
    assert message in str(info.value)


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown context"):
        parse_condition("foo")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty condition"),
        ("   ", "empty condition"),
        ("${{ }}", "empty condition: '${{ }}'"),
        ("${{}}", "empty condition"),
        ("${{ 1 }} && ${{ 2 }}", "a condition is one expression"),
        ("${{ 1 }} extra", "a condition is one expression"),
        ("1 ==", "unexpected end of expression at column 5 in '1 =='"),
    ],
)
def test_condition_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_condition(text)
    assert message in str(info.value)


def test_roots_can_be_narrowed() -> None:
    parse_template("${{ params.a }}", roots=("params",))
    with pytest.raises(ExpressionError, match=r"expressions may read params$"):
        parse_template("${{ matrix.a }}", roots=("params",))
    assert set(ROOTS) == {"params", "matrix", "needs", "env", "job", "run", "now"}


@pytest.mark.parametrize(
    ("text", "ctx", "message"),
    [
        (
            "${{ fromJson(params.x) }}",
            {"params": {"x": "{bad"}},
            "fromJson: not valid JSON: '{bad'",
        ),
        ("${{ fromJson(params.x) }}", {"params": {"x": "  "}}, "fromJson: the input is empty"),
        ("${{ fromJson(params.x) }}", {"params": {"x": "NaN"}}, "fromJson: not valid JSON"),
        (
            "${{ fromJson(params.x) }}",
            {"params": {"x": "[" * 100_000 + "]" * 100_000}},
            "nested too deeply",
        ),
        ("${{ format(params.x) }}", {"params": {"x": "}"}}, "invalid format string"),
    ],
)
def test_runtime_errors_name_the_expression(text: str, ctx: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template(text).render(ctx)
    assert message in str(info.value)
    assert "in '" in str(info.value)


def test_to_json_of_a_value_that_contains_itself() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ExpressionError, match="contains itself"):
        parse_template("${{ toJson(params.x) }}").render({"params": {"x": loop}})


def test_nesting_is_bounded() -> None:
    ok = "(" * 40 + "1" + ")" * 40
    assert parse_condition(ok).evaluate({}) == 1
    for deep in (
        "(" * 60 + "1" + ")" * 60,
        "!" * 60 + "1",
        " == ".join(["1"] * 60),
        "params" + ".a" * 60,
        "format(" * 60 + "'x'" + ")" * 60,
    ):
        with pytest.raises(ExpressionError, match="nested more than 50 levels"):
            parse_condition(deep)
    with pytest.raises(ExpressionError, match="longer than 21000") as info:
        parse_condition("1 || " * 5000 + "1")
    assert len(str(info.value)) < 200  # the source is shortened in messages


class Color(StrEnum):
    RED = "red"


def test_other_python_values_are_read_as_strings() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    ctx = {"now": {"dt": when, "path": Path("/tmp/x"), "color": Color.RED, "tags": {"b"}}}
    assert render("${{ now.dt }}", ctx) == "2024-05-01T12:30:00+00:00"
    assert render("${{ now.path }}", ctx) == "/tmp/x"
    assert render("${{ now.color == 'RED' }}", ctx) == "true"
    assert render("${{ now.tags[0] }}", ctx) == "b"
    assert render("${{ now.dt.year }}", ctx) == ""  # no Python attribute is ever reached


def test_no_python_attribute_or_item_is_reachable() -> None:
    class Secret:
        token = "leaked"

        def __getitem__(self, key: str) -> str:
            return "leaked"

    ctx = {"params": Secret(), "env": {"x": Secret()}}
    for expr in (
        "params.token",
        "params['token']",
        "params.__class__",
        "env.x.token",
        "env.x.__dict__",
        "env.__class__",
        "toJson(env)",
    ):
        assert "leaked" not in render("${{ " + expr + " }}", ctx)
