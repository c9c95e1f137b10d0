"""Matrix expansion, exactly as GitHub Actions documents it.

1. The cartesian product of the dimensions, the first dimension varying slowest.
2. ``exclude``: drop every combination that matches an entry on all of the entry's keys
   (partial entries allowed; every key must name a dimension).
3. ``include``, entry by entry: merge the entry into every *original* combination (one that
   came from the product) whose original values it does not contradict; keys added by earlier
   entries may be overwritten, original values never. An entry that fits no original
   combination is appended as a combination of its own.

With no dimensions, each ``include`` entry is one combination.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import product
from typing import Any

from jobd.config.model import MatrixSpec
from jobd.expressions.values import render_string

MAX_COMBINATIONS = 256  # GitHub's limit on jobs per matrix
MAX_PRODUCT = 65536  # combinations enumerated before exclude; beyond this we refuse outright


def _same(a: Any, b: Any) -> bool:
    """Value equality that keeps ``true`` apart from ``1`` (TOML tells them apart)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _matches(combination: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in combination and _same(combination[k], v) for k, v in entry.items())


def _check(spec: MatrixSpec) -> list[tuple[str, Sequence[Any]]]:
    dims: list[tuple[str, Sequence[Any]]] = []
    for key, values in spec.dimensions.items():
        if key in ("include", "exclude"):
            raise ValueError(f"matrix: '{key}' is not a dimension name (it is a matrix key)")
        if not isinstance(values, list | tuple):
            raise ValueError(
                f"matrix: '{key}' must be a list of values, got {type(values).__name__} {values!r}"
            )
        if not values:
            raise ValueError(f"matrix: '{key}' has no values")
        dims.append((key, values))
    for what, entries in (("include", spec.include), ("exclude", spec.exclude)):
        for n, entry in enumerate(entries, 1):
            if not isinstance(entry, Mapping):
                raise ValueError(
                    f"matrix: {what} entry {n} must be a table of key = value, got {entry!r}"
                )
            if not entry:
                raise ValueError(f"matrix: {what} entry {n} is empty")
    names = {k for k, _ in dims}
    for n, entry in enumerate(spec.exclude, 1):
        unknown = sorted(set(entry) - names)
        if unknown:
            raise ValueError(
                f"matrix: exclude entry {n} names {', '.join(map(repr, unknown))}, "
                f"which {'is' if len(unknown) == 1 else 'are'} not a dimension "
                f"(dimensions: {', '.join(sorted(names)) or 'none'})"
            )
    return dims


def _product(dims: list[tuple[str, Sequence[Any]]]) -> Iterator[dict[str, Any]]:
    keys = [k for k, _ in dims]
    for values in product(*(v for _, v in dims)):
        yield dict(zip(keys, values, strict=True))


def expand(spec: MatrixSpec) -> list[dict[str, Any]]:
    """Every combination of ``spec``, in GitHub's order: the product (after exclude) first,
    then the include entries that fit no original combination.

    Raises ``ValueError`` with a message for the user for a dimension that is not a non-empty
    list, an exclude key that is not a dimension, an empty result, or more than 256
    combinations.
    """
    dims = _check(spec)
    originals: list[dict[str, Any]] = []
    if dims:
        size = math.prod(len(v) for _, v in dims)
        if size > MAX_PRODUCT:
            raise ValueError(
                f"matrix: {size} combinations before exclude; at most "
                f"{MAX_COMBINATIONS} may run (GitHub's limit)"
            )
        originals = [c for c in _product(dims) if not any(_matches(c, e) for e in spec.exclude)]
    names = {k for k, _ in dims}
    merged = [dict(c) for c in originals]
    added: list[dict[str, Any]] = []
    for entry in spec.include:
        fits = False
        for original, combination in zip(originals, merged, strict=True):
            if all(_same(original[k], v) for k, v in entry.items() if k in names):
                combination.update(entry)
                fits = True
        if not fits:
            added.append(dict(entry))
    result = merged + added
    if not result:
        raise ValueError("matrix: no combinations left (exclude removed every one)")
    if len(result) > MAX_COMBINATIONS:
        raise ValueError(
            f"matrix: {len(result)} combinations; at most {MAX_COMBINATIONS} "
            "may run (GitHub's limit)"
        )
    return result


def cell_label(cell: Mapping[str, Any]) -> str:
    """A combination for people: ``os=linux, node=20``."""
    return ", ".join(f"{k}={render_string(v)}" for k, v in cell.items())
