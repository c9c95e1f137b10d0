"""Watch patterns: what they match, which directories to watch for them, and what exists now.

Patterns are absolute paths or globs (the loader resolves them against the job file's
directory). ``*`` and ``?`` stay inside one path component, ``**`` crosses ``/`` (``a/**/b``
also matches ``a/b``), ``[...]`` is a character class (``[!...]`` or ``[^...]`` negates). A
pattern without glob characters names a file or a directory; a directory matches everything
below it.

Everything here is synchronous. ``matches`` and ``diff`` are pure; ``plan_watch``,
``watch_roots``, ``scan``, ``walk_matching`` and ``refresh`` read the filesystem (call them
through ``anyio.to_thread.run_sync`` from the event loop).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jobd.journal.abc import ManifestEntry

log = logging.getLogger("jobd.watch")

MAX_SCAN_ENTRIES = 100_000
"""At most this many files are listed by one ``scan`` (and one ``walk_matching``); beyond it a
warning is logged and the rest is not looked at, so changes there made while the daemon was
down go unseen."""

_GLOB_CHARS = frozenset("*?[")


def normalize(pattern: str) -> str:
    """The pattern with duplicate and trailing slashes and ``.`` components removed."""
    return os.path.normpath(pattern) if pattern else pattern


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _split(pattern: str) -> tuple[str, list[str]]:
    """The literal directory prefix of a normalized pattern and its remaining components."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if is_glob(part):
            return "/".join(parts[:i]) or "/", parts[i:]
    return pattern, []


# --- matching ----------------------------------------------------------------------------


