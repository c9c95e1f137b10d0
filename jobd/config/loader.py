"""Reading the daemon config and the job files into the frozen model of ``jobd.config.model``.

Everything a user writes is validated here, once, at the edge. Every mistake becomes a
``Problem`` naming the file, the line, the job and the key; a file with any problem is
rejected whole (``ConfigError`` carries all of its problems). Nothing a file contains -- bad
TOML, binary data, a huge file, deep nesting, a directory named ``x.toml`` -- may escape as
anything but a ``Problem``.

The key tables (``JOB_KEYS``, ``STAGE_KEYS``, ``SCHEDULED_KEYS``, ``DAEMON_KEYS``, ``POOL_KEYS``,
``WHAT_RUNS``, ``REQUIRES``) drive both the validation below and the JSON Schema built by
``jobd.config.schema``, so the two cannot drift apart.

The pieces live in ``keys``, ``messages``, ``reading``, ``daemon_config``, ``jobbuild`` and
``jobfiles``; this module keeps the names callers import.
"""

from __future__ import annotations

from jobd.config.daemon_config import (
    default_config_path,
    load_config,
)
from jobd.config.jobfiles import (
    FileResult,
    JobLoad,
    job_files,
    load_job_file,
    load_job_files,
    load_jobs,
    parse_job_file,
    project_namespace,
)
from jobd.config.keys import (
    BOOLEAN,
    CADENCES,
    COMMAND,
    DAEMON_KEYS,
    DEFAULT_CONFIG_PATH,
    DURATION,
    DURATION_PATTERN,
    ENTRYPOINT,
    ENTRYPOINT_STRING,
    ENV_NAME,
    ENV_TABLE,
    EVERY,
    HTTP_KEYS,
    ID_LIST,
    INTEGER,
    JOB_ID,
    JOB_KEYS,
    MATRIX,
    MAX_DEPTH,
    MAX_DURATION,
    MAX_FILE_BYTES,
    MAX_ID_CHARS,
    NUMBER,
    PARAM_NAME,
    PARAM_TABLE,
    POOL_KEYS,
    REQUIRES,
    SCHEDULED_KEY,
    SCHEDULED_KEYS,
    SIZE_PATTERN,
    STAGE_KEYS,
    STAGE_LIST,
    STAGE_RUNS,
    STRING,
    STRING_LIST,
    STRINGS,
    TABLES,
    WHAT_RUNS,
    Key,
    Kind,
    is_job_ref,
)
from jobd.config.messages import (
    describe,
    display_path,
    hint,
    one_line,
    resolved,
    show,
)

__all__ = [
    "BOOLEAN",
    "CADENCES",
    "COMMAND",
    "DAEMON_KEYS",
    "DEFAULT_CONFIG_PATH",
    "DURATION",
    "DURATION_PATTERN",
    "ENTRYPOINT",
    "ENTRYPOINT_STRING",
    "ENV_NAME",
    "ENV_TABLE",
    "EVERY",
    "HTTP_KEYS",
    "ID_LIST",
    "INTEGER",
    "JOB_ID",
    "JOB_KEYS",
    "MATRIX",
    "MAX_DEPTH",
    "MAX_DURATION",
    "MAX_FILE_BYTES",
    "MAX_ID_CHARS",
    "NUMBER",
    "PARAM_NAME",
    "PARAM_TABLE",
    "POOL_KEYS",
    "REQUIRES",
    "SCHEDULED_KEY",
    "SCHEDULED_KEYS",
    "SIZE_PATTERN",
    "STAGE_KEYS",
    "STAGE_LIST",
    "STAGE_RUNS",
    "STRING",
    "STRINGS",
    "STRING_LIST",
    "TABLES",
    "WHAT_RUNS",
    "FileResult",
    "JobLoad",
    "Key",
    "Kind",
    "default_config_path",
    "describe",
    "display_path",
    "hint",
    "is_job_ref",
    "job_files",
    "load_config",
    "load_job_file",
    "load_job_files",
    "load_jobs",
    "one_line",
    "parse_job_file",
    "project_namespace",
    "resolved",
    "show",
]
