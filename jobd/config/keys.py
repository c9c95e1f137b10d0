"""The key tables of the daemon config and job files: the one source of both validation and
the JSON Schema (``jobd.config.schema``), with the kinds of value each key takes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jobd._enums import Catchup, ExecutorKind, Overlap, TriggerRule

MAX_FILE_BYTES: Final = 1024 * 1024
"""Config and job files larger than this are rejected unread (1 MiB)."""
MAX_DEPTH: Final = 32
"""Tables and arrays nested deeper than this are rejected."""
MAX_DURATION: Final = 100 * 366 * 86400.0

QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCHEDULED_KEY = re.compile(r"[^\x00-\x1f\x7f]+")
"""A ``[tool.scheduled.<id>]`` key: the spec allows any TOML key; jobd refuses control
characters only (ids go into messages, logs and the environment)."""
MAX_ID_CHARS: Final = 256
"""The longest full job id (``project:job``): the control protocol's limit."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
ENTRYPOINT = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)
DURATION_PATTERN: Final = r"^\s*([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+\s*$"
SIZE_PATTERN: Final = r"^\s*([0-9]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)\s*$"
CADENCES: Final = ("minute", "hour", "day", "week", "month")
DEFAULT_CONFIG_PATH: Final = Path("/etc/jobd/jobd.toml")


# --- value kinds and key tables --------------------------------------------------------------


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return _is_int(v)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def is_scalar(v: object) -> bool:
    return isinstance(v, str | bool) or _is_number(v)


@dataclass(frozen=True, slots=True)
class Kind:
    """The type of a key's value: what the loader accepts and what the schema says."""

    expected: str  # for "expected <expected>, got ..."
    accepts: Callable[[object], bool]
    schema: Mapping[str, Any]
    min_items: int = 0  # for lists: the fewest items allowed


_STR_SCHEMA: Final[Mapping[str, Any]] = {"type": "string", "minLength": 1}
_STR_LIST_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "minItems": 1,
}
_SCALAR_TABLE: Final[Mapping[str, Any]] = {
    "type": "object",
    "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
}

STRING = Kind("a string", lambda v: isinstance(v, str), _STR_SCHEMA)
INTEGER = Kind("an integer", _is_int, {"type": "integer"})
NUMBER = Kind("a number", _is_number, {"type": "number"})
BOOLEAN = Kind("a boolean (true or false)", lambda v: isinstance(v, bool), {"type": "boolean"})
DURATION = Kind(
    'a duration string such as "30s"',
    lambda v: isinstance(v, str),
    {"type": "string", "pattern": DURATION_PATTERN},
)
STRINGS = Kind(
    "a string or a list of strings",
    lambda v: isinstance(v, str) or _is_str_list(v),
    {"oneOf": [_STR_SCHEMA, _STR_LIST_SCHEMA]},
    min_items=1,
)
STRING_LIST = Kind(
    "a list of strings", _is_str_list, {"type": "array", "items": {"type": "string"}}
)
ID_LIST = Kind(
    "a list of job ids",
    _is_str_list,
    {
        "type": "array",
        "uniqueItems": True,
        "items": {
            "type": "string",
            "pattern": f"^({JOB_ID.pattern}|[^:\\x00-\\x1f\\x7f]+:[^\\x00-\\x1f\\x7f]+)$",
        },
    },
)
COMMAND = Kind(
    "a string (run by /bin/sh -c) or a list of strings (exec'd)",
    lambda v: isinstance(v, str) or _is_str_list(v),
    {
        "oneOf": [
            _STR_SCHEMA,
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string"},
                "prefixItems": [{"type": "string", "minLength": 1}],
            },
        ]
    },
    min_items=1,
)
ENV_TABLE = Kind(
    "a table of strings",
    lambda v: isinstance(v, dict),
    {
        **_SCALAR_TABLE,
        "propertyNames": {"pattern": f"^{ENV_NAME.pattern}$", "not": {"pattern": "^JOBD_"}},
    },
)
PARAM_TABLE = Kind(
    "a table of strings",
    lambda v: isinstance(v, dict),
    {**_SCALAR_TABLE, "propertyNames": {"pattern": f"^{PARAM_NAME.pattern}$"}},
)


def _is_table_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, dict) for x in v)


