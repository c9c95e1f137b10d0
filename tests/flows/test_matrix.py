"""Matrix expansion against GitHub's documented examples (docs: "Running variations of jobs in
a workflow" and the workflow syntax reference for strategy.matrix)."""

from __future__ import annotations

from typing import Any

import pytest

from jobd.config.model import MatrixSpec
from jobd.matrix import cell_label, expand


def spec(
    dimensions: dict[str, Any] | None = None,
    include: list[dict[str, Any]] | None = None,
    exclude: list[dict[str, Any]] | None = None,
) -> MatrixSpec:
    return MatrixSpec(
        dimensions=dimensions or {}, include=tuple(include or ()), exclude=tuple(exclude or ())
    )


def test_product_in_key_order() -> None:
    # version: [10, 12, 14], os: [ubuntu-latest, windows-latest] -> six jobs in this order
    got = expand(spec({"version": (10, 12, 14), "os": ("ubuntu-latest", "windows-latest")}))
    assert got == [
        {"version": 10, "os": "ubuntu-latest"},
        {"version": 10, "os": "windows-latest"},
        {"version": 12, "os": "ubuntu-latest"},
        {"version": 12, "os": "windows-latest"},
        {"version": 14, "os": "ubuntu-latest"},
        {"version": 14, "os": "windows-latest"},
    ]
    assert [list(c) for c in got] == [["version", "os"]] * 6


