"""Pattern matching and where to watch: pure functions, and plans over real directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobd.triggers.manifest import (
    WatchPlan,
    matches,
    may_match_below,
    newly_covered,
    plan_watch,
    watch_roots,
)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/a/*.csv", "/a/x.csv", True),
        ("/a/*.csv", "/a/.hidden.csv", True),
        ("/a/*.csv", "/a/b/x.csv", False),  # * does not cross /
        ("/a/*.csv", "/a/x.csv.tmp", False),
        ("/a/**/*.csv", "/a/x.csv", True),  # **/ is zero or more directories
        ("/a/**/*.csv", "/a/b/c/x.csv", True),
        ("/a/**/*.csv", "/ab/x.csv", False),
        ("/a/**", "/a/b/c", True),
        ("/a/**", "/a", False),
        ("/a/x**y", "/a/x/b/y", True),  # ** inside a component crosses / too
        ("/a/file?.txt", "/a/file1.txt", True),
        ("/a/file?.txt", "/a/file/.txt", False),
        ("/a/file?.txt", "/a/file10.txt", False),
        ("/a/[ab].txt", "/a/b.txt", True),
        ("/a/[ab].txt", "/a/c.txt", False),
        ("/a/[!ab].txt", "/a/c.txt", True),
        ("/a/[^ab].txt", "/a/a.txt", False),
        ("/a/[!ab].txt", "/a//.txt", False),  # a class never matches /
        ("/a/[0-9][0-9].log", "/a/42.log", True),
        ("/a/[z-a].log", "/a/z.log", False),  # reversed range matches nothing
        ("/a/[&&x].log", "/a/&.log", True),  # no regex set operations
        ("/a/[.log", "/a/[.log", True),  # unclosed [ is literal
        ("/a/x+(y).log", "/a/x+(y).log", True),  # regex metacharacters are literal
        ("/data/dir", "/data/dir", True),  # a literal path matches itself
        ("/data/dir", "/data/dir/sub/f.txt", True),  # ... and everything below it
        ("/data/dir", "/data/dirt", False),
        ("/data/dir/", "/data/dir/f", True),
        ("/data//dir/./f", "/data/dir/f", True),
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize(
    ("pattern", "directory", "expected"),
    [
        ("/a/b/*.csv", "/a", True),  # holds the fixed part
        ("/a/b/*.csv", "/a/b", True),
        ("/a/b/*.csv", "/a/b/c", False),  # one level only
        ("/a/b/*/x.csv", "/a/b/c", True),
        ("/a/b/2*/x.csv", "/a/b/1999", False),
        ("/a/b/*/x.csv", "/a/b/c/d", False),
        ("/a/b/**/x.csv", "/a/b/c/d/e", True),
        ("/a/b/*/**", "/a/b/c/d", True),
        ("/a/b", "/a/b/c/d", True),  # below a literal directory
        ("/a/b/file", "/a/c", False),
        ("/a/b/*.csv", "/ab", False),
    ],
)
def test_may_match_below(pattern: str, directory: str, expected: bool) -> None:
    assert may_match_below(pattern, directory) is expected


_names = st.text(alphabet="abc.-_", min_size=1, max_size=6).filter(lambda s: s not in {".", ".."})


@given(st.lists(_names, min_size=1, max_size=5))
def test_a_literal_path_matches_itself_and_children(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    assert matches(path, path)
    assert matches(path, path + "/child")
    assert not matches(path + "/child", path)


@given(st.lists(_names, min_size=1, max_size=5))
def test_double_star_matches_every_descendant(parts: list[str]) -> None:
    assert matches("/root/**", "/root/" + "/".join(parts))
    assert matches("/root/**/" + parts[-1], "/root/" + "/".join(parts))


def test_plan_for_each_kind_of_pattern(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text("x")
    t = str(tmp_path)
    plan = plan_watch(
        [
            f"{t}/inbox/*.csv",  # one glob level: flat
            f"{t}/tree",  # a literal directory: recursive
            f"{t}/tree/sub/*.txt",  # inside a recursive root: dropped
            f"{t}/conf/app.yaml",  # a literal file: its directory, flat
            f"{t}/later/inbox/*.csv",  # missing: nearest existing parent, flat
            f"{t}/deep/**/*.csv",  # missing too
        ]
    )
    assert plan == WatchPlan(
        recursive=frozenset({f"{t}/tree"}), flat=frozenset({f"{t}/inbox", f"{t}/conf", t})
    )
    assert watch_roots([f"{t}/inbox/**/*.csv", f"{t}/inbox/*/x"]) == {tmp_path / "inbox"}
    assert plan_watch([f"{t}/inbox/*/x"]).recursive == {f"{t}/inbox"}


def test_plan_moves_down_as_directories_appear(tmp_path: Path) -> None:
    t = str(tmp_path)
    pattern = f"{t}/a/b/**/*.csv"
    assert plan_watch([pattern]) == WatchPlan(flat=frozenset({t}))
    (tmp_path / "a").mkdir()
    assert plan_watch([pattern]) == WatchPlan(flat=frozenset({f"{t}/a"}))
    (tmp_path / "a" / "b").mkdir()
    assert plan_watch([pattern]) == WatchPlan(recursive=frozenset({f"{t}/a/b"}))


def test_plan_covers(tmp_path: Path) -> None:
    plan = WatchPlan(recursive=frozenset({"/r"}), flat=frozenset({"/f"}))
    assert plan.covers("/r/x/y/z")
    assert plan.covers("/f/x")
    assert not plan.covers("/f/x/y")
    assert not plan.covers("/rr/x")


def test_newly_covered_lists_files_no_watch_saw(tmp_path: Path) -> None:
    t = str(tmp_path)
    patterns = [f"{t}/later/**/*.csv"]
    old = plan_watch(patterns)
    (tmp_path / "later" / "x").mkdir(parents=True)
    for name in ("later/a.csv", "later/x/b.csv", "later/x/c.txt"):
        (tmp_path / name).write_text("1")
    new = plan_watch(patterns)
    assert sorted(newly_covered(patterns, old, new)) == [f"{t}/later/a.csv", f"{t}/later/x/b.csv"]
    assert newly_covered(patterns, new, new) == []