TABLES = Kind("a list of tables", _is_table_list, {"type": "array", "items": {"type": "object"}})
STAGE_LIST = Kind(
    "a list of tables",
    _is_table_list,
    {"type": "array", "minItems": 1, "items": {"type": "object"}},
    min_items=1,
)
MATRIX = Kind(
    "a table of lists",
    lambda v: isinstance(v, dict),
    {
        "type": "object",
        "properties": {"include": TABLES.schema, "exclude": TABLES.schema},
        "propertyNames": {"pattern": f"^{PARAM_NAME.pattern}$"},
        "additionalProperties": {"type": "array", "minItems": 1},
    },
)


EVERY = Kind(
    'a string: a cadence ("hour") or a duration ("30s")', lambda v: isinstance(v, str), _STR_SCHEMA
)
ENTRYPOINT_STRING = Kind(
    'a string "module:function"',
    lambda v: isinstance(v, str),
    {"type": "string", "pattern": f"^{ENTRYPOINT.pattern}$"},
)


def _enum(values: Iterable[str]) -> Kind:
    return Kind("a string", lambda v: isinstance(v, str), {"type": "string", "enum": list(values)})


_NO_DEFAULT: Final = object()


@dataclass(frozen=True, slots=True)
class Key:
    """One key of a table: its name, its kind, what it means and its default."""

    name: str
    kind: Kind
    doc: str
    default: object = _NO_DEFAULT
    minimum: float | None = None  # for integers and numbers
    choices: tuple[str, ...] = ()  # for enumerations

    @property
    def schema(self) -> dict[str, Any]:
        """This key's JSON Schema."""
        s: dict[str, Any] = {**self.kind.schema, "description": self.doc}
        if self.default is not _NO_DEFAULT:
            s["default"] = self.default
        if self.minimum is not None:
            s["minimum"] = int(self.minimum) if self.minimum == int(self.minimum) else self.minimum
        if self.choices:
            s["enum"] = list(self.choices)
        return s


def _choice_key(name: str, values: Sequence[str], doc: str, default: str | None) -> Key:
    return Key(
        name, _enum(values), doc, _NO_DEFAULT if default is None else default, choices=tuple(values)
    )


_STEP_KEYS: Final = (
    Key(
        "command",
        COMMAND,
        "What runs: a list is exec'd without a shell, a string runs with "
        "/bin/sh -c. May hold ${{ }} expressions.",
    ),
    Key(
        "entrypoint",
        ENTRYPOINT_STRING,
        'What runs: "package.module:function", imported and '
        "called in a fresh Python process; coroutine functions are awaited.",
    ),
    Key("script", STRING, "What runs: a Python script, relative to the job file's directory."),
    Key("args", STRING_LIST, "Arguments of script. May hold ${{ }} expressions.", []),
    Key(
        "python",
        STRING,
        "The Python interpreter for entrypoint and script; default: the daemon's own.",
    ),
)
_RETRY_KEYS: Final = (
    Key("retries", INTEGER, "Attempts after the first one fails.", 0, minimum=0),
    Key("retry_delay", DURATION, "Delay before the first retry.", "1s"),
    Key(
        "retry_backoff", NUMBER, "Each further retry waits this many times longer.", 2.0, minimum=1
    ),
    Key("retry_max_delay", DURATION, "The longest delay between retries.", "10m"),
)

