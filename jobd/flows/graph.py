"""The needs graph: ``needs[job]`` lists the jobs ``job`` waits for.

Pure functions over a mapping; every walk is iterative and visits names in sorted order, so
results are the same on every run. Names that are needed but have no entry of their own are
leaves (unknown ids are the loader's to report).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle as a closed path ``[a, b, c, a]`` (``a`` needs ``b`` needs ``c`` needs
    ``a``), or None. The same graph always gives the same cycle."""
    done: set[str] = set()
    for start in sorted(needs):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start: 0}
        stack = [iter(sorted(needs.get(start, ())))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                finished = path.pop()
                done.add(finished)
                del on_path[finished]
                continue
            if nxt in on_path:
                return [*path[on_path[nxt] :], nxt]
            if nxt in done:
                continue
            on_path[nxt] = len(path)
            path.append(nxt)
            stack.append(iter(sorted(needs.get(nxt, ()))))
    return None


def format_cycle(cycle: Sequence[str]) -> str:
    """``a -> b -> a``, for messages."""
    return " -> ".join(cycle)


def downstream(needs: Mapping[str, Sequence[str]], root: str) -> frozenset[str]:
    """``root`` and every job that needs it, directly or through others."""
    needed_by: dict[str, list[str]] = {}
    for job, ups in needs.items():
        for up in ups:
            needed_by.setdefault(up, []).append(job)
    seen = {root}
    todo = [root]
    while todo:
        for job in needed_by.get(todo.pop(), ()):
            if job not in seen:
                seen.add(job)
                todo.append(job)
    return frozenset(seen)


def topological_order(needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Every job of ``needs`` after the jobs it needs; among jobs free to go, alphabetical.

    Raises ``ValueError`` naming a cycle (``needs cycle: a -> b -> a``) when there is one.
    """
    jobs = set(needs)
    waiting = {job: len({u for u in needs[job] if u in jobs}) for job in jobs}
    needed_by: dict[str, list[str]] = {}
    for job in jobs:
        for up in set(needs[job]):
            if up in jobs:
                needed_by.setdefault(up, []).append(job)
    ready = [job for job, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        job = heapq.heappop(ready)
        order.append(job)
        for down in needed_by.get(job, ()):
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, down)
    if len(order) < len(jobs):
        cycle = find_cycle(needs)
        assert cycle is not None
        raise ValueError(f"needs cycle: {format_cycle(cycle)}")
    return order
