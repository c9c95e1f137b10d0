"""Values of the expression language and GitHub Actions' rules for them.

Expressions work on plain Python data: ``None`` (null), ``bool``, ``int``/``float`` (number),
``str``, sequences (array: ``list`` or ``tuple``) and mappings (object). Anything else found in
a context is read as a string (``datetime`` as ISO 8601). The coercions follow GitHub Actions'
expression evaluator (``@actions/expressions``): JavaScript-like loose equality without
object-to-primitive conversion, case-insensitive string comparison by UTF-16 code units,
numbers as doubles, JavaScript number formatting, objects whose keys are unique ignoring case.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Context, Decimal
from enum import Enum
from typing import Any

from jobd._exceptions import ExpressionError


class Kind(Enum):
    NULL = "null"
    BOOLEAN = "boolean"
    NUMBER = "number"
    STRING = "string"
    ARRAY = "array"
    OBJECT = "object"


PRIMITIVES = frozenset({Kind.NULL, Kind.BOOLEAN, Kind.NUMBER, Kind.STRING})


class FilteredArray(list[Any]):
    """The result of a ``*`` filter (``needs.*.result``); further property access maps over it."""


_SAFE_INT = 2**53


def normalize(value: Any) -> Any:
    """A context value as the language sees it: numbers are doubles (an integer beyond 2**53
    becomes the nearest double, as in JavaScript); unknown types become strings."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not -_SAFE_INT < value < _SAFE_INT
    ):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if value is None or isinstance(value, bool | int | float | str | list | tuple | Mapping):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return normalize(value.value)
    if isinstance(value, set | frozenset):
        return sorted((normalize(v) for v in value), key=repr)
    return str(value)


def kind_of(value: Any) -> Kind:
    """The kind of an already normalized value."""
    if value is None:
        return Kind.NULL
    if isinstance(value, bool):
        return Kind.BOOLEAN
    if isinstance(value, int | float):
        return Kind.NUMBER
    if isinstance(value, str):
        return Kind.STRING
    if isinstance(value, Mapping):
        return Kind.OBJECT
    if isinstance(value, list | tuple):
        return Kind.ARRAY
    return kind_of(normalize(value))


def truthy(value: Any) -> bool:
    """GitHub's truthiness: ``false``, ``0``, ``-0``, ``''``, ``null`` and ``NaN`` are falsy;
    everything else (empty arrays and objects included) is truthy."""
    value = normalize(value)
    match kind_of(value):
        case Kind.NULL:
            return False
        case Kind.BOOLEAN:
            return bool(value)
        case Kind.NUMBER:
            return not (value == 0 or math.isnan(value))
        case Kind.STRING:
            return len(value) > 0
    return True


# --- numbers -----------------------------------------------------------------------------

_JS_SPACE = (
    " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = {
    "x": (16, re.compile(r"0[xX][0-9a-fA-F]+")),
    "o": (8, re.compile(r"0[oO][0-7]+")),
    "b": (2, re.compile(r"0[bB][01]+")),
}


def string_to_number(text: str) -> float:
    """JavaScript's ``Number(text)``: trimmed, ``''`` is 0, hex/octal/binary, else ``NaN``."""
    s = text.strip(_JS_SPACE)
    if not s:
        return 0.0
    if _DECIMAL.fullmatch(s):
        if s.endswith("Infinity"):
            return -math.inf if s.startswith("-") else math.inf
        return float(s)
    if len(s) > 2 and s[0] == "0" and s[1].lower() in _RADIX:
        base, pattern = _RADIX[s[1].lower()]
        if pattern.fullmatch(s):
            try:
                return float(int(s[2:], base))
            except OverflowError:
                return math.inf
    return math.nan


def to_number(value: Any) -> float | int:
    """A value as a number: null 0, booleans 1/0, strings parsed, arrays and objects NaN."""
    value = normalize(value)
    match kind_of(value):
        case Kind.NULL:
            return 0
        case Kind.BOOLEAN:
            return 1 if value else 0
        case Kind.NUMBER:
            return value  # type: ignore[no-any-return]
        case Kind.STRING:
            return string_to_number(value)
    return math.nan


def literal_number(value: float) -> int | float:
    """Number literals that are whole and exact become ``int`` (``711``, not ``711.0``)."""
    if (
        math.isfinite(value)
        and value.is_integer()
        and abs(value) < 2**53
        and math.copysign(1.0, value) > 0
    ):
        return int(value)
    return value