def test_fruit_and_animal_include_example() -> None:
    got = expand(
        spec(
            {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
            include=[
                {"color": "green"},
                {"color": "pink", "animal": "cat"},
                {"fruit": "apple", "shape": "circle"},
                {"fruit": "banana"},
                {"fruit": "banana", "animal": "cat"},
            ],
        )
    )
    assert got == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_os_node_include_adds_a_key_to_one_combination() -> None:
    got = expand(
        spec(
            {"os": ["windows-latest", "ubuntu-latest"], "node": [12, 14, 16]},
            include=[{"os": "windows-latest", "node": 16, "npm": 6}],
        )
    )
    assert len(got) == 6
    assert got[2] == {"os": "windows-latest", "node": 16, "npm": 6}
    assert [c for c in got if "npm" in c] == [got[2]]


def test_include_that_fits_nothing_is_added() -> None:
    # 9 combinations plus one for windows-latest / 17
    got = expand(
        spec(
            {"os": ["macos-latest", "windows-latest", "ubuntu-latest"], "version": [12, 14, 16]},
            include=[{"os": "windows-latest", "version": 17}],
        )
    )
    assert len(got) == 10
    assert got[-1] == {"os": "windows-latest", "version": 17}


def test_include_only() -> None:
    got = expand(
        spec(
            include=[
                {"site": "production", "datacenter": "site-a"},
                {"site": "staging", "datacenter": "site-b"},
            ]
        )
    )
    assert got == [
        {"site": "production", "datacenter": "site-a"},
        {"site": "staging", "datacenter": "site-b"},
    ]


def test_perl_example_gives_seven_jobs() -> None:
    got = expand(
        spec(
            {"os": ["ubuntu-latest"], "perl": ["5.16", "5.20", "5.26", "5.30", "latest"]},
            include=[
                {"os": "macos-latest", "perl": "5.26"},
                {"os": "macos-latest", "perl": "latest"},
            ],
        )
    )
    assert len(got) == 7
    assert got[5:] == [
        {"os": "macos-latest", "perl": "5.26"},
        {"os": "macos-latest", "perl": "latest"},
    ]


def test_exclude_example_partial_matches() -> None:
    got = expand(
        spec(
            {
                "os": ["macos-latest", "windows-latest"],
                "version": [12, 14, 16],
                "environment": ["staging", "production"],
            },
            exclude=[
                {"os": "macos-latest", "version": 12, "environment": "production"},
                {"os": "windows-latest", "version": 16},
            ],
        )
    )
    assert len(got) == 9
    assert {"os": "macos-latest", "version": 12, "environment": "production"} not in got
    assert not [c for c in got if c["os"] == "windows-latest" and c["version"] == 16]
    assert got[0] == {"os": "macos-latest", "version": 12, "environment": "staging"}


def test_include_runs_after_exclude_and_can_add_back() -> None:
    got = expand(spec({"os": ["a", "b"]}, exclude=[{"os": "b"}], include=[{"os": "b", "x": 1}]))
    assert got == [{"os": "a"}, {"os": "b", "x": 1}]


def test_fail_fast_example_adds_a_row() -> None:
    got = expand(
        spec(
            {"version": [6, 7, 8], "experimental": [False]},
            include=[{"version": 9, "experimental": True}],
        )
    )
    assert got[-1] == {"version": 9, "experimental": True}
    assert len(got) == 4


def test_original_values_are_never_overwritten_added_ones_are() -> None:
    got = expand(spec({"a": [1, 2]}, include=[{"x": "first"}, {"a": 1, "x": "second"}]))
    assert got == [{"a": 1, "x": "second"}, {"a": 2, "x": "first"}]


def test_true_is_not_one() -> None:
    got = expand(spec({"flag": [True, 1]}, exclude=[{"flag": 1}]))
    assert got == [{"flag": True}]


@pytest.mark.parametrize(
    ("s", "message"),
    [
        (spec({"os": "linux"}), "matrix: 'os' must be a list of values, got str 'linux'"),
        (spec({"os": []}), "matrix: 'os' has no values"),
        (spec({"os": ["a"]}, exclude=[{"os": "a"}]), "no combinations left"),
        (spec(), "no combinations left"),
        (spec({"a": list(range(17)), "b": list(range(16))}), "272 combinations; at most 256"),
        (spec({"a": list(range(300)), "b": list(range(300))}), "90000 combinations before exclude"),
        (
            spec({"os": ["a"]}, exclude=[{"arch": "x"}]),
            "exclude entry 1 names 'arch', which is not a dimension (dimensions: os)",
        ),
        (spec({"os": ["a"]}, include=[{}]), "include entry 1 is empty"),
    ],
)
def test_errors(s: MatrixSpec, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        expand(s)
    assert message in str(info.value)


def test_exactly_256_is_allowed() -> None:
    assert len(expand(spec({"a": list(range(16)), "b": list(range(16))}))) == 256


def test_cell_label() -> None:
    assert cell_label({"os": "linux", "node": 20}) == "os=linux, node=20"
    assert (
        cell_label({"py": 3.0, "ok": True, "x": None, "l": [1, "a"]})
        == 'py=3, ok=true, x=, l=[1,"a"]'
    )


def test_docs_pipelines_example() -> None:
    got = expand(
        spec(
            {"os": ["linux", "bsd"], "python": ["3.11", "3.12"]},
            exclude=[{"os": "bsd", "python": "3.11"}],
            include=[{"python": "3.12", "coverage": True}, {"os": "mac", "python": "3.12"}],
        )
    )
    assert [cell_label(c) for c in got] == [
        "os=linux, python=3.11",
        "os=linux, python=3.12, coverage=true",
        "os=bsd, python=3.12, coverage=true",
        "os=mac, python=3.12",
    ]


# --- value matching (GitHub compares by value and type: true is not 1) -----------------


def test_exclude_matches_by_value_and_type() -> None:
    dims = {"flag": (True, False, 1, 0)}
    assert expand(spec(dims, exclude=[{"flag": True}])) == [
        {"flag": False},
        {"flag": 1},
        {"flag": 0},
    ]
    assert expand(spec(dims, exclude=[{"flag": 1}])) == [
        {"flag": True},
        {"flag": False},
        {"flag": 0},
    ]
    assert expand(spec(dims, exclude=[{"flag": False}, {"flag": 0}])) == [
        {"flag": True},
        {"flag": 1},
    ]


def test_exclude_matches_tables_and_lists_whole() -> None:
    dims = {
        "cfg": ({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3]}, {"a": 1}),
        "args": ([1, 2], [1, 2, 3], [2, 1]),
    }
    got = expand(spec(dims, exclude=[{"cfg": {"a": 1, "b": [1, 2]}}, {"args": [1, 2]}]))
    assert got == [
        {"cfg": {"a": 1, "b": [1, 3]}, "args": [1, 2, 3]},
        {"cfg": {"a": 1, "b": [1, 3]}, "args": [2, 1]},
        {"cfg": {"a": 1}, "args": [1, 2, 3]},
        {"cfg": {"a": 1}, "args": [2, 1]},
    ]
    # a table with other keys, or true for 1 inside a list, is another value
    assert len(expand(spec(dims, exclude=[{"cfg": {"a": 1, "c": 2}}, {"args": [True, 2]}]))) == 9


def test_include_merges_by_value_and_type() -> None:
    got = expand(spec({"x": (1, True)}, include=[{"x": True, "extra": "y"}]))
    assert got == [{"x": 1}, {"x": True, "extra": "y"}]


def test_a_table_or_list_never_matches_a_scalar() -> None:
    assert expand(spec({"cfg": ({"a": 1}, 2)}, exclude=[{"cfg": 2}])) == [{"cfg": {"a": 1}}]
    assert expand(spec({"cfg": (2, {"a": 1})}, exclude=[{"cfg": {"a": 1}}])) == [{"cfg": 2}]
    assert expand(spec({"args": ([1], 2)}, exclude=[{"args": 2}])) == [{"args": [1]}]
    assert expand(spec({"args": (2, [1])}, exclude=[{"args": [1]}])) == [{"args": 2}]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (spec({"include": (1,)}), "matrix: 'include' is not a dimension name (it is a matrix key)"),
        (spec({"exclude": (1,)}), "matrix: 'exclude' is not a dimension name (it is a matrix key)"),
        (
            spec({"a": (1,)}, include=[5]),  # type: ignore[list-item]
            "matrix: include entry 1 must be a table of key = value, got 5",
        ),
        (
            spec({"a": (1,)}, exclude=[{"a": 1}, "x"]),  # type: ignore[list-item]
            "matrix: exclude entry 2 must be a table of key = value, got 'x'",
        ),
        (
            spec({"a": (1,), "b": (2,)}, exclude=[{"q": 1, "p": 2}]),
            "matrix: exclude entry 1 names 'p', 'q', which are not a dimension (dimensions: a, b)",
        ),
        (
            spec({}, include=[{"a": 1}], exclude=[{"a": 1}]),
            "matrix: exclude entry 1 names 'a', which is not a dimension (dimensions: none)",
        ),
        (
            spec({"a": (1, 2)}, exclude=[{"a": 1}, {"a": 2}]),
            "matrix: no combinations left (exclude removed every one)",
        ),
        (
            spec({"a": tuple(range(20)), "b": tuple(range(15))}),
            "matrix: 300 combinations; at most 256 may run (GitHub's limit)",
        ),
    ],
)
def test_matrix_errors_word_for_word(matrix: MatrixSpec, message: str) -> None:
    with pytest.raises(ValueError) as e:
        expand(matrix)
    assert str(e.value) == message
