"""GitHub's own expression test data, case by case.

The files in ``tests/expressions/data/`` are the cross-language test data of GitHub's
expression evaluator, ``expressions/testdata/*.json`` of actions/languageservices (commit
4043eda158e16579cc5fb1b0b07a4bce2a76f0b5, @actions/expressions 0.3.61), vendored unchanged
under their MIT licence (``data/LICENSE``, © GitHub). They are read here the way GitHub's
``xlang.test.ts`` reads them: each case's ``contexts`` are the only named values; the result's
kind and its ``JSON.stringify`` form must match; an expected error must be raised (jobd's
messages differ from GitHub's, so only the error itself is compared). Cases marked
``skip: ["typescript"]`` are skipped, as GitHub's TypeScript suite skips them.

jobd checks some things when a job file is loaded that GitHub checks only when evaluating (a
``format`` string that is a literal, for one); an expected evaluation error raised at load time
passes. ``LOAD_TIME`` lists the cases where GitHub gives a value and jobd refuses the
expression at load time, on purpose (docs/expressions.md).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from jobd.expressions import ExpressionError, parse_condition
from jobd.expressions.values import Kind, kind_of

DATA = Path(__file__).parent / "data"
KIND = {
    Kind.NULL: "Null",
    Kind.BOOLEAN: "Boolean",
    Kind.NUMBER: "Number",
    Kind.STRING: "String",
    Kind.ARRAY: "Array",
    Kind.OBJECT: "Object",
}

# (file, group, expression): GitHub gives a value; jobd refuses it at load time, by choice.
LOAD_TIME: frozenset[tuple[str, str, str]] = frozenset()


def cases() -> list[Any]:
    out = []
    for path in sorted(DATA.glob("*.json")):
        for group, items in json.loads(path.read_text()).items():
            for i, case in enumerate(items):
                if "typescript" in (case.get("options") or {}).get("skip", []):
                    continue
                out.append(
                    pytest.param(
                        path.stem, group, case, id=f"{path.stem}:{group}:{i}:{case['expr'][:40]}"
                    )
                )
    return out


def canon(value: Any) -> Any:
    """A value as ``JSON.stringify`` sees it: numbers as doubles, ``-0`` as 0, NaN and the
    infinities as null; objects in key order."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        x = float(value)
        return None if not math.isfinite(x) else (0.0 if x == 0 else x)
    if isinstance(value, list | tuple):
        return ["array", [canon(v) for v in value]]
    return ["object", [(str(k), canon(v)) for k, v in value.items()]]


CASES = cases()


def test_all_the_data_is_read() -> None:
    assert len(CASES) >= 1000
    # every file that holds cases (coerce_boolean.json only refers to another file)
    assert len({p.values[0] for p in CASES}) == len(list(DATA.glob("*.json"))) - 1


@pytest.mark.parametrize(("file", "group", "case"), CASES)
def test_github_case(file: str, group: str, case: dict[str, Any]) -> None:
    contexts: dict[str, Any] = case.get("contexts") or {}
    expr: str = case["expr"]
    err = case.get("err")
    try:
        parsed = parse_condition(expr, roots=tuple(contexts)) if expr.strip() else None
    except ExpressionError as exc:
        if err is not None or (file, group, expr) in LOAD_TIME:
            return
        raise AssertionError(f"jobd refuses at load time: {exc}") from None
    assert (file, group, expr) not in LOAD_TIME, "now accepted: drop it from LOAD_TIME"
    if err is not None and err["kind"] in ("lexing", "parsing"):
        pytest.fail(f"GitHub: {err['kind']} error {err['value']!r}; jobd parsed it")
    try:
        value = parsed.evaluate(contexts) if parsed is not None else None
    except ExpressionError as exc:
        if err is not None:
            return
        raise AssertionError(f"jobd: {exc}") from None
    assert err is None, f"GitHub: evaluation error {err['value']!r}; jobd gave {value!r}"
    expected = case["result"]
    assert KIND[kind_of(value)] == expected["kind"], value
    assert canon(value) == canon(expected["value"])
