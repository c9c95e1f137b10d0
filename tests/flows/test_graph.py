"""The needs graph: cycles, downstream sets, order."""

from __future__ import annotations

import pytest

from jobd.flows import downstream, find_cycle, format_cycle, topological_order

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_no_cycle() -> None:
    assert find_cycle(DIAMOND) is None
    assert find_cycle({}) is None
    assert find_cycle({"x": ["unknown"]}) is None


def test_cycle_is_a_closed_path_and_deterministic() -> None:
    needs = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert find_cycle(needs) == ["a", "b", "c", "a"]
    assert find_cycle(dict(reversed(list(needs.items())))) == ["a", "b", "c", "a"]
    assert format_cycle(["a", "b", "c", "a"]) == "a -> b -> c -> a"


def test_cycle_below_the_start() -> None:
    needs = {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]}
    assert find_cycle(needs) == ["b", "c", "d", "b"]


def test_self_need_is_a_cycle() -> None:
    assert find_cycle({"x": ["x"]}) == ["x", "x"]


def test_long_chain_does_not_recurse() -> None:
    needs = {f"j{i}": [f"j{i + 1}"] for i in range(5000)}
    assert find_cycle(needs) is None
    needs["j5000"] = ["j0"]
    cycle = find_cycle(needs)
    assert cycle is not None and cycle[0] == cycle[-1] == "j0" and len(cycle) == 5002


def test_downstream() -> None:
    assert downstream(DIAMOND, "a") == {"a", "b", "c", "d"}
    assert downstream(DIAMOND, "b") == {"b", "d"}
    assert downstream(DIAMOND, "d") == {"d"}
    assert downstream(DIAMOND, "zzz") == {"zzz"}


def test_topological_order() -> None:
    assert topological_order(DIAMOND) == ["a", "b", "c", "d"]
    assert topological_order({"z": [], "y": ["z"], "b": [], "a": ["y", "b"]}) == [
        "b",
        "z",
        "y",
        "a",
    ]
    assert topological_order({"x": ["outside"]}) == ["x"]


def test_topological_order_names_the_cycle() -> None:
    with pytest.raises(ValueError, match=r"^needs cycle: b -> c -> b$"):
        topological_order({"a": [], "b": ["a", "c"], "c": ["b"]})
