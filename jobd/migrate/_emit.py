"""The converted jobs, and writing them as a TOML job file."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """Something that was not carried over (or was, but differently): where, and what."""

    line: int | None
    text: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.text}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Converted:
    """One job: its id, its keys in the order written, and the comment above it."""

    job_id: str
    keys: Mapping[str, Any]
    origin: str  # "line 12: 0 2 * * * /usr/local/bin/backup"


@dataclass(slots=True, kw_only=True)
class Result:
    jobs: list[Converted] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def note(self, line: int | None, text: str) -> None:
        self.notes.append(Note(line=line, text=text))


def toml_value(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), lists, tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def job_id_for(words: str, taken: set[str], fallback: str) -> str:
    """A job id from a command's program name (``/usr/bin/backup.sh -x`` -> ``backup``),
    unique among ``taken`` (``backup-2``...), valid as a jobd id."""
    first = words.strip().split()[0] if words.strip() else ""
    base = first.rsplit("/", 1)[-1]
    for suffix in (".sh", ".py", ".pl", ".rb", ".bash"):
        base = base.removesuffix(suffix)
    base = _ID_CHARS.sub("-", base).strip("-._")[:50] or fallback
    if not base[0].isalnum():
        base = f"job-{base}"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    taken.add(candidate)
    return candidate


def render(result: Result, *, source: str, kind: str) -> str:
    """The job file: a header naming the source, then one ``[jobs.<id>]`` table a job."""
    out = [
        f"# Imported from {source} ({kind}) by jobd import.",
        "# Check it with: jobd check; what was not carried over is listed below.",
        "",
    ]
    if result.notes:
        out.append("# Not carried over, or carried over differently:")
        out += [f"#   {n.render(source)}" for n in result.notes]
        out.append("")
    for job in result.jobs:
        out.append(f"# {job.origin}")
        out.append(f"[jobs.{toml_key(job.job_id)}]")
        out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in job.keys.items()]
        out.append("")
    return "\n".join(out)
