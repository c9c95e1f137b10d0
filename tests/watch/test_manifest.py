"""The manifest: what exists now, and what changed while the daemon was down."""

from __future__ import annotations

import os
from pathlib import Path

from jobd.journal.abc import ManifestEntry
from jobd.triggers.manifest import WatchPlan, anchor, diff, plan_watch, refresh, scan


def _tree(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def test_scan_lists_matching_files_only(tmp_path: Path) -> None:
    _tree(tmp_path, "in/a.csv", "in/b.txt", "in/sub/c.csv", "tree/x", "tree/d/y", "one.yaml")
    (tmp_path / "in" / "dir.csv").mkdir()  # a directory is not listed
    (tmp_path / "in" / "broken.csv").symlink_to(tmp_path / "nowhere")
    (tmp_path / "in" / "link.csv").symlink_to(tmp_path / "in" / "b.txt")
    t = str(tmp_path)
    got = scan([f"{t}/in/*.csv", f"{t}/tree", f"{t}/one.yaml", f"{t}/missing/*.csv"])
    # symlinks are files of their own, dangling or not
    assert sorted(got) == [
        f"{t}/in/a.csv",
        f"{t}/in/broken.csv",
        f"{t}/in/link.csv",
        f"{t}/one.yaml",
        f"{t}/tree/d/y",
        f"{t}/tree/x",
    ]
    st = os.stat(tmp_path / "in" / "a.csv")
    assert got[f"{t}/in/a.csv"] == ManifestEntry(
        path=f"{t}/in/a.csv", mtime_ns=st.st_mtime_ns, size=st.st_size
    )
    lst = os.lstat(tmp_path / "in" / "link.csv")  # the link itself, not b.txt
    assert got[f"{t}/in/link.csv"] == ManifestEntry(
        path=f"{t}/in/link.csv", mtime_ns=lst.st_mtime_ns, size=lst.st_size
    )
    assert sorted(scan([f"{t}/in/**/*.csv"])) == [
        f"{t}/in/a.csv",
        f"{t}/in/broken.csv",
        f"{t}/in/link.csv",
        f"{t}/in/sub/c.csv",
    ]
    assert sorted(scan([f"{t}/*/*.csv"])) == [
        f"{t}/in/a.csv",
        f"{t}/in/broken.csv",
        f"{t}/in/link.csv",
    ]


def test_scan_never_follows_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    """As the watcher: a symlinked directory is an entry, its files are not listed."""
    _tree(tmp_path, "target/f", "root/g")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "target")
    (tmp_path / "target" / "up").symlink_to(tmp_path / "root")
    t = str(tmp_path)
    assert sorted(scan([f"{t}/root"])) == [f"{t}/root/g", f"{t}/root/link"]
    assert scan([f"{t}/root/link/*"]) == {}  # a pattern reaching through it finds nothing


def test_a_watched_directory_swapped_for_a_symlink_is_not_followed(tmp_path: Path) -> None:
    _tree(tmp_path, "drop/in/a.csv", "secret/in/key.csv")
    t = str(tmp_path)
    patterns = [f"{t}/drop/in/*.csv"]
    assert plan_watch(patterns).flat == {f"{t}/drop/in"}
    os.rename(tmp_path / "drop" / "in", tmp_path / "old")
    (tmp_path / "drop" / "in").symlink_to(tmp_path / "secret" / "in")
    assert plan_watch(patterns) == WatchPlan(flat=frozenset({f"{t}/drop"}))  # waits
    assert scan(patterns) == {}


def test_anchor_resolves_the_symlinks_there_are_at_load(tmp_path: Path) -> None:
    _tree(tmp_path, "real/in/a.csv")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    t = str(tmp_path)
    assert anchor(f"{t}/link/in/*.csv") == f"{t}/real/in/*.csv"
    assert anchor(f"{t}/link/later/**/*.json") == f"{t}/real/later/**/*.json"
    assert anchor(f"{t}/link/in") == f"{t}/real/in"
    assert anchor(f"{t}/link") == f"{t}/link"  # the watched directory itself: never followed
    assert plan_watch([anchor(f"{t}/link")]) == WatchPlan(flat=frozenset({t}))
    assert anchor("/*.csv") == "/*.csv"


def test_scan_is_bounded(tmp_path: Path) -> None:
    _tree(tmp_path, *(f"d/{i:03}" for i in range(50)))
    got = scan([str(tmp_path / "d")], limit=10)
    assert len(got) == 10
    assert sorted(got) == [str(tmp_path / f"d/{i:03}") for i in range(10)]  # a stable choice


def test_changes_while_down(tmp_path: Path) -> None:
    """Saved manifest, then files added, changed (size, or mtime alone) and removed while the
    daemon is "down": diff names exactly those."""
    _tree(tmp_path, "w/keep", "w/grow", "w/touch", "w/gone", "w/sub/deep")
    patterns = [str(tmp_path / "w")]
    saved = scan(patterns)
    (tmp_path / "w" / "grow").write_text("longer than before")
    st = os.stat(tmp_path / "w" / "touch")
    os.utime(tmp_path / "w" / "touch", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    (tmp_path / "w" / "gone").unlink()
    _tree(tmp_path, "w/new", "w/sub/newer")
    now = scan(patterns)
    w = str(tmp_path / "w")
    assert diff(saved, now) == [
        f"{w}/gone",
        f"{w}/grow",
        f"{w}/new",
        f"{w}/sub/newer",
        f"{w}/touch",
    ]
    assert diff(now, now) == []
    assert diff({}, now) == sorted(now)


def test_refresh_restats_given_paths(tmp_path: Path) -> None:
    _tree(tmp_path, "a", "b")
    t = str(tmp_path)
    before = scan([t])
    (tmp_path / "a").write_text("changed!")
    (tmp_path / "b").unlink()
    _tree(tmp_path, "c")
    after = refresh(before, [f"{t}/a", f"{t}/b", f"{t}/c"])
    assert after == scan([t])