def _translate_class(pattern: str, i: int) -> tuple[str, int]:
    """Regex for the ``[...]`` class opening at ``pattern[i]``, and the index after it; an
    unclosed ``[`` is a literal."""
    j = i + 1
    if j < len(pattern) and pattern[j] in "!^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    j = pattern.find("]", j)
    if j < 0:
        return re.escape("["), i + 1
    body = pattern[i + 1 : j]
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    # Escape what the regex engine would read as set operations or escapes.
    body = re.sub(r"([\\&~|\[])", r"\\\1", body)
    regex = f"(?!/)[{'^' if negate else ''}{body}]"
    try:
        re.compile(regex)
    except re.error:  # a reversed range such as [z-a]: matches nothing, as fnmatch does
        regex = "(?!)"
    return regex, j + 1


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if j - i >= 2:
                at_component_start = i == 0 or pattern[i - 1] == "/"
                if at_component_start and j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # `**/`: zero or more directories
                    j += 1
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            regex, i = _translate_class(pattern, i)
            out.append(regex)
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str] | str:
    """A compiled glob, or for a literal pattern the normalized path itself."""
    pattern = normalize(pattern)
    if not is_glob(pattern):
        return pattern
    return re.compile(_translate(pattern), re.DOTALL)


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` is matched by ``pattern`` (pure: the filesystem is not consulted).

    A literal pattern matches itself and every path below it, so a pattern naming a
    directory watches that directory recursively."""
    compiled = _compiled(pattern)
    if isinstance(compiled, str):
        return path == compiled or path.startswith(compiled.rstrip("/") + "/")
    return compiled.fullmatch(path) is not None


def matches_any(patterns: Iterable[str], path: str) -> bool:
    return any(matches(p, path) for p in patterns)


@lru_cache(maxsize=4096)
def _component(glob: str) -> re.Pattern[str]:
    return re.compile(_translate(glob), re.DOTALL)


def may_match_below(pattern: str, directory: str) -> bool:
    """Whether ``pattern`` can match some path strictly below ``directory`` (pure): saves
    listing directories that cannot hold a match."""
    prefix, rest = _split(normalize(pattern))
    directory = normalize(directory)
    if _is_below(prefix, directory):  # the directory holds the pattern's fixed part
        return True
    if not _is_below(directory, prefix):
        return False
    if not rest:  # below a literal directory, everything matches
        return True
    below = directory[len(prefix) :].strip("/").split("/")
    for i, name in enumerate(below):
        if i >= len(rest):
            return False
        if "**" in rest[i]:
            return True
        if not _component(rest[i]).fullmatch(name):
            return False
    return len(rest) > len(below)


# --- where to watch ----------------------------------------------------------------------


def _is_below(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class WatchPlan:
    """The directories to watch: ``recursive`` ones with their whole tree, ``flat`` ones for
    their direct entries only. No root lies inside a recursive root."""

    recursive: frozenset[str] = field(default_factory=frozenset)
    flat: frozenset[str] = field(default_factory=frozenset)

    @property
    def roots(self) -> frozenset[str]:
        return self.recursive | self.flat

    def covers(self, path: str) -> bool:
        """Whether a change at ``path`` is seen by watches following this plan."""
        if any(_is_below(path, r) for r in self.recursive):
            return True
        return os.path.dirname(path) in self.flat or path in self.flat

    def without(self, roots: Collection[str]) -> WatchPlan:
        return WatchPlan(recursive=self.recursive - set(roots), flat=self.flat - set(roots))


def anchor(pattern: str) -> str:
    """The pattern as the loader keeps it: symlinks in the directories above the last fixed
    component resolved (they are the administrator's layout, followed once, when the job is
    loaded); the last fixed component itself (the watched directory, or a file) is kept as
    written. From then on a watch follows no symlink (``is_real_dir``)."""
    pattern = normalize(pattern)
    prefix, rest = _split(pattern)
    parent, name = os.path.split(prefix)
    if not name:  # "/"
        return pattern
    anchored = os.path.join(os.path.realpath(parent), name)
    return "/".join([anchored, *rest]) if rest else anchored


def is_real_dir(path: str) -> bool:
    """A directory reached without following any symlink (one swapped in later is not)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode) and os.path.realpath(path) == path
    except (OSError, ValueError):
        return False


def _nearest_dir(path: str) -> str:
    """``path`` if it is a directory, else its nearest ancestor that is."""
    while not is_real_dir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _root_for(pattern: str) -> tuple[str, bool]:
    """The directory to watch for one normalized pattern, and whether recursively."""
    prefix, rest = _split(pattern)
    if not rest:  # a literal path
        if is_real_dir(prefix):
            return prefix, True
        return _nearest_dir(os.path.dirname(prefix)), False
    if is_real_dir(prefix):
        deep = len(rest) > 1 or any("**" in part for part in rest)
        return prefix, deep
    # The fixed part does not exist yet: watch its nearest existing parent for it to appear.
    return _nearest_dir(prefix), False


def plan_watch(patterns: Iterable[str]) -> WatchPlan:
    """Where to watch so that every change a pattern can match is seen, now and once missing
    directories appear. For each pattern the root is its deepest existing non-glob ancestor:
    watched recursively when the pattern reaches deeper than one level below it (``**``,
    several glob components, a literal directory), flat otherwise (a literal file's directory,
    ``dir/*.csv``, the nearest existing parent of a path that does not exist yet)."""
    recursive: set[str] = set()
    flat: set[str] = set()
    for pattern in patterns:
        root, deep = _root_for(normalize(pattern))
        (recursive if deep else flat).add(root)
    kept: set[str] = set()
    for root in sorted(recursive, key=len):  # ancestors sort first
        if not any(_is_below(root, k) for k in kept):
            kept.add(root)
    flat_kept = {f for f in flat if not any(_is_below(f, k) for k in kept)}
    return WatchPlan(recursive=frozenset(kept), flat=frozenset(flat_kept))


def watch_roots(patterns: Iterable[str]) -> set[Path]:
    """The directories to watch for ``patterns`` (recursive and flat ones together)."""
    return {Path(r) for r in plan_watch(patterns).roots}


# --- what exists -------------------------------------------------------------------------


def _walk(root: str, *, recursive: bool, max_depth: int | None = None) -> Iterator[str]:
    """Every non-directory entry below ``root``, in a stable order. Symlinks are entries of
    their own, never followed (as the watcher does not follow them); unreadable directories
    are skipped."""
    if not is_real_dir(root):
        return
    try:
        st = os.lstat(root)
    except OSError:
        return
    seen = {(st.st_dev, st.st_ino)}
    stack: list[tuple[str, int]] = [(root, 1)]
    while stack:
        directory, depth = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[str, int]] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and recursive and (max_depth is None or depth < max_depth):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        subdirs.append((entry.path, depth + 1))
            except OSError:
                continue
            if not is_dir:
                yield entry.path
        stack.extend(reversed(subdirs))


def _candidates(pattern: str) -> Iterator[str]:
    """Paths that may match one normalized pattern (a superset; the caller filters)."""
    prefix, rest = _split(pattern)
    if not rest:
        if is_real_dir(prefix):
            yield from _walk(prefix, recursive=True)
        elif os.path.lexists(prefix) and is_real_dir(os.path.dirname(prefix)):
            yield prefix
        return
    if not is_real_dir(prefix):
        return
    deep = any("**" in part for part in rest)
    yield from _walk(prefix, recursive=len(rest) > 1 or deep, max_depth=None if deep else len(rest))


def _entry(path: str) -> ManifestEntry | None:
    """A regular file, or a symlink as itself (its target is never looked at)."""
    try:
        st = os.lstat(path)
    except OSError:  # gone
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        return None
    return ManifestEntry(path=path, mtime_ns=st.st_mtime_ns, size=st.st_size)


def scan(patterns: Iterable[str], *, limit: int = MAX_SCAN_ENTRIES) -> dict[str, ManifestEntry]:
    """The regular files and symlinks (not followed) that ``patterns`` match now, by path.

    Bounded: at most ``limit`` entries, with a warning when the limit is reached."""
    found: dict[str, ManifestEntry] = {}
    for raw in patterns:
        pattern = normalize(raw)
        for path in _candidates(pattern):
            if path in found or not matches(pattern, path):
                continue
            entry = _entry(path)
            if entry is None:
                continue
            found[path] = entry
            if len(found) >= limit:
                log.warning(
                    "watch: %s: stopped listing at %d files; changes beyond them are not compared",
                    raw,
                    limit,
                )
                return found
    return found


def diff(old: Mapping[str, ManifestEntry], new: Mapping[str, ManifestEntry]) -> list[str]:
    """Paths added, removed, or changed (by mtime or size) from ``old`` to ``new``, sorted."""
    changed = set(old.keys() ^ new.keys())
    for path, entry in new.items():
        before = old.get(path)
        if before is not None and (before.mtime_ns, before.size) != (entry.mtime_ns, entry.size):
            changed.add(path)
    return sorted(changed)


def refresh(entries: Mapping[str, ManifestEntry], paths: Iterable[str]) -> dict[str, ManifestEntry]:
    """``entries`` with ``paths`` looked at again: re-stat'ed, or dropped when no longer a
    regular file. Cheaper than a new ``scan`` after a batch of changes."""
    out = dict(entries)
    for path in paths:
        entry = _entry(path)
        if entry is None:
            out.pop(path, None)
        else:
            out[path] = entry
    return out


def walk_matching(
    patterns: Collection[str],
    root: str,
    *,
    recursive: bool = True,
    skip: WatchPlan | None = None,
    limit: int = MAX_SCAN_ENTRIES,
) -> list[str]:
    """Files below ``root`` (every level, or direct entries only) that some pattern matches,
    leaving out those ``skip`` covers; at most ``limit`` of them."""
    patterns = [p for p in patterns if may_match_below(p, root)]
    if not patterns:
        return []
    out: list[str] = []
    for path in _walk(root, recursive=recursive):
        if skip is not None and skip.covers(path):
            continue
        if matches_any(patterns, path):
            out.append(path)
            if len(out) >= limit:
                log.warning("watch: %s: stopped listing at %d files", root, limit)
                break
    return out


def newly_covered(
    patterns: Collection[str], old: WatchPlan, new: WatchPlan, *, limit: int = MAX_SCAN_ENTRIES
) -> list[str]:
    """Files that ``patterns`` match, seen by watches following ``new`` but not ``old``.

    A plan covers every file its patterns matched when it was made, so when the filesystem
    made the plan change (a directory appeared, a root was replaced) these files are new
    since then and no watch saw them arrive."""
    out: list[str] = []
    for root in sorted(new.recursive):
        if not any(_is_below(root, r) for r in old.recursive):
            out += walk_matching(patterns, root, recursive=True, skip=old, limit=limit)
    for root in sorted(new.flat):
        if root not in old.flat and not any(_is_below(root, r) for r in old.recursive):
            out += walk_matching(patterns, root, recursive=False, skip=old, limit=limit)
    return out
