"""GitHub's documented expression semantics, case by case.

The cases come from GitHub's expression documentation (literals, falsy values, the coercion
table) and from the test data of GitHub's own expression evaluator (actions/languageservices,
expressions/testdata: op_gt, operators_precedence, op_or, op_dot, coerce_string,
operators_case_insensitive, format, fromJSON, tojson).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from jobd.expressions import ExpressionError, truthy
from tests.expressions._helpers import ev, same

NAN = math.nan
INF = math.inf

# (expression, contexts, expected value)
Case = tuple[str, dict[str, Any] | None, Any]

LITERALS: list[Case] = [
    ("null", None, None),
    ("false", None, False),
    ("true", None, True),
    ("711", None, 711),
    ("-9.2", None, -9.2),
    ("0xff", None, 255),
    ("0xFF", None, 255),
    ("0o10", None, 8),
    ("-2.99e-2", None, -0.0299),
    ("1.2E+2", None, 120),
    (".5", None, 0.5),
    ("+123456.789", None, 123456.789),
    ("'It''s open source!'", None, "It's open source!"),
    ("''", None, ""),
    ("Infinity", None, INF),
    ("-Infinity", None, -INF),
    ("NaN", None, NAN),
]

# The documented coercion of mixed types to numbers (null 0, booleans 1/0, strings parsed).
COERCE_NUMBER: list[Case] = [
    ("null == 0", None, True),
    ("true == 1", None, True),
    ("false == 0", None, True),
    ("'' == 0", None, True),
    ("' 123456.789 ' == 123456.789", None, True),
    ("' +123456.789 ' == 123456.789", None, True),
    ("' -123456.789 ' == -123456.789", None, True),
    ("' 0xff ' == 255", None, True),
    ("' 0xFF ' == 255", None, True),
    ("' 0o10 ' == 8", None, True),
    ("' Infinity ' == Infinity", None, True),
    ("' -Infinity ' == -Infinity", None, True),
    ("' NaN ' != NaN", None, True),
    ("' NaN ' == NaN", None, False),
    ("'abc' == NaN", None, False),
    ("'abc' == 0", None, False),
    ("'1_000' == 1000", None, False),
    ("'inf' == Infinity", None, False),
    ("NaN == NaN", None, False),
    ("NaN != NaN", None, True),
    ("null == false", None, True),
    ("null == ''", None, True),
    ("true == '1'", None, True),
    ("true == 'true'", None, False),
    ("false == ''", None, True),
    ("null == null", None, True),
    # arrays and objects are never converted: equal only to the same instance
    ("test == test", {"test": [1]}, True),
    ("test == test", {"test": {}}, True),
    ("fromJson('[]') == fromJson('[]')", None, False),
    ("test == 0", {"test": []}, False),
    ("test == ''", {"test": []}, False),
    ("test != 0", {"test": {}}, True),
    ("test.a == test.b", {"test": {"a": [1], "b": [1]}}, False),
]

# op_gt.json, whole.
OP_GT: list[Case] = [
    ("false > true", None, False),
    ("false > false", None, False),
    ("true > false", None, True),
    ("true > true", None, False),
    ("1 > 2", None, False),
    ("1 > 1", None, False),
    ("2 > 1", None, True),
    ("1.002 > 1.001", None, True),
    ("'def' > 'abc'", None, True),
    ("'a' > 'b'", None, False),
    ("test > test", {"test": []}, False),
    ("test > test", {"test": {}}, False),
    ("false > 0", None, False),
    ("false > -11", None, True),
    ("true > 1", None, False),
    ("true > 0", None, True),
    ("false > NaN", None, False),
    ("true > NaN", None, False),
    ("false > Infinity", None, False),
    ("true > Infinity", None, False),
    ("false > -Infinity", None, True),
    ("true > -Infinity", None, True),
    ("false > '0'", None, False),
    ("false > '-1'", None, True),
    ("true > '1'", None, False),
    ("true > '0'", None, True),
    ("false > null", None, False),
    ("true > null", None, True),
    ("false > test", {"test": {}}, False),
    ("true > test", {"test": {}}, False),
    ("false > test", {"test": []}, False),
    ("true > test", {"test": []}, False),
    ("1 > false", None, True),
    ("0 > false", None, False),
    ("2 > true", None, True),
    ("1 > true", None, False),
    ("NaN > false", None, False),
    ("NaN > true", None, False),
    ("Infinity > false", None, True),
    ("Infinity > true", None, True),
    ("-Infinity > false", None, False),
    ("-Infinity > true", None, False),
    ("0 > ' 0 '", None, False),
    ("0 > ' -1 '", None, True),
    ("1 > ' 1 '", None, False),
    ("1 > ' 0 '", None, True),
    ("1 > null", None, True),
    ("0 > null", None, False),
    ("0 > test", {"test": {}}, False),
    ("1 > test", {"test": {}}, False),
    ("0 > test", {"test": []}, False),
    ("1 > test", {"test": []}, False),
    ("'0' > false", None, False),
    ("'1' > false", None, True),
    ("'1' > true", None, False),
    ("'2' > true", None, True),
    ("' 0 ' > -1", None, True),
    ("' 0 ' > 0", None, False),
    ("' 1 ' > 0", None, True),
    ("' 1 ' > 1", None, False),
    ("'' > null", None, False),
    ("'1' > null", None, True),
    ("'' > test", {"test": {}}, False),
    ("'' > test", {"test": []}, False),
    ("null > false", None, False),
    ("null > true", None, False),
    ("null > 0", None, False),
    ("null > -1", None, True),
    ("null > ' 0 '", None, False),
    ("null > ' -1 '", None, True),
    ("null > test", {"test": {}}, False),
    ("null > test", {"test": []}, False),
]

# <, <=, >= follow from > and ==, spot-checked.
OTHER_COMPARISONS: list[Case] = [
    ("1 < 2", None, True),
    ("'abc' < 'def'", None, True),
    ("false < true", None, True),
    ("null < 1", None, True),
    ("NaN < 1", None, False),
    ("NaN <= NaN", None, False),
    ("1 <= 1", None, True),
    ("'A' <= 'a'", None, True),
    ("2 >= '2'", None, True),
    ("test <= test", {"test": []}, True),
    ("test < test", {"test": []}, False),
]

# operators_precedence.json, whole.
PRECEDENCE: list[Case] = [
    ("foo.bar.baz", {"foo": {"bar": {"baz": 2}}}, 2),
    ("!foo.bar", {"foo": {"bar": True}}, False),
    ("(!foo).bar", {"foo": {"bar": True}}, None),
    ("3 > foo.bar", {"foo": {"bar": 2}}, True),
    ("foo.bar > 2", {"foo": {"bar": 3}}, True),
    ("3 > foo['bar']", {"foo": {"bar": 2}}, True),
    ("foo['bar'] > 2", {"foo": {"bar": 3}}, True),
    ("!2 < 3", None, True),
    ("!(2 < 3)", None, False),
    ("3 < 2 < 1", None, True),
    ("3 < (2 < 1)", None, False),
    ("3 < 2 <= 1", None, True),
    ("3 < (2 <= 1)", None, False),
    ("3 <= 2 < 1", None, True),
    ("3 <= (2 < 1)", None, False),
    ("0 > 0 < 1", None, True),
    ("0 > (0 < 1)", None, False),
    ("2 > 2 > 0", None, False),
    ("2 > (2 > 0)", None, True),
    ("2 <= 3 == true", None, True),
    ("2 <= (3 == true)", None, False),
    ("2 == 2 == 1", None, True),
    ("2 == (2 == 1)", None, False),
    ("2 == 2 != 0", None, True),
    ("2 == (2 != 0)", None, False),
    ("1 == 1 && 2", None, 2),
    ("1 == (1 && 2)", None, False),
    ("'a' == 'a' && 'b'", None, "b"),
    ("'a' == ('a' && 'b')", None, False),
    ("false && 0 || null", None, None),
    ("false && (0 || null)", None, False),
    ("1 || 2 && 3", None, 1),
    ("(1 || 2) && 3", None, 3),
]

# op_or.json, whole, and the same for &&: they return an operand, short-circuiting.
LOGICAL: list[Case] = [
    ("true || true || true", None, True),
    ("true || true", None, True),
    ("true || true || false", None, True),
    ("true || false", None, True),
    ("false || true", None, True),
    ("false || false", None, False),
    ("0 || 0 || 2 || 3", None, 2),
    ("false || 0", None, 0),
    ("false || '' || 'a' || 'b'", None, "a"),
    ("false || ''", None, ""),
    ("null || true", None, True),
    ("false || null", None, None),
    ("1 && 2 && 3", None, 3),
    ("1 && 0 && 3", None, 0),
    ("'a' && ''", None, ""),
    ("null && true", None, None),
    ("true && 'x'", None, "x"),
    ("test && 'yes'", {"test": []}, "yes"),
    # short circuit: the failing call on the right is never evaluated
    ("true || fromJson('not json')", None, True),
    ("false && fromJson('not json')", None, False),
    ("!0", None, True),
    ("!''", None, True),
    ("!'0'", None, False),
    ("!test", {"test": {}}, False),
    ("!!NaN", None, False),
    ("!-0", None, True),
]

# op_dot.json, whole (errors in the error table below).
PROPERTIES: list[Case] = [
    ("foo.bar", {"foo": {"bar": "baz"}}, "baz"),
    ("foo.Bar", {"foo": {"Bar": "baz"}}, "baz"),
    ("foo.b", {"foo": {"b": "baz"}}, "baz"),
    ("foo._", {"foo": {"_": "baz"}}, "baz"),
    ("foo._bar", {"foo": {"_bar": "baz"}}, "baz"),
    ("foo.b_ar", {"foo": {"b_ar": "baz"}}, "baz"),
    ("foo.b-ar", {"foo": {"b-ar": "baz"}}, "baz"),
    ('fromJson(\'{"one": "one val"}\').one', None, "one val"),
    ('(fromJson(\'{"one": "one val"}\')).one', None, "one val"),
    ("foo[*]", {"foo": {"one": "one val", "two": "two val"}}, ["one val", "two val"]),
    ("foo.bar", {"foo": {"BAR": "baz"}}, "baz"),
    ("foo.BAR", {"foo": {"bar": "baz"}}, "baz"),
    ("foo.true", {"foo": {"true": "it's true"}}, "it's true"),
    ("foo.false", {"foo": {"false": "it's false"}}, "it's false"),
    ("foo.Infinity", {"foo": {"Infinity": "it's Infinity"}}, "it's Infinity"),
    ("foo.NaN", {"foo": {"NaN": "it's NaN"}}, "it's NaN"),
    ("foo.null", {"foo": {"null": "it's null"}}, "it's null"),
    ("foo.format", {"foo": {"format": "it's format"}}, "it's format"),
    # missing things are null, never an error
    ("foo.missing", {"foo": {}}, None),
    ("foo.a.b.c", {"foo": {}}, None),
    ("foo", None, None),
    ("foo[0]", {"foo": ["x", "y"]}, "x"),
    ("foo[1.9]", {"foo": ["x", "y"]}, "y"),
    ("foo['1']", {"foo": ["x", "y"]}, "y"),
    ("foo[2]", {"foo": ["x", "y"]}, None),
    ("foo[-1]", {"foo": ["x", "y"]}, None),
    ("foo[1]", {"foo": {"1": "one"}}, "one"),
    ("foo.bar", {"foo": "a string"}, None),
    (
        "foo.*.result",
        {"foo": {"a": {"result": "success"}, "b": {"result": "failure"}}},
        ["success", "failure"],
    ),
    ("foo.*.x", {"foo": {"a": {"x": 1}, "b": {"y": 2}}}, [1]),
    ("foo[*][0]", {"foo": [[1, 2], [3], []]}, [1, 3]),
    ("foo.*", {"foo": "scalar"}, []),
]

# coerce_string.json: how format() writes each kind, numbers the JavaScript way.
TO_STRING: list[Case] = [
    ("format('{0}', null)", None, ""),
    ("format('{0}', true)", None, "true"),
    ("format('{0}', false)", None, "false"),
    ("format('{0}', 1)", None, "1"),
    ("format('{0}', .5)", None, "0.5"),
    ("format('{0}', 0.5)", None, "0.5"),
    ("format('{0}', 2)", None, "2"),
    ("format('{0}', -1)", None, "-1"),
    ("format('{0}', -.5)", None, "-0.5"),
    ("format('{0}', -0.5)", None, "-0.5"),
    ("format('{0}', -2.0)", None, "-2"),
    ("format('{0}', 0)", None, "0"),
    ("format('{0}', 0.0)", None, "0"),
    ("format('{0}', -0)", None, "0"),
    ("format('{0}', -0.0)", None, "0"),
    ("format('{0}', 123456.789)", None, "123456.789"),
    ("format('{0}', +123456.789)", None, "123456.789"),
    ("format('{0}', -123456.789)", None, "-123456.789"),
    ("format('{0}', 0.84551240822557006)", None, "0.84551240822557"),
    ("format('{0}', 1.9)", None, "1.9"),
    ("format('{0}', 1234.56)", None, "1234.56"),
    ("format('{0}', 0xff)", None, "255"),
    ("format('{0}', 0xFF)", None, "255"),
    ("format('{0}', 0o10)", None, "8"),
    ("format('{0}', 1.2e2)", None, "120"),
    ("format('{0}', 1.2E2)", None, "120"),
    ("format('{0}', 1.2e+2)", None, "120"),
    ("format('{0}', 1.2E+2)", None, "120"),
    ("format('{0}', 1.2e-2)", None, "0.012"),
    ("format('{0}', 1.2E-2)", None, "0.012"),
    ("format('{0}', Infinity)", None, "Infinity"),
    ("format('{0}', -Infinity)", None, "-Infinity"),
    ("format('{0}', NaN)", None, "NaN"),
    ("format('{0}', 'string value')", None, "string value"),
    ("format('{0}', context)", {"context": []}, "Array"),
    ("format('{0}', context)", {"context": [1, 2, 3]}, "Array"),
    ("format('{0}', context)", {"context": {}}, "Object"),
    ("format('{0}', context)", {"context": {"a": 1, "b": 2, "c": 3}}, "Object"),
    ("format('{0}', 1e21)", None, "1e+21"),
    ("format('{0}', 1e20)", None, "100000000000000000000"),
    ("format('{0}', 0.000001)", None, "0.000001"),
    ("format('{0}', 0.0000001)", None, "1e-7"),
    ("format('{0}', 1e-16)", None, "0"),
]

# operators_case_insensitive.json, most of it.
CASE: list[Case] = [
    ("'abcdefghijklmnopqrstuvwxyz' == 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", None, True),
    ("'abcdefghijklmnopqrstuvwxyz' != 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", None, False),
    ("'abcdefghijklmnopqrstuvwxyz' < 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", None, False),
    ("'abcdefghijklmnopqrstuvwxyz' <= 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", None, True),
    ("'abcdefghijklmnopqrstuvwxyz' >= 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", None, True),
    ("'A' < '['", None, True),
    ("'a' < '['", None, True),
    ("'a' > '['", None, False),
    ("'ς' == 'Σ'", None, True),
    ("'ς' == 'σ'", None, True),
    ("'Σ' == 'σ'", None, True),
    ("'ü' == 'Ü'", None, True),
    ("'ç' == 'Ç'", None, True),
    ("'i' == 'İ'", None, False),
    ("'i' < 'İ'", None, True),
    ("'İ' > 'i'", None, True),
    ("'ı' == 'I'", None, False),
    ("'ı' > 'I'", None, True),
    ("'I' < 'ı'", None, True),
    ("'АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЬЭЮЯ' == 'абвгдежзийклмнопрстуфхцчшщьэюя'", None, True),
]

# format.json (successes), and format's escapes.
FORMAT: list[Case] = [
    ("format(null)", None, ""),
    ("format(null, 'some arg')", None, ""),
    ("format('')", None, ""),
    ("format('', 'some arg')", None, ""),
    ("format('123{0}456', 'abc')", None, "123abc456"),
    ("format('123{0}456{0}789', 'abc')", None, "123abc456abc789"),
    ("format('123{0}456{1}789', 'abc', 'def')", None, "123abc456def789"),
    ("format('{0}123', 'abc')", None, "abc123"),
    ("format('123{0}', 'abc')", None, "123abc"),
    ("format('123{0}{1}456', 'abc', 'def')", None, "123abcdef456"),
    ("format('{{0}}', 'abc')", None, "{0}"),
    ("format('{{{{0}}}}', 'abc')", None, "{{0}}"),
    ("format('}}', 'abc')", None, "}"),
    ("format('{{', 'abc')", None, "{"),
    ("format('}}{{', 'abc')", None, "}{"),
    ("format('}}{{}}', 'abc')", None, "}{}"),
    ("format('{{{0}}}', 'abc')", None, "{abc}"),
    ("FORMAT('{1}{0}', 'a', 'b')", None, "ba"),
    ("format('{0}', foo)", {"foo": "it's"}, "it's"),
    ("format('{10}', 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'ten')", None, "ten"),
]

FUNCTIONS: list[Case] = [
    ("contains('Hello world', 'llo')", None, True),
    ("contains('Hello world', 'LLO')", None, True),
    ("contains('Hello world', 'xyz')", None, False),
    ("contains(foo, 'bug')", {"foo": ["bug", "help wanted"]}, True),
    ("contains(foo, 'BUG')", {"foo": ["bug", "help wanted"]}, True),
    ("contains(foo, 'bu')", {"foo": ["bug", "help wanted"]}, False),
    ("contains(foo, 1)", {"foo": ["1", "2"]}, True),
    ("contains(foo, 'x')", {"foo": {"x": 1}}, False),
    ("contains('abc', foo)", {"foo": ["a"]}, False),
    ("contains(123, 2)", None, True),
    ("contains(true, 'RU')", None, True),
    (
        "contains(foo.*.result, 'failure')",
        {"foo": {"a": {"result": "success"}, "b": {"result": "failure"}}},
        True,
    ),
    ("startsWith('Hello world', 'he')", None, True),
    ("startsWith('Hello world', 'world')", None, False),
    ("startsWith(foo, 'a')", {"foo": ["a"]}, False),
    ("startswith(1234, 12)", None, True),
    ("endsWith('Hello world', 'LD')", None, True),
    ("endsWith('Hello world', 'hello')", None, False),
    ("endsWith('x', foo)", {"foo": {}}, False),
    ("join(foo)", {"foo": ["a", "b", 1.0]}, "a,b,1"),
    ("join(foo, ' | ')", {"foo": ["a", "b"]}, "a | b"),
    ("join('abc')", None, "abc"),
    ("join(foo)", {"foo": {}}, ""),
    # fromJSON.json
    ("fromJSON('null')", None, None),
    ("fromJSON('true')", None, True),
    ("fromJSON('false')", None, False),
    ("fromJSON('0')", None, 0),
    ("fromJSON('123456789')", None, 123456789),
    ("fromJSON('-1234.5')", None, -1234.5),
    ("fromJSON('\"\"')", None, ""),
    ("fromJSON('\"abc''def\"')", None, "abc'def"),
    ('fromJSON(\'"abc\\\\\\"def"\')', None, 'abc\\"def'),
    ("fromJSON('[]')", None, []),
    ("fromJSON('[1, 2, 3]')", None, [1, 2, 3]),
    (
        'fromJSON(\'[[1, 2, 3], ["abc","def","ghi"], [true, false, null, [], {}]]\')',
        None,
        [[1, 2, 3], ["abc", "def", "ghi"], [True, False, None, [], {}]],
    ),
    ("fromJSON('{}')", None, {}),
    (
        'fromJSON(\'{"one": "value one", "two": "value two"}\')',
        None,
        {"one": "value one", "two": "value two"},
    ),
    ("fromJson(foo) > 9", {"foo": "10"}, True),
    ("fromJson(foo).a[1]", {"foo": '{"a": [5, 6]}'}, 6),
    # tojson.json
    ("tojson(null)", None, "null"),
    ("tojson(true)", None, "true"),
    ("tojson(false)", None, "false"),
    ("tojson(0)", None, "0"),
    ("tojson(-0)", None, "0"),
    ("tojson(123456789)", None, "123456789"),
    ("tojson(-1234.5)", None, "-1234.5"),
    ("tojson('')", None, '""'),
    ("tojson('abc')", None, '"abc"'),
    ("tojson('abc''def')", None, '"abc\'def"'),
    ("tojson('abc\\\"def')", None, '"abc\\\\\\"def"'),
    ("tojson(emptyArray)", {"emptyarray": []}, "[]"),
    ("tojson(emptyObject)", {"emptyobject": {}}, "{}"),
    ("tojson(myArray)", {"myarray": [1, 2, 3]}, "[\n  1,\n  2,\n  3\n]"),
    (
        "tojson(myArray)",
        {"myarray": [[1, 2, 3], ["abc", "def", "ghi"], [True, False, None, [], {}]]},
        '[\n  [\n    1,\n    2,\n    3\n  ],\n  [\n    "abc",\n    "def",\n    "ghi"\n  ],\n'
        "  [\n    true,\n    false,\n    null,\n    [],\n    {}\n  ]\n]",
    ),
    (
        "tojson(myObject)",
        {"myobject": {"one": "value one", "two": "value two", "three": "value three"}},
        '{\n  "one": "value one",\n  "two": "value two",\n  "three": "value three"\n}',
    ),
    ("toJson(NaN)", None, "null"),
    ("toJson(1.5e300)", None, "1.5e+300"),
    ("toJson(2.0)", None, "2"),
]

ALL = {
    "literal": LITERALS,
    "coerce": COERCE_NUMBER,
    "gt": OP_GT,
    "cmp": OTHER_COMPARISONS,
    "precedence": PRECEDENCE,
    "logical": LOGICAL,
    "property": PROPERTIES,
    "to_string": TO_STRING,
    "case": CASE,
    "format": FORMAT,
    "function": FUNCTIONS,
}


@pytest.mark.parametrize(
    ("expr", "contexts", "expected"),
    [
        pytest.param(e, c, x, id=f"{group}: {e}")
        for group, cases in ALL.items()
        for e, c, x in cases
    ],
)
def test_github_semantics(expr: str, contexts: dict[str, Any] | None, expected: Any) -> None:
    actual = ev(expr, contexts)
    assert same(actual, expected), f"{expr} gave {actual!r}, expected {expected!r}"


@pytest.mark.parametrize("value", [False, 0, -0.0, 0.0, "", None, NAN])
def test_documented_falsy_values(value: Any) -> None:
    assert truthy(value) is False
    assert ev("!foo", {"foo": value}) is True


@pytest.mark.parametrize("value", [True, 1, -1, 0.5, "0", "false", " ", [], {}, INF, "a"])
def test_truthy_values(value: Any) -> None:
    assert truthy(value) is True


# format.json errors and op_dot.json errors: invalid at load time, not when the job runs.
@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("format('{0')", "invalid format string"),
        ("format('{0', '')", "invalid format string"),
        ("format('{0}}', '')", "invalid format string"),
        ("format('{0}}}}', '')", "invalid format string"),
        ("format('0}')", "invalid format string"),
        ("format('0}', '')", "invalid format string"),
        ("format('{{0}')", "invalid format string"),
        ("format('{{{{0}', '')", "invalid format string"),
        ("format('}0{', '')", "invalid format string"),
        ("format('}{0}', '')", "invalid format string"),
        ("format('{0}{', '')", "invalid format string"),
        ("format('{a}', '')", "invalid format string"),
        ("format('{0}')", "refers to {0} but only 0 arguments follow"),
        ("format('{0}{1}', 'abc')", "refers to {1} but only 1 argument follows"),
        ("foo.b@r", "unexpected symbol 'b@r' at column 5 in 'foo.b@r'"),
        ("foo.1", "unexpected token '1' at column 5 in 'foo.1'"),
        ("fromjson('').1", "unexpected token '1' at column 14"),
        ("foo[1].2", "unexpected token '2' at column 8"),
    ],
)
def test_github_errors(expr: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=None) as info:
        ev(expr)
    assert message in str(info.value)


def test_format_error_at_run_time_when_the_format_is_not_a_literal() -> None:
    assert ev("format(foo, 1)", {"foo": "{0}!"}) == "1!"
    with pytest.raises(ExpressionError, match=r"invalid format string '\{0'"):
        ev("format(foo, 1)", {"foo": "{0"})