JOB_KEYS: Final[tuple[Key, ...]] = (
    # triggers
    Key(
        "cron",
        STRINGS,
        "5-field cron (6 with seconds first) or @hourly, @daily, @weekly, "
        "@monthly, @yearly; one expression or a list.",
    ),
    Key(
        "every",
        EVERY,
        'Cadence "minute", "hour", "day", "week", "month", or a duration such '
        'as "30s"; the run falls at a fixed offset inside each period.',
    ),
    Key("timezone", STRING, "IANA zone for cron and calendar cadences; default: the daemon's."),
    Key("watch", STRINGS, "Paths or globs; a change starts a run with the changed paths."),
    Key("debounce", DURATION, "Longest a burst of changes is coalesced into one run.", "100ms"),
    Key("needs", ID_LIST, "Upstream jobs: this job runs after them in their flow.", []),
    _choice_key(
        "trigger_rule",
        [r.value for r in TriggerRule],
        "When this job runs, judged on its needs' results.",
        TriggerRule.ALL_SUCCESS,
    ),
    # what runs
    *_STEP_KEYS,
    Key("stages", STAGE_LIST, "Steps run in order, each with command, entrypoint or script."),
    Key("image", STRING, "Container image: command runs in it through the Docker Engine API."),
    _choice_key(
        "executor",
        [e.value for e in ExecutorKind],
        "Where it runs: local, docker "
        "(with image) or celery (on a worker; the daemon config needs [celery]); "
        "default: docker with image, else local.",
        None,
    ),
    Key("queue", STRING, 'The Celery queue of an executor = "celery" job.', "jobd.default"),
    # how it runs
    Key("workdir", STRING, "Working directory; default: the job file's directory."),
    Key("env", ENV_TABLE, "Environment variables. Values may hold ${{ }} expressions.", {}),
    Key("env_file", STRING, "A file of KEY=value lines added to the environment."),
    Key("user", STRING, "Run as this user (the daemon must run as root)."),
    Key("timeout", DURATION, "Then SIGTERM to the run's process group, SIGKILL after kill_grace."),
    Key("kill_grace", DURATION, "Time between SIGTERM and SIGKILL.", "10s"),
    *_RETRY_KEYS,
    _choice_key(
        "overlap",
        [o.value for o in Overlap],
        "What a trigger does while the job runs.",
        Overlap.QUEUE,
    ),
    Key("pool", STRING, "A pool of the daemon config that limits parallel runs."),
    Key("priority", INTEGER, "Higher starts first when slots are scarce.", 0),
    _choice_key(
        "catchup",
        [c.value for c in Catchup],
        "Time slots missed while the daemon was down.",
        Catchup.LATEST,
    ),
    Key("start_deadline", DURATION, "Slots older than this are dropped, not run."),
    Key("condition", STRING, "An expression, ${{ expr }} or bare; false: the run is skipped."),
    Key("params", PARAM_TABLE, "Parameters with defaults, set per run with jobctl run -p.", {}),
    Key("matrix", MATRIX, "One run per combination, expanded as GitHub Actions does."),
    Key("include", TABLES, "Matrix combinations to add or extend.", []),
    Key("exclude", TABLES, "Matrix combinations to remove.", []),
    Key("max_parallel", INTEGER, "At most this many runs of the matrix at once.", minimum=1),
    Key("fail_fast", BOOLEAN, "Cancel the matrix's other runs when one fails.", True),
    Key("enabled", BOOLEAN, "A disabled job is loaded but never triggered.", True),
    # people and alerting
    Key("description", STRING, "What the job is for, shown by jobctl list --wide and show."),
    Key(
        "on_failure",
        ID_LIST,
        "Hook jobs run when a run fails (failed, timed_out, "
        "upstream_failed) or the job goes stale, with JOBD_FAILED_* in their environment.",
        [],
    ),
    Key("on_success", ID_LIST, "Hook jobs run when a run succeeds, with JOBD_SUCCEEDED_*.", []),
    Key(
        "on_retry",
        ID_LIST,
        "Hook jobs run when a failed attempt is retried, with JOBD_RETRIED_*.",
        [],
    ),
    Key(
        "stale_after",
        DURATION,
        "The job is stale when it has not succeeded for this long; it then fires on_failure once.",
    ),
)
HOOK_KEYS: Final = ("on_failure", "on_success", "on_retry")

STAGE_KEYS: Final[tuple[Key, ...]] = (
    Key("name", STRING, "The stage's name, unique in the job; default: stage-<n> (1-based)."),
    *_STEP_KEYS,
    Key("condition", STRING, "An expression; false: the stage is skipped."),
    Key("timeout", DURATION, "Time limit of the stage."),
    *_RETRY_KEYS,
    Key("env", ENV_TABLE, "Environment added for this stage.", {}),
    Key("continue_on_error", BOOLEAN, "A failure of this stage does not end the run.", False),
)

SCHEDULED_KEYS: Final[tuple[Key, ...]] = (
    _choice_key("every", CADENCES, "How often the job runs (scheduled-jobs spec).", None),
    Key("entrypoint", ENTRYPOINT_STRING, '"module:function", resolved from the project directory.'),
)

