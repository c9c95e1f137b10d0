"""Job files: one file's jobs, then every file of the jobs directory with duplicates and
the needs graph checked across files."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobd._exceptions import ConfigError, Problem
from jobd.config.jobbuild import build_job, build_scheduled_job
from jobd.config.keys import (
    HOOK_KEYS,
    JOB_ID,
    JOB_KEYS,
    MAX_ID_CHARS,
    SCHEDULED_KEY,
    SCHEDULED_KEYS,
    Key,
)
from jobd.config.locate import KeyPath, Locations
from jobd.config.messages import Report, describe, display_path, hint, one_line, resolved, show
from jobd.config.model import (
    DaemonConfig,
    JobDef,
    JobSet,
    JobSource,
)
from jobd.config.reading import Table, read_toml
from jobd.flows.graph import find_cycle

# --- one job file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FileResult:
    """What one job file gave: its jobs, or the problems that rejected it."""

    path: Path
    jobs: tuple[JobDef, ...] = ()
    problems: tuple[Problem, ...] = ()
    locations: Locations = field(default_factory=lambda: Locations({}))
    tables: Mapping[str, KeyPath] = field(default_factory=dict)  # job id -> its table's path


def project_namespace(path: Path, doc: Mapping[str, Any]) -> str:
    """The namespace of a pyproject's ``[tool.scheduled]`` jobs: ``[project].name``; without
    one, the name of the project's directory for a (linked) ``pyproject.toml``, else the job
    file's name without ``.toml``. Lowercased, with every run of other characters than
    ``a-z0-9`` made one ``-`` (PEP 503's normalization, for valid names)."""
    project = doc.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(name, str) or not name.strip():
        real = resolved(path)
        name = real.parent.name if real.name == "pyproject.toml" else path.stem
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "project"


def _is_pyproject(path: Path, doc: Mapping[str, Any]) -> bool:
    return (
        path.name == "pyproject.toml"
        or resolved(path).name == "pyproject.toml"
        or any(k in doc for k in ("tool", "project", "build-system"))
    )


def parse_job_file(path: Path, config: DaemonConfig) -> FileResult:
    """Read and validate one job file, alone: no checks across files."""
    report = Report(path)
    doc = read_toml(path, report, "job file")
    if doc is None:
        return FileResult(path=path, problems=tuple(report.problems))
    base = resolved(path).parent
    pyproject = _is_pyproject(path, doc)
    jobs: list[JobDef] = []
    tables: dict[str, KeyPath] = {}

    if not pyproject:
        for name in doc:
            if name != "jobs":
                report.add(
                    "unknown key"
                    + hint(name, ("jobs",))
                    + " (a job file holds [jobs.<id>] tables)",
                    at=(name,),
                    key=name,
                )

    def each(
        at: KeyPath,
        build: Callable[[str, Table, int | None], JobDef | None],
        keys: Sequence[Key],
        namespace: str | None = None,
    ) -> None:
        container: Any = doc
        for part in at:
            container = container.get(part) if isinstance(container, dict) else None
        if container is None:
            return
        if not isinstance(container, dict):
            report.add(
                f"expected a table of jobs, got {describe(container)}",
                at=at,
                key=".".join(map(str, at)),
            )
            return
        for key, table in container.items():
            where = (*at, key)
            line = report.locs.nearest(where)
            if namespace is None and not JOB_ID.fullmatch(key):
                report.add(
                    f"{show(key)} is not a valid job id: it must match {JOB_ID.pattern}", at=where
                )
                continue
            job_id = key if namespace is None else f"{namespace}:{key}"
            if namespace is not None and not SCHEDULED_KEY.fullmatch(key):
                report.add(
                    f"{show(key)} is not a valid job id: it holds a control character"
                    if key
                    else "an empty job id",
                    at=where,
                )
                continue
            if len(job_id) > MAX_ID_CHARS:
                report.add(
                    f"job id {show(job_id)} is longer than {MAX_ID_CHARS} characters", at=where
                )
                continue
            if not isinstance(table, dict):
                report.add(
                    f"expected a table ([{'.'.join(map(str, where))}]), got {describe(table)}",
                    at=where,
                    job=job_id,
                )
                continue
            if job_id in tables:
                first = report.locs.nearest(tables[job_id])
                report.add(
                    f"job id defined twice in this file (also at line {first})",
                    at=where,
                    job=job_id,
                )
                continue
            tables[job_id] = where
            t = Table(report, where, job_id, keys, table)
            job = build(job_id, t, line)
            if job is not None and t.ok:
                jobs.append(job)

    def build_jobs(job_id: str, t: Table, line: int | None) -> JobDef | None:
        return build_job(job_id, t, JobSource(file=path, line=line, form="jobs"), base, config)

    def build_scheduled(job_id: str, t: Table, line: int | None) -> JobDef | None:
        source = JobSource(file=path, line=line, form="tool.scheduled")
        return build_scheduled_job(job_id, t, source, base, config)

    each(("jobs",), build_jobs, JOB_KEYS)
    tool = doc.get("tool")
    if pyproject and isinstance(tool, dict):
        each(
            ("tool", "scheduled"),
            build_scheduled,
            SCHEDULED_KEYS,
            namespace=project_namespace(path, doc),
        )
    if (
        not tables
        and not report.problems
        and path.name != "pyproject.toml"
        and resolved(path).name != "pyproject.toml"
    ):
        report.add("no [jobs.<id>] or [tool.scheduled.<id>] tables: this file defines no jobs")
    if report.problems:
        problems = sorted(report.problems, key=lambda p: p.line or 0)
        return FileResult(path=path, problems=tuple(problems), locations=report.locs, tables=tables)
    return FileResult(path=path, jobs=tuple(jobs), locations=report.locs, tables=tables)


def load_job_file(path: Path, config: DaemonConfig) -> list[JobDef]:
    """The jobs of one job file (no checks across files); raise ``ConfigError``."""
    result = parse_job_file(path, config)
    if result.problems:
        raise ConfigError(list(result.problems))
    return list(result.jobs)


# --- all job files -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JobLoad:
    """The outcome of loading a set of job files with the checks across them."""

    jobs: Mapping[str, JobDef]
    problems: Mapping[Path, tuple[str, ...]]  # rejected file -> its problem lines
    details: Mapping[Path, tuple[Problem, ...]]  # the same problems, as data
    files: tuple[Path, ...]  # every file read, in order

    def to_jobset(self) -> JobSet:
        return JobSet(jobs=self.jobs, invalid=self.problems)


def job_files(jobs_dir: Path) -> list[Path]:
    """Every ``*.toml`` in ``jobs_dir`` (not hidden, not in subdirectories), in sorted order;
    raise ``OSError`` when the directory cannot be listed."""
    with os.scandir(jobs_dir) as it:
        names = [e.name for e in it if e.name.endswith(".toml") and not e.name.startswith(".")]
    return [jobs_dir / name for name in sorted(names)]


def load_job_files(
    paths: Sequence[Path], config: DaemonConfig, *, previous: JobSet | None = None
) -> JobLoad:
    """Load ``paths`` (in this order of precedence) with the checks across files: job ids
    unique (the later file is rejected), ``needs`` naming known jobs, no ``needs`` cycle.

    A rejected file keeps the jobs it held in ``previous``, as long as they still fit."""
    results = [parse_job_file(p, config) for p in paths]
    rejected: dict[Path, list[Problem]] = {}
    accepted: dict[Path, FileResult] = {}
    owner: dict[str, Path] = {}
    for r in results:
        if r.problems:
            rejected[r.path] = list(r.problems)
            continue
        dups = [j for j in r.jobs if j.id in owner]
        if dups:
            report = Report(r.path)
            for j in dups:
                other = accepted[owner[j.id]]
                line = next(o.source.line for o in other.jobs if o.id == j.id)
                where = display_path(other.path) + (f":{line}" if line is not None else "")
                report.add(f"job id already defined in {where}", line=j.source.line, job=j.id)
            rejected[r.path] = report.problems
            continue
        accepted[r.path] = r
        owner.update((j.id, r.path) for j in r.jobs)

    dropped: dict[str, str] = {}  # kept previous jobs that no longer fit -> why

    def kept() -> dict[str, JobDef]:
        if previous is None:
            return {}
        ids = {j.id for r in accepted.values() for j in r.jobs}
        return {
            j.id: j
            for j in previous.jobs.values()
            if j.source.file in rejected and j.id not in ids and j.id not in dropped
        }

    def reject(r: FileResult, job: JobDef, need: str, message: str, key: str = "needs") -> None:
        report = Report(r.path)
        report.locs = r.locations
        names: tuple[str, ...] = getattr(job, key)
        report.add(
            message, at=(*r.tables.get(job.id, ()), key, names.index(need)), job=job.id, key=key
        )
        rejected.setdefault(r.path, []).extend(report.problems)

    # Reject files (and drop kept jobs) until what is left is closed under needs and has no
    # cycle. A new file is rejected before a kept previous job is dropped.
    while True:
        kept_now = kept()
        effective = {j.id: j for r in accepted.values() for j in r.jobs} | kept_now
        rejected_now = False
        for r in list(accepted.values()):
            for j in r.jobs:
                for key, names in (("needs", j.needs), *((k, getattr(j, k)) for k in HOOK_KEYS)):
                    for need in names:
                        if need not in effective:
                            rejected_now = True
                            accepted.pop(r.path, None)
                            reject(
                                r, j, need, f"unknown job {show(need)}" + hint(need, effective), key
                            )
        if rejected_now:
            continue
        missing = {
            j.id: n for j in kept_now.values() for n in (*j.needs, *j.hooks) if n not in effective
        }
        if missing:
            dropped.update((i, f"needs unknown job {show(n)}") for i, n in missing.items())
            continue
        cycle = find_cycle({j.id: j.needs for j in effective.values()})
        if not cycle:
            break
        text = "needs cycle: " + " -> ".join(cycle)
        steps = list(itertools.pairwise(cycle))
        if all(job_id in kept_now for job_id, _ in steps):
            dropped.update((job_id, text) for job_id, _ in steps)
            continue
        for job_id, need in steps:
            if job_id not in kept_now:
                holder = accepted.pop(effective[job_id].source.file, None)
                if holder is not None:  # None: rejected already, for an earlier job of it
                    reject(holder, effective[job_id], need, text)

    lines: dict[Path, tuple[str, ...]] = {}
    details: dict[Path, tuple[Problem, ...]] = {}
    for path in [r.path for r in results if r.path in rejected]:
        details[path] = tuple(rejected[path])
        lines[path] = tuple(str(p) for p in rejected[path])
    if previous is not None:
        for job_id, why in dropped.items():
            job = previous.jobs[job_id]
            note = Problem(
                file=one_line(display_path(job.source.file)),
                line=job.source.line,
                job=job_id,
                message=f"previous definition no longer loaded: {why}",
            )
            details[job.source.file] = (*details.get(job.source.file, ()), note)
            lines[job.source.file] = (*lines.get(job.source.file, ()), str(note))
    jobs = {j.id: j for r in accepted.values() for j in r.jobs} | kept()
    return JobLoad(
        jobs=dict(sorted(jobs.items())), problems=lines, details=details, files=tuple(paths)
    )


def load_jobs(config: DaemonConfig, *, previous: JobSet | None = None) -> JobSet:
    """Every ``*.toml`` of ``config.jobs_dir`` in sorted path order; a file that fails is
    rejected whole (its problem lines in ``JobSet.invalid``), keeping the jobs it held in
    ``previous``. When ``jobs_dir`` cannot be listed, every previous job is kept."""
    try:
        paths = job_files(config.jobs_dir)
    except (OSError, ValueError) as e:
        problem = Problem(
            file=one_line(display_path(config.jobs_dir)),
            message=f"cannot read jobs_dir: {getattr(e, 'strerror', None) or e}",
        )
        jobs = dict(previous.jobs) if previous is not None else {}
        return JobSet(jobs=jobs, invalid={config.jobs_dir: (str(problem),)})
    return load_job_files(paths, config, previous=previous).to_jobset()