def _js_to_string(x: float) -> str:
    """JavaScript's ``Number.prototype.toString()`` for a finite, non-zero float."""
    sign = "-" if x < 0 else ""
    dec = Decimal(repr(abs(x))).normalize()
    _, digit_tuple, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # position of the decimal point relative to the digits
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _finite_or_name(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    return None


_ROUNDING = Context(prec=80, rounding=ROUND_HALF_UP)
_FIFTEEN_PLACES = Decimal("1e-15")


def format_number(value: float | int) -> str:
    """A number as GitHub writes it in strings, ``(+x.toFixed(15)).toString()``: rounded to 15
    decimals, half away from zero, from the double's exact value; no ``.0`` on whole numbers
    (``format('{0}', 1.2e2)`` is ``120``, ``-0`` is ``0``, ``0.84551240822557006`` is
    ``0.84551240822557``)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _SAFE_INT:
        return str(value)
    x = float(value)
    name = _finite_or_name(x)
    if name is not None:
        return name
    if abs(x) < 1e21:
        x = float(Decimal(x).quantize(_FIFTEEN_PLACES, context=_ROUNDING))
        if x == 0:
            return "0"
    return _js_to_string(x)


def json_number(value: float | int) -> str:
    """A number as ``JSON.stringify`` writes it (non-finite numbers are ``null``)."""
    if isinstance(value, int) and abs(value) < _SAFE_INT:
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        return "null"
    return "0" if x == 0 else _js_to_string(x)


# --- strings -----------------------------------------------------------------------------


def to_string(value: Any) -> str:
    """GitHub's string coercion (``format``, ``join``, ``contains``): null is ``''``, booleans
    ``true``/``false``, numbers as :func:`format_number`, arrays ``Array``, objects ``Object``."""
    value = normalize(value)
    match kind_of(value):
        case Kind.NULL:
            return ""
        case Kind.BOOLEAN:
            return "true" if value else "false"
        case Kind.NUMBER:
            return format_number(value)
        case Kind.STRING:
            return value  # type: ignore[no-any-return]
        case Kind.ARRAY:
            return "Array"
    return "Object"


def render_string(value: Any) -> str:
    """How a ``${{ }}`` result is written into a string field: like :func:`to_string`, except
    that arrays and objects are written as compact JSON (``Array`` is of no use in a command)."""
    value = normalize(value)
    if kind_of(value) in (Kind.ARRAY, Kind.OBJECT):
        return to_json(value, indent=None)
    return to_string(value)


def upper(text: str) -> str:
    """Upper case for case-insensitive comparison, leaving the dotless ``ı`` alone (as GitHub)."""
    return "ı".join(part.upper() for part in text.split("ı"))


def utf16(text: str) -> bytes:
    """The UTF-16 code units of a string, in an order that compares as JavaScript compares
    strings (``'\uffff' < '😀'`` is false there: the emoji starts with the unit ``0xd83d``)."""
    return text.encode("utf-16-be", "surrogatepass")


def js_string(text: str) -> str:
    """The string JavaScript would hold: two lone surrogates that form a pair become the one
    character they encode."""
    if not any("\ud800" <= c <= "\udfff" for c in text):
        return text
    return utf16(text).decode("utf-16-be", "surrogatepass")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_string(text: str) -> str:
    """A string as ``JSON.stringify`` writes it: lone surrogates escaped (``"\\ud800"``)."""
    out = json.dumps(js_string(text), ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def js_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as ``fromJson`` builds it: JavaScript's ``JSON.parse`` (a repeated key
    keeps its first place and its last value; keys that are array indices come first, in
    numeric order), then GitHub's dictionary, which keeps the first of keys that differ only
    in case."""
    parsed: dict[str, Any] = dict(pairs)  # a repeated key: first place, last value
    indices = sorted(
        (k for k in parsed if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1), key=int
    )
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for key in (*indices, *(k for k in parsed if k not in set(indices))):
        folded = js_lower(key)
        if folded not in seen:
            seen.add(folded)
            out[key] = parsed[key]
    return out


_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


def js_lower(text: str) -> str:
    """JavaScript's ``toLowerCase``, which GitHub's dictionaries key on."""
    return text.lower()


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON as JavaScript's ``JSON.stringify(value, null, indent)`` writes it."""
    out: list[str] = []
    try:
        _write_json(normalize(value), out, indent, 0, set())
    except RecursionError:
        raise ExpressionError("toJson: the value is nested too deeply") from None
    return "".join(out)


def _write_json(value: Any, out: list[str], indent: int | None, level: int, seen: set[int]) -> None:
    match kind_of(value):
        case Kind.NULL:
            out.append("null")
            return
        case Kind.BOOLEAN:
            out.append("true" if value else "false")
            return
        case Kind.NUMBER:
            out.append(json_number(value))
            return
        case Kind.STRING:
            out.append(_json_string(value))
            return
    if id(value) in seen:
        raise ExpressionError("toJson: the value contains itself")
    items: list[tuple[str | None, Any]]
    if kind_of(value) is Kind.OBJECT:
        items = [(str(k), v) for k, v in value.items()]
        open_, close = "{", "}"
    else:
        items = [(None, v) for v in value]
        open_, close = "[", "]"
    if not items:
        out.append(open_ + close)
        return
    seen.add(id(value))
    pad = "" if indent is None else "\n" + " " * (indent * (level + 1))
    out.append(open_)
    for i, (key, item) in enumerate(items):
        if i:
            out.append(",")
        out.append(pad)
        if key is not None:
            out.append(_json_string(key))
            out.append(":" if indent is None else ": ")
        _write_json(normalize(item), out, indent, level + 1, seen)
    out.append("" if indent is None else "\n" + " " * (indent * level))
    out.append(close)
    seen.discard(id(value))


# --- comparison --------------------------------------------------------------------------


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring two values to one kind where GitHub does: number/string meet as numbers, null and
    booleans become numbers first; arrays and objects are never converted."""
    ka, kb = kind_of(a), kind_of(b)
    if ka is kb:
        return a, b
    if ka is Kind.NUMBER and kb is Kind.STRING:
        return a, to_number(b)
    if ka is Kind.STRING and kb is Kind.NUMBER:
        return to_number(a), b
    if ka in (Kind.NULL, Kind.BOOLEAN):
        return _coerce(to_number(a), b)
    if kb in (Kind.NULL, Kind.BOOLEAN):
        return _coerce(a, to_number(b))
    return a, b


def equals(a: Any, b: Any) -> bool:
    """GitHub's ``==``: loose, strings case-insensitive, NaN equal to nothing, arrays and objects
    equal only to themselves."""
    a, b = _coerce(normalize(a), normalize(b))
    ka = kind_of(a)
    if ka is not kind_of(b):
        return False
    match ka:
        case Kind.NULL:
            return True
        case Kind.NUMBER:
            return not (math.isnan(a) or math.isnan(b)) and a == b
        case Kind.STRING:
            return upper(a) == upper(b)
        case Kind.BOOLEAN:
            return bool(a == b)
    return a is b


def greater(a: Any, b: Any) -> bool:
    """GitHub's ``>`` (``false`` for NaN and for arrays and objects)."""
    a, b = _coerce(normalize(a), normalize(b))
    ka = kind_of(a)
    if ka is not kind_of(b):
        return False
    match ka:
        case Kind.NUMBER:
            return not (math.isnan(a) or math.isnan(b)) and a > b
        case Kind.STRING:
            return utf16(upper(a)) > utf16(upper(b))
        case Kind.BOOLEAN:
            return bool(a and not b)
    return False


def less(a: Any, b: Any) -> bool:
    """GitHub's ``<`` (``false`` for NaN and for arrays and objects)."""
    a, b = _coerce(normalize(a), normalize(b))
    ka = kind_of(a)
    if ka is not kind_of(b):
        return False
    match ka:
        case Kind.NUMBER:
            return not (math.isnan(a) or math.isnan(b)) and a < b
        case Kind.STRING:
            return utf16(upper(a)) < utf16(upper(b))
        case Kind.BOOLEAN:
            return bool(not a and b)
    return False


def lookup(obj: Mapping[Any, Any], key: str) -> tuple[bool, Any]:
    """A property of an object, ignoring case: GitHub's dictionaries key on the lower-cased
    name and keep the first of keys that differ only in case, so the first such key wins."""
    wanted = js_lower(key)
    for k, v in obj.items():
        if isinstance(k, str) and (k == key or js_lower(k) == wanted):
            return True, v
    return False, None
