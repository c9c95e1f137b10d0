"""The JSON Schema (draft 2020-12) of job files, built from the loader's key tables.

``python -m jobd.config.schema --write`` regenerates the committed files in ``jobd/schema/``
(shipped in the package); a test checks that they are up to date. Editors use them to complete
and check job files and the daemon config.
The schema checks structure and types; the loader checks more (cron expressions, durations,
time zones, expressions, ``needs`` across files), so a file the schema accepts may still be
rejected by ``jobd check``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jobd.config.loader import (
    CELERY_KEYS,
    DAEMON_KEYS,
    DURATION_PATTERN,
    HTTP_KEYS,
    JOB_ID,
    JOB_KEYS,
    MAX_ID_CHARS,
    POOL_KEYS,
    REQUIRES,
    SCHEDULED_KEY,
    SCHEDULED_KEYS,
    SIZE_PATTERN,
    STAGE_KEYS,
    STAGE_RUNS,
    WHAT_RUNS,
    Key,
)

# --- what a pattern can check beyond the loader's key tables ---------------------------------
# The loader checks these in code; the schema repeats what a regular expression can say, so an
# editor flags them too. Patterns are ECMA-262 as well as Python ``re``.

NO_NUL = "^[^\\x00]*$"
CLOSED_EXPRESSIONS = "^(?:[^$\\x00]|\\$(?!\\{\\{)|\\$\\{\\{(?:(?!\\}\\})[^\\x00])*\\}\\})*$"
"""Every ``${{`` is closed by ``}}``."""
GLOB = (
    "^(?!.*(?:[^/]\\*\\*|\\*\\*[^/]))"  # '**' only as a whole path component
    "(?:[^\\[\\x00]|\\[!?\\]?[^\\]\\x00]*\\])*$"
)  # every '[' closed by ']'
_PART = "[0-9]{1,10}(?:\\.[0-9]+)?(?:ms|s|m|h|d|w)"
DURATION = f"^\\s*(?:{_PART})+\\s*$"
POSITIVE_DURATION = f"^(?=[^1-9]*[1-9])\\s*(?:{_PART})+\\s*$"
"""At most 10 digits a part (the loader refuses more than 100 years); positive: not all 0."""
CADENCE = f"^\\s*(?:minute|hour|day|week|month|(?:{_PART})+)\\s*$"


def _names(names: Sequence[str]) -> str:
    """Case-insensitive alternatives (ECMA-262 has no inline flag)."""
    return "|".join("".join(f"[{c.upper()}{c}]" for c in n) for n in names)


def _cron_field(numbers: str, *, names: Sequence[str] = (), question: bool = False) -> str:
    value = f"0*(?:{numbers})" + (f"|{_names(names)}" if names else "")
    any_ = "[*?]" if question else "\\*"
    item = f"(?:{any_}|(?:{value})(?:-(?:{value}))?)(?:/[0-9]+)?"
    return f"{item}(?:,{item})*"


def _cron() -> str:
    sec = _cron_field("[0-9]|[1-5][0-9]")
    hour = _cron_field("[0-9]|1[0-9]|2[0-3]")
    dom = _cron_field("[1-9]|[12][0-9]|3[01]", question=True)
    month = _cron_field(
        "[1-9]|1[0-2]",
        names=("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    )
    dow = _cron_field(
        "[0-7]", names=("sun", "mon", "tue", "wed", "thu", "fri", "sat"), question=True
    )
    fields = f"(?:{sec}\\s+)?{sec}\\s+{hour}\\s+{dom}\\s+{month}\\s+{dow}"
    aliases = "@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)"
    return f"^\\s*(?:{aliases}|{fields})\\s*$"


CRON = _cron()
"""5 or 6 fields in range, or an alias (a backwards range or a day no month has is not seen)."""


def _strings(pattern: str) -> dict[str, Any]:
    """A string, or a list of them, each matching ``pattern``."""
    one = {"type": "string", "minLength": 1, "pattern": pattern}
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1}]}


_REFINE: dict[str, dict[str, Any]] = {
    "cron": _strings(CRON),
    "every": {"pattern": CADENCE},
    "watch": _strings(GLOB),
    "timeout": {"pattern": POSITIVE_DURATION},
    "start_deadline": {"pattern": POSITIVE_DURATION},
    "debounce": {"pattern": POSITIVE_DURATION},
    "retention_days": {"pattern": POSITIVE_DURATION},
    "image": {"pattern": CLOSED_EXPRESSIONS},
    "condition": {"pattern": CLOSED_EXPRESSIONS},
}
"""Per key: what replaces parts of its schema from the key table."""
_EXPRESSION_LISTS = ("command", "args")  # strings and list items: expressions closed


def _refined(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    out = {**schema, **_REFINE.get(name, {})}
    if out.get("pattern") == DURATION_PATTERN:
        out["pattern"] = DURATION
    if name in _REFINE and "oneOf" in _REFINE[name]:
        out.pop("type", None)
        out.pop("pattern", None)
    if name in _EXPRESSION_LISTS or name == "env":
        out = _with_pattern(out, CLOSED_EXPRESSIONS)
    return _with_pattern(out, NO_NUL)


def _with_pattern(schema: dict[str, Any], pattern: str) -> dict[str, Any]:
    """``schema`` with ``pattern`` on each string it allows that has no pattern yet."""
    out = dict(schema)
    if out.get("type") == "string" or (
        isinstance(out.get("type"), list) and "string" in out["type"]
    ):
        out.setdefault("pattern", pattern)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _with_pattern(out[key], pattern)
    for key in ("oneOf", "prefixItems"):
        if key in out:
            out[key] = [_with_pattern(s, pattern) for s in out[key]]
    return out


def _dependencies(keys: Sequence[Key]) -> dict[str, Any]:
    """``REQUIRES`` for the keys of one table, as ``dependentSchemas``."""
    names = {k.name for k in keys}
    out: dict[str, Any] = {}
    for name, alternatives in REQUIRES.items():
        if name in names:
            out[name] = {"anyOf": [{"required": [a]} for a in alternatives]}
    return out


def _table(
    keys: Sequence[Key],
    title: str,
    runs: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    required: Sequence[str] = (),
    requires: bool = True,
) -> dict[str, Any]:
    props = {k.name: _refined(k.name, k.schema) for k in keys}
    for name, schema in (overrides or {}).items():  # None removes a keyword
        props[name] = {k: v for k, v in {**props[name], **schema}.items() if v is not None}
    table: dict[str, Any] = {
        "type": "object",
        "title": title,
        "properties": props,
        "additionalProperties": False,
    }
    if required:
        table["required"] = list(required)
    if runs:
        table["oneOf"] = [{"required": [name]} for name in runs]
    deps = _dependencies(keys) if requires else {}
    if deps:
        table["dependentSchemas"] = deps
    return table


def build_schema() -> dict[str, Any]:
    """The schema as a JSON-able dict."""
    id_pattern = f"^{JOB_ID.pattern}$"
    stage = _table(STAGE_KEYS, "A stage: one step of a job", STAGE_RUNS)
    job = _table(
        JOB_KEYS,
        "A jobd job: [jobs.<id>]",
        WHAT_RUNS,
        overrides={"stages": {"items": {"$ref": "#/$defs/stage"}}},
    )
    scheduled = _table(
        SCHEDULED_KEYS,
        "A scheduled job of the pyproject.toml scheduled-jobs spec: [tool.scheduled.<id>]",
        required=("every", "entrypoint"),
    )
    jobs_table = {
        "type": "object",
        "description": "The jobs of this file, by id. Ids are unique across all job files.",
        "propertyNames": {"pattern": id_pattern},
        "additionalProperties": {"$ref": "#/$defs/job"},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jobd job file",
        "description": (
            "A file of jobd's jobs_dir: [jobs.<id>] tables, and/or [tool.scheduled.<id>] "
            "tables of the pyproject.toml scheduled-jobs spec. Other top-level tables are "
            "allowed only in a pyproject (a file with [project], [build-system] or [tool]), "
            "where they are ignored. Generated by `python -m jobd.config.schema`."
        ),
        "type": "object",
        "properties": {
            "jobs": jobs_table,
            "tool": {
                "type": "object",
                "properties": {
                    "scheduled": {
                        "type": "object",
                        "description": "Scheduled jobs by id (any id without control "
                        "characters); each runs as the job "
                        "<project>:<id>.",
                        # the full id "<project>:<id>" is at most MAX_ID_CHARS long
                        "propertyNames": {
                            "pattern": f"^{SCHEDULED_KEY.pattern}$",
                            "maxLength": MAX_ID_CHARS - 2,
                        },
                        "additionalProperties": {"$ref": "#/$defs/scheduled"},
                    },
                },
            },
        },
        "anyOf": [
            {"required": ["project"]},
            {"required": ["build-system"]},
            {"required": ["tool"]},
            {
                "propertyNames": {"enum": ["jobs"]},
                "required": ["jobs"],
                "properties": {"jobs": {"minProperties": 1}},
            },
        ],
        "$defs": {"job": job, "stage": stage, "scheduled": scheduled},
    }


def build_daemon_schema() -> dict[str, Any]:
    """The daemon config's schema (``jobd.toml``) as a JSON-able dict."""
    daemon = _table(
        DAEMON_KEYS,
        "[daemon]: the daemon's settings",
        overrides={
            "socket_mode": {
                "type": None,
                "oneOf": [
                    {"type": "string", "pattern": "^\\s*(?:0o|0)?[0-7]{3}\\s*$"},
                    {"type": "integer", "minimum": 0, "maximum": 0o777},
                ],
            },
            "log_max_bytes": {
                "type": None,
                "oneOf": [
                    {"type": "string", "pattern": SIZE_PATTERN},
                    {"type": "integer", "minimum": 1},
                ],
            },
        },
        requires=False,
    )
    pool = _table(
        POOL_KEYS,
        "A pool: limits how many runs of its jobs run at once",
        required=("max_parallel",),
        requires=False,
    )
    http = _table(
        HTTP_KEYS,
        "[http]: where the dashboard listens (docs/dashboard.md)",
        required=("listen",),
        requires=False,
    )
    celery = _table(
        CELERY_KEYS,
        '[celery]: the broker of executor = "celery" jobs (docs/celery.md)',
        required=("broker", "signing_key_file"),
        requires=False,
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "jobd daemon config",
        "description": (
            "jobd's config file (/etc/jobd/jobd.toml, or --config / $JOBD_CONFIG): [daemon] "
            "settings, [pools.<name>] limits, the dashboard's [http] and [celery]. Relative paths "
            "resolve against the file's directory. Generated by `python -m jobd.config.schema "
            "daemon`."
        ),
        "type": "object",
        "properties": {
            "daemon": daemon,
            "pools": {
                "type": "object",
                "description": 'Pools by name; a job joins one with pool = "<name>".',
                "propertyNames": {"pattern": f"^{JOB_ID.pattern}$"},
                "additionalProperties": {"$ref": "#/$defs/pool"},
            },
            "http": http,
            "celery": celery,
        },
        "additionalProperties": False,
        "$defs": {"pool": pool},
    }


SCHEMA_DIR = Path(__file__).parents[1] / "schema"
"""Where the schemas ship, inside the package: ``jobfile.schema.json``, ``daemon.schema.json``."""
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "jobfile": build_schema,
    "daemon": build_daemon_schema,
}


def render(name: str = "jobfile") -> str:
    """A schema file's exact text."""
    return json.dumps(SCHEMAS[name](), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobd.config.schema [jobfile|daemon|--write]``: print a schema, or write
    both into the package (``--write``, after a change of the key tables)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--write"]:
        for name in SCHEMAS:
            (SCHEMA_DIR / f"{name}.schema.json").write_text(render(name))
        return 0
    if len(args) > 1 or (args and args[0] not in SCHEMAS):
        print("usage: python -m jobd.config.schema [jobfile|daemon|--write]", file=sys.stderr)
        return 2
    print(render(args[0] if args else "jobfile"), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
