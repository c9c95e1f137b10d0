"""When a job runs, from its table: time triggers and timezone, watch, needs, matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobd.config.daemon_config import under
from jobd.config.keys import (
    PARAM_NAME,
    TABLES,
    is_job_ref,
)
from jobd.config.messages import describe, show
from jobd.config.model import (
    DaemonConfig,
    MatrixSpec,
    WatchSpec,
)
from jobd.config.reading import Table
from jobd.matrix import expand
from jobd.triggers.abc import TimeTrigger
from jobd.triggers.cadence import CadenceTrigger
from jobd.triggers.cron import CronTrigger
from jobd.triggers.manifest import anchor
from jobd.triggers.timezones import resolve_timezone

# --- building one job ----------------------------------------------------------------------


def time_triggers(t: Table, job_id: str, timezone: str | None) -> tuple[TimeTrigger, ...]:
    if timezone is None:
        return ()
    triggers: list[TimeTrigger] = []
    cron = t.get("cron")
    for i, expr in enumerate([cron] if isinstance(cron, str) else cron or []):
        try:
            triggers.append(CronTrigger.parse(expr, timezone))
        except ValueError as e:
            if isinstance(cron, str):
                t.problem("cron", str(e))
            else:
                t.problem("cron", str(e), i)
    every = t.get("every")
    if every is not None:
        try:
            triggers.append(CadenceTrigger.parse(job_id, every, timezone))
        except ValueError as e:
            t.problem("every", str(e))
    return tuple(triggers)


def job_timezone(t: Table, config: DaemonConfig) -> str | None:
    name: str = t.get("timezone", config.timezone)
    try:
        resolve_timezone(name)
    except ValueError as e:
        t.problem("timezone" if "timezone" in t.values else None, str(e))
        return None
    return name


def _glob_problem(pattern: str) -> str | None:
    if "\x00" in pattern:
        return "a path must not hold a NUL character"
    depth = 0
    for c in pattern:
        if c == "[":
            depth += 1
        elif c == "]" and depth:
            depth = 0
    if depth:
        return f"{show(pattern)} has an unclosed '[' (write '[[]' for a literal '[')"
    for part in pattern.split("/"):
        if "**" in part and part != "**":
            return f"{show(pattern)}: '**' must be a whole path component, as in 'logs/**/*.csv'"
    return None


def watch_spec(t: Table, base: Path) -> WatchSpec | None:
    raw = t.get("watch")
    if raw is None:
        return None
    patterns: list[str] = []
    for i, pattern in enumerate([raw] if isinstance(raw, str) else raw):
        problem = _glob_problem(pattern)
        if problem is not None:
            if isinstance(raw, str):
                t.problem("watch", problem)
            else:
                t.problem("watch", problem, i)
            continue
        patterns.append(anchor(str(under(base, pattern))))
    debounce = t.duration("debounce", positive=True)
    return WatchSpec(patterns=tuple(patterns), debounce=0.1 if debounce is None else debounce)


def needs_of(t: Table, job_id: str) -> tuple[str, ...]:
    needs: list[str] = []
    for i, name in enumerate(t.get("needs", [])):
        if not is_job_ref(name):
            t.problem("needs", f"{show(name)} is not a valid job id", i)
        elif name == job_id:
            t.problem("needs", "a job cannot need itself", i)
        elif name in needs:
            t.problem("needs", f"{show(name)} is named twice", i)
        else:
            needs.append(name)
    return tuple(needs)


def hooks_of(t: Table, job_id: str, key: str) -> tuple[str, ...]:
    hooks: list[str] = []
    for i, name in enumerate(t.get(key, [])):
        if not is_job_ref(name):
            t.problem(key, f"{show(name)} is not a valid job id", i)
        elif name == job_id:
            t.problem(key, "a job cannot be its own hook", i)
        elif name in hooks:
            t.problem(key, f"{show(name)} is named twice", i)
        else:
            hooks.append(name)
    return tuple(hooks)


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def matrix_spec(t: Table) -> MatrixSpec | None:
    raw = t.get("matrix")
    if raw is None:
        return None
    before = len(t.report.problems)
    dims: dict[str, tuple[Any, ...]] = {}
    extra: dict[str, list[dict[str, Any]]] = {}
    for name, values in raw.items():
        if name in ("include", "exclude"):
            if not TABLES.accepts(values):
                t.problem(
                    "matrix", f"{name}: expected a list of tables, got {describe(values)}", name
                )
            elif name in t.raw:
                t.problem("matrix", f"{name} is given both in matrix and beside it; keep one", name)
            else:
                extra[name] = values
        elif not PARAM_NAME.fullmatch(name):
            t.problem(
                "matrix",
                f"{show(name)} is not a valid matrix dimension name (it must "
                f"match {PARAM_NAME.pattern})",
                name,
            )
        elif name in ("max_parallel", "fail_fast") and not isinstance(values, list):
            t.problem(
                "matrix",
                f"{name} is a job key, not a matrix dimension: move it out of matrix",
                name,
            )
        elif not isinstance(values, list):
            t.problem("matrix", f"{name}: expected a list of values, got {describe(values)}", name)
        elif not values:
            t.problem("matrix", f"{name}: a dimension needs at least one value", name)
        else:
            dims[name] = _freeze(values)
    include = extra.get("include", t.get("include", []))
    exclude = extra.get("exclude", t.get("exclude", []))
    if not raw:
        t.problem("matrix", "needs at least one dimension or include")
        return None
    spec = MatrixSpec(
        dimensions=dims,
        include=tuple(_freeze(i) for i in include),
        exclude=tuple(_freeze(e) for e in exclude),
        max_parallel=t.get("max_parallel"),
        fail_fast=t.get("fail_fast", True),
    )
    if len(t.report.problems) > before:
        return None
    try:
        expand(spec)
    except ValueError as e:
        t.problem("matrix", str(e).removeprefix("matrix: "))
        return None
    return spec