WHAT_RUNS: Final = ("command", "entrypoint", "script", "stages")
"""Exactly one of these says what a job runs (``image`` goes with ``command``)."""
STAGE_RUNS: Final = ("command", "entrypoint", "script")

REQUIRES: Final[Mapping[str, tuple[str, ...]]] = {
    "args": ("script",),
    "python": ("entrypoint", "script"),
    "image": ("command",),
    "debounce": ("watch",),
    "trigger_rule": ("needs",),
    "include": ("matrix",),
    "exclude": ("matrix",),
    "max_parallel": ("matrix",),
    "fail_fast": ("matrix",),
}
"""A key that means something only beside one of the listed keys."""

DAEMON_KEYS: Final[tuple[Key, ...]] = (
    Key("jobs_dir", STRING, "Directory of job files.", "jobs.d"),
    Key("state_dir", STRING, "Holds the journal (jobd.db) and run logs.", "/var/lib/jobd"),
    Key("socket", STRING, "The control socket.", "/run/jobd/jobd.sock"),
    Key("max_parallel", INTEGER, "Run slots for the whole daemon.", 8, minimum=1),
    Key("shutdown_grace", DURATION, "On SIGTERM, how long running jobs get.", "30s"),
    Key("timezone", STRING, "Default zone for cron and cadences; default: the machine's."),
    Key("socket_group", STRING, "Group whose members may change things through the socket."),
    Key(
        "socket_mode",
        Kind(
            'a file mode string such as "0660"',
            lambda v: isinstance(v, str) or _is_int(v),
            {"type": ["string", "integer"]},
        ),
        "Mode of the socket.",
        "0660",
    ),
    Key(
        "log_max_bytes",
        Kind(
            'an integer or a size such as "10MiB"',
            lambda v: isinstance(v, str) or _is_int(v),
            {"type": ["string", "integer"]},
        ),
        "Size cap of each run's log.",
        "10MiB",
    ),
    Key("retention_runs", INTEGER, "Finished runs kept per job.", 1000, minimum=1),
    Key("retention_days", DURATION, "Finished runs older than this are pruned.", "30d"),
    Key(
        "docker_host",
        STRING,
        "Docker Engine API for container jobs; default: $DOCKER_HOST, "
        "else unix:///var/run/docker.sock.",
    ),
    Key("docker_network", STRING, "Network for container jobs; default: the engine's."),
)
CELERY_KEYS: Final[tuple[Key, ...]] = (
    Key(
        "broker",
        STRING,
        "Redis URL of the broker: redis://HOST:PORT/DB, rediss://... (TLS) "
        "or unix:///PATH/redis.sock[?db=N]; credentials go in username and password_file.",
    ),
    Key(
        "signing_key_file",
        STRING,
        "File holding the HMAC key of every payload; workers "
        "refuse payloads not signed with it. Not readable by others.",
    ),
    Key("username", STRING, "Redis ACL user."),
    Key("password_file", STRING, "File holding the Redis password. Not readable by others."),
    Key("ca_file", STRING, "rediss://: CA certificates that sign the server's certificate."),
    Key("max_parallel", INTEGER, "Remote runs at once.", 8, minimum=1),
    Key(
        "lease",
        DURATION,
        "A worker's lease on a run: not renewed for this long, the run is fenced and re-run.",
        "30s",
    ),
    Key(
        "claim_timeout", DURATION, "A run no worker took this long after it was sent fails.", "10m"
    ),
    Key("max_lost", INTEGER, "Lost workers a run survives, each a recovery.", 3, minimum=0),
)
HTTP_KEYS: Final[tuple[Key, ...]] = (
    Key("listen", STRING, 'The dashboard\'s address: "127.0.0.1:8750" or a unix socket path.'),
    Key(
        "token_file",
        STRING,
        "File holding the token every request must carry; required when listen is beyond loopback.",
    ),
)
POOL_KEYS: Final[tuple[Key, ...]] = (
    Key("max_parallel", INTEGER, "Runs of this pool's jobs at once.", minimum=1),
)


def is_job_ref(name: str) -> bool:
    """A name that can be a job's id: a ``[jobs.<id>]`` id or a ``project:job`` one."""
    if JOB_ID.fullmatch(name):
        return True
    project, colon, job = name.partition(":")
    return bool(colon and project and SCHEDULED_KEY.fullmatch(job) and len(name) <= MAX_ID_CHARS)
