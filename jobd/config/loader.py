"""Reading the daemon config and the job files into the frozen model of ``jobd.config.model``.

Everything a user writes is validated here, once, at the edge. Every mistake becomes a
``Problem`` naming the file, the line, the job and the key; a file with any problem is
rejected whole (``ConfigError`` carries all of its problems). Nothing a file contains -- bad
TOML, binary data, a huge file, deep nesting, a directory named ``x.toml`` -- may escape as
anything but a ``Problem``.

The key tables (``JOB_KEYS``, ``STAGE_KEYS``, ``SCHEDULED_KEYS``, ``DAEMON_KEYS``, ``POOL_KEYS``,
``WHAT_RUNS``, ``REQUIRES``) drive both the validation below and the JSON Schema built by
``jobd.config.schema``, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from jobd._enums import Catchup, ExecutorKind, Overlap, TriggerRule
from jobd._exceptions import ConfigError, ExpressionError, Problem, source_path
from jobd.config.celery import parse_celery
from jobd.config.http import missing_web_modules, parse_listen, token_problem
from jobd.config.locate import KeyPath, Locations, locate
from jobd.config.model import (
    DEFAULT_QUEUE,
    Action,
    CommandAction,
    ContainerAction,
    DaemonConfig,
    EntrypointAction,
    HttpConfig,
    JobDef,
    JobSet,
    JobSource,
    MatrixSpec,
    PoolConfig,
    RetryPolicy,
    ScriptAction,
    Stage,
    StagesAction,
    StepAction,
    WatchSpec,
)
from jobd.durations import parse_duration
from jobd.expressions import parse_condition, parse_template
from jobd.expressions.shell import shell_command
from jobd.flows.graph import find_cycle
from jobd.matrix import expand
from jobd.triggers.abc import TimeTrigger
from jobd.triggers.cadence import CadenceTrigger
from jobd.triggers.cron import CronTrigger
from jobd.triggers.manifest import anchor
from jobd.triggers.timezones import machine_timezone, resolve_timezone

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


def _is_scalar(v: object) -> bool:
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
    "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
_SCALAR_TABLE: Final[Mapping[str, Any]] = {
    "type": "object",
    "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
}

STRING = Kind("a string", lambda v: isinstance(v, str), _STR_SCHEMA)
INTEGER = Kind("an integer", _is_int, {"type": "integer"})
NUMBER = Kind("a number", _is_number, {"type": "number"})
BOOLEAN = Kind("a boolean (true or false)", lambda v: isinstance(v, bool), {"type": "boolean"})
DURATION = Kind('a duration string such as "30s"', lambda v: isinstance(v, str),
                {"type": "string", "pattern": DURATION_PATTERN})
STRINGS = Kind("a string or a list of strings",
               lambda v: isinstance(v, str) or _is_str_list(v),
               {"oneOf": [_STR_SCHEMA, _STR_LIST_SCHEMA]}, min_items=1)
STRING_LIST = Kind("a list of strings", _is_str_list,
                   {"type": "array", "items": {"type": "string"}})
ID_LIST = Kind("a list of job ids", _is_str_list,
               {"type": "array", "uniqueItems": True,
                "items": {"type": "string", "pattern":
                          f"^({JOB_ID.pattern}|[^:\\x00-\\x1f\\x7f]+:[^\\x00-\\x1f\\x7f]+)$"}})
COMMAND = Kind("a string (run by /bin/sh -c) or a list of strings (exec'd)",
               lambda v: isinstance(v, str) or _is_str_list(v),
               {"oneOf": [_STR_SCHEMA, {"type": "array", "minItems": 1,
                                        "items": {"type": "string"},
                                        "prefixItems": [{"type": "string", "minLength": 1}]}]},
               min_items=1)
ENV_TABLE = Kind("a table of strings", lambda v: isinstance(v, dict),
                 {**_SCALAR_TABLE, "propertyNames": {"pattern": f"^{ENV_NAME.pattern}$",
                                                     "not": {"pattern": "^JOBD_"}}})
PARAM_TABLE = Kind("a table of strings", lambda v: isinstance(v, dict),
                   {**_SCALAR_TABLE, "propertyNames": {"pattern": f"^{PARAM_NAME.pattern}$"}})
def _is_table_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, dict) for x in v)


TABLES = Kind("a list of tables", _is_table_list, {"type": "array", "items": {"type": "object"}})
STAGE_LIST = Kind("a list of tables", _is_table_list,
                  {"type": "array", "minItems": 1, "items": {"type": "object"}}, min_items=1)
MATRIX = Kind("a table of lists", lambda v: isinstance(v, dict), {
    "type": "object",
    "properties": {"include": TABLES.schema, "exclude": TABLES.schema},
    "propertyNames": {"pattern": f"^{PARAM_NAME.pattern}$"},
    "additionalProperties": {"type": "array", "minItems": 1},
})


EVERY = Kind('a string: a cadence ("hour") or a duration ("30s")', lambda v: isinstance(v, str),
             _STR_SCHEMA)
ENTRYPOINT_STRING = Kind('a string "module:function"', lambda v: isinstance(v, str),
                        {"type": "string", "pattern": f"^{ENTRYPOINT.pattern}$"})


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
            s["minimum"] = int(self.minimum) if self.minimum == int(self.minimum) \
                else self.minimum
        if self.choices:
            s["enum"] = list(self.choices)
        return s


def _choice_key(name: str, values: Sequence[str], doc: str, default: str | None) -> Key:
    return Key(name, _enum(values), doc, _NO_DEFAULT if default is None else default,
               choices=tuple(values))


_STEP_KEYS: Final = (
    Key("command", COMMAND, "What runs: a list is exec'd without a shell, a string runs with "
        "/bin/sh -c. May hold ${{ }} expressions."),
    Key("entrypoint", ENTRYPOINT_STRING, 'What runs: "package.module:function", imported and '
        "called in a fresh Python process; coroutine functions are awaited."),
    Key("script", STRING, "What runs: a Python script, relative to the job file's directory."),
    Key("args", STRING_LIST, "Arguments of script. May hold ${{ }} expressions.", []),
    Key("python", STRING, "The Python interpreter for entrypoint and script; default: the "
        "daemon's own."),
)
_RETRY_KEYS: Final = (
    Key("retries", INTEGER, "Attempts after the first one fails.", 0, minimum=0),
    Key("retry_delay", DURATION, "Delay before the first retry.", "1s"),
    Key("retry_backoff", NUMBER, "Each further retry waits this many times longer.", 2.0,
        minimum=1),
    Key("retry_max_delay", DURATION, "The longest delay between retries.", "10m"),
)

JOB_KEYS: Final[tuple[Key, ...]] = (
    # triggers
    Key("cron", STRINGS, "5-field cron (6 with seconds first) or @hourly, @daily, @weekly, "
        "@monthly, @yearly; one expression or a list."),
    Key("every", EVERY, 'Cadence "minute", "hour", "day", "week", "month", or a duration such '
        'as "30s"; the run falls at a fixed offset inside each period.'),
    Key("timezone", STRING, "IANA zone for cron and calendar cadences; default: the daemon's."),
    Key("watch", STRINGS, "Paths or globs; a change starts a run with the changed paths."),
    Key("debounce", DURATION, "Longest a burst of changes is coalesced into one run.",
        "100ms"),
    Key("needs", ID_LIST, "Upstream jobs: this job runs after them in their flow.", []),
    _choice_key("trigger_rule", [r.value for r in TriggerRule],
                "When this job runs, judged on its needs' results.", TriggerRule.ALL_SUCCESS),
    # what runs
    *_STEP_KEYS,
    Key("stages", STAGE_LIST, "Steps run in order, each with command, entrypoint or script."),
    Key("image", STRING, "Container image: command runs in it through the Docker Engine API."),
    _choice_key("executor", [e.value for e in ExecutorKind], "Where it runs: local, docker "
                "(with image) or celery (on a worker; the daemon config needs [celery]); "
                "default: docker with image, else local.", None),
    Key("queue", STRING, "The Celery queue of an executor = \"celery\" job.", "jobd.default"),
    # how it runs
    Key("workdir", STRING, "Working directory; default: the job file's directory."),
    Key("env", ENV_TABLE, "Environment variables. Values may hold ${{ }} expressions.", {}),
    Key("env_file", STRING, "A file of KEY=value lines added to the environment."),
    Key("user", STRING, "Run as this user (the daemon must run as root)."),
    Key("timeout", DURATION, "Then SIGTERM to the run's process group, SIGKILL after "
        "kill_grace."),
    Key("kill_grace", DURATION, "Time between SIGTERM and SIGKILL.", "10s"),
    *_RETRY_KEYS,
    _choice_key("overlap", [o.value for o in Overlap],
                "What a trigger does while the job runs.", Overlap.QUEUE),
    Key("pool", STRING, "A pool of the daemon config that limits parallel runs."),
    Key("priority", INTEGER, "Higher starts first when slots are scarce.", 0),
    _choice_key("catchup", [c.value for c in Catchup],
                "Time slots missed while the daemon was down.", Catchup.LATEST),
    Key("start_deadline", DURATION, "Slots older than this are dropped, not run."),
    Key("condition", STRING, "An expression, ${{ expr }} or bare; false: the run is skipped."),
    Key("params", PARAM_TABLE, "Parameters with defaults, set per run with jobctl run -p.", {}),
    Key("matrix", MATRIX, "One run per combination, expanded as GitHub Actions does."),
    Key("include", TABLES, "Matrix combinations to add or extend.", []),
    Key("exclude", TABLES, "Matrix combinations to remove.", []),
    Key("max_parallel", INTEGER, "At most this many runs of the matrix at once.", minimum=1),
    Key("fail_fast", BOOLEAN, "Cancel the matrix's other runs when one fails.", True),
    Key("enabled", BOOLEAN, "A disabled job is loaded but never triggered.", True),
)

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
    Key("socket_mode", Kind('a file mode string such as "0660"',
                            lambda v: isinstance(v, str) or _is_int(v),
                            {"type": ["string", "integer"]}), "Mode of the socket.", "0660"),
    Key("log_max_bytes", Kind('an integer or a size such as "10MiB"',
                              lambda v: isinstance(v, str) or _is_int(v),
                              {"type": ["string", "integer"]}),
        "Size cap of each run's log.", "10MiB"),
    Key("retention_runs", INTEGER, "Finished runs kept per job.", 1000, minimum=1),
    Key("retention_days", DURATION, "Finished runs older than this are pruned.", "30d"),
    Key("docker_host", STRING, "Docker Engine API for container jobs; default: $DOCKER_HOST, "
        "else unix:///var/run/docker.sock."),
    Key("docker_network", STRING, "Network for container jobs; default: the engine's."),
)
CELERY_KEYS: Final[tuple[Key, ...]] = (
    Key("broker", STRING, "Redis URL of the broker: redis://HOST:PORT/DB, rediss://... (TLS) "
        "or unix:///PATH/redis.sock[?db=N]; credentials go in username and password_file."),
    Key("signing_key_file", STRING, "File holding the HMAC key of every payload; workers "
        "refuse payloads not signed with it. Not readable by others."),
    Key("username", STRING, "Redis ACL user."),
    Key("password_file", STRING, "File holding the Redis password. Not readable by others."),
    Key("ca_file", STRING, "rediss://: CA certificates that sign the server's certificate."),
    Key("max_parallel", INTEGER, "Remote runs at once.", 8, minimum=1),
    Key("lease", DURATION, "A worker's lease on a run: not renewed for this long, the run is "
        "fenced and re-run.", "30s"),
    Key("claim_timeout", DURATION, "A run no worker took this long after it was sent fails.",
        "10m"),
    Key("max_lost", INTEGER, "Lost workers a run survives, each a recovery.", 3, minimum=0),
)
HTTP_KEYS: Final[tuple[Key, ...]] = (
    Key("listen", STRING, 'The dashboard\'s address: "127.0.0.1:8750" or a unix socket path.'),
    Key("token_file", STRING, "File holding the token every request must carry; required "
        "when listen is beyond loopback."),
)
POOL_KEYS: Final[tuple[Key, ...]] = (
    Key("max_parallel", INTEGER, "Runs of this pool's jobs at once.", minimum=1),
)


# --- messages ----------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` with control characters escaped and cut to ``limit`` characters."""
    out = _CONTROL.sub(lambda m: {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(
        m.group(), f"\\x{ord(m.group()):02x}"), text)
    return out if len(out) <= limit else out[:limit - 3] + "..."


def show(value: object, limit: int = 60) -> str:
    """A user's value quoted for a message: ``'abc'``."""
    return f"'{one_line(str(value), limit)}'"


def describe(value: object) -> str:
    """``value``'s TOML type, with the value when short: ``an integer (3)``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({one_line(str(value), 30)})"
    if isinstance(value, float):
        return f"a float ({value})"
    if isinstance(value, str):
        return f"a string ({show(value, 40)})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a date/time ({value})"


def hint(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def display_path(path: Path) -> str:
    """How a file is named in messages (relative to the working directory below it)."""
    try:
        cwd = Path.cwd()
    except OSError:
        return str(path)
    if cwd == Path(cwd.anchor):
        return str(path)  # relative to "/" would read like a relative path
    return source_path(path)


def resolved(path: Path) -> Path:
    """``path`` with symlinks resolved, as far as they can be."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


def _joined(words: Sequence[str], last: str = "or") -> str:
    quoted = [f"{w}" for w in words]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"


class _Report:
    """Collects the problems of one file, with its locations."""

    def __init__(self, path: Path) -> None:
        self.file = one_line(display_path(path))
        self.locs = Locations({})
        self.problems: list[Problem] = []

    def add(self, message: str, *, at: KeyPath = (), line: int | None = None,
            job: str | None = None, key: str | None = None) -> None:
        if line is None and at:
            line = self.locs.nearest(at)
        self.problems.append(Problem(
            file=self.file, message=one_line(message), line=line,
            job=None if job is None else one_line(job, 80),
            key=None if key is None else one_line(key, 80)))


# --- reading TOML safely -------------------------------------------------------------------


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _read_toml(path: Path, report: _Report, what: str) -> dict[str, Any] | None:
    """The TOML document at ``path``, or None with the reason added to ``report``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        report.add(f"is a directory, not a {what}")
        return None
    except OSError as e:
        report.add(f"cannot read: {e.strerror or e}")
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            report.add(f"is a directory, not a {what}")
            return None
        if not stat.S_ISREG(st.st_mode):
            report.add(f"is not a regular file; a {what} must be one")
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as e:
        report.add(f"cannot read: {e.strerror or e}")
        return None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        report.add(f"is larger than 1 MiB, the limit for a {what}; not read")
        return None
    nul = data.find(b"\x00")
    if nul >= 0:
        report.add(f"looks binary (holds a NUL byte), not a TOML {what}",
                   line=data.count(b"\n", 0, nul) + 1)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        report.add(f"is not valid UTF-8 (byte 0x{data[e.start]:02x}: {e.reason})",
                   line=data.count(b"\n", 0, e.start) + 1)
        return None
    text = text.removeprefix("\ufeff")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message, line = str(e), None
        m = _TOML_POSITION.search(message)
        if m:
            line = int(m.group(1))
            message = f"{message[:m.start()]} (column {m.group(2)})"
        elif (m := _TOML_END.search(message)) is not None:
            line = text.rstrip().count("\n") + 1
            message = f"{message[:m.start()]} (at the end of the file)"
        report.add(f"invalid TOML: {message}", line=line)
        return None
    except RecursionError:
        report.add(f"invalid TOML: arrays or tables nested more than {MAX_DEPTH} deep")
        return None
    except ValueError as e:  # e.g. an integer with too many digits
        report.add(f"invalid TOML: {e}")
        return None
    if _depth(doc) > MAX_DEPTH:
        report.add(f"arrays or tables nested more than {MAX_DEPTH} deep")
        return None
    report.locs = locate(text)
    return doc


def _depth(doc: object) -> int:
    """How deeply tables and arrays nest in ``doc`` (iterative: the input may be hostile)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return deepest


# --- validating one table against a key table ----------------------------------------------


class _Table:
    """One table being validated: its values by key, problems reported with its location."""

    def __init__(self, report: _Report, at: KeyPath, job: str | None, keys: Sequence[Key],
                 raw: Mapping[str, Any], prefix: str = "") -> None:
        self.report = report
        self.at = at
        self.job = job
        self.prefix = prefix  # "stages[0]." inside a stage, "daemon." in the daemon config
        self.raw = raw
        self.count = len(report.problems)
        self.values: dict[str, Any] = {}
        self.known = known = {k.name: k for k in keys}
        for name, value in raw.items():
            key = known.get(name)
            if key is None:
                self.problem(name, "unknown key" + hint(name, known))
            elif not key.kind.accepts(value):
                self.problem(name, f"expected {key.kind.expected}, got {describe(value)}")
            elif value == "" or (isinstance(value, list) and len(value) < key.kind.min_items):
                self.problem(name, "must not be empty")
            elif isinstance(value, list) and key.kind is STRINGS and "" in value:
                self.problem(name, "must not hold an empty string", value.index(""))
            elif "\x00" in value if isinstance(value, str) else (
                    isinstance(value, list) and any(isinstance(v, str) and "\x00" in v
                                                    for v in value)):
                self.problem(name, "must not hold a NUL character")
            elif key.minimum is not None and value < key.minimum:
                self.problem(name, f"must be at least {key.minimum:g}, got {value}")
            elif key.choices and value not in key.choices:
                self.problem(name, f"{show(value)} is not one of "
                             f"{_joined(key.choices)}{hint(value, key.choices)}")
            else:
                self.values[name] = value

    @property
    def ok(self) -> bool:
        """No problem was found in this table (so far)."""
        return len(self.report.problems) == self.count

    def problem(self, key: str | None, message: str, *sub: str | int) -> None:
        """Report ``message`` about ``key`` (None: the table itself) at ``key[sub...]``."""
        at = self.at if key is None else (*self.at, key, *sub)
        name = self.prefix.rstrip(".") or None if key is None else f"{self.prefix}{key}"
        self.report.add(message, at=at, job=self.job, key=name)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def duration(self, name: str, *, positive: bool = False) -> float | None:
        """The duration at ``name`` in seconds, None when absent or bad."""
        text = self.values.get(name)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            self.problem(name, str(e))
            return None
        if not math.isfinite(seconds) or seconds > MAX_DURATION:
            self.problem(name, f"{show(text)} is too long")
            return None
        if positive and seconds <= 0:
            self.problem(name, "must be longer than 0s")
            return None
        return seconds

    def template(self, name: str, text: str, *sub: str | int, shell: bool = False) -> None:
        """Check that ``text`` is a valid template (``${{ }}`` expressions); with ``shell``,
        also that each expression can reach the shell as a variable."""
        try:
            parsed = parse_template(text)
            if shell:
                shell_command(parsed)
        except ExpressionError as e:
            self.problem(name, str(e), *sub)

    def requires(self) -> None:
        for name, alternatives in REQUIRES.items():
            if name in self.known and name in self.raw \
                    and not any(a in self.raw for a in alternatives):
                self.problem(name, f"only applies with {_joined(alternatives)}")


# --- the daemon config ---------------------------------------------------------------------


def default_config_path() -> Path:
    """``$JOBD_CONFIG``, else ``/etc/jobd/jobd.toml``."""
    env = os.environ.get("JOBD_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def _size(value: int | str) -> int:
    """Bytes in ``value``: an integer or a string like ``"10MiB"``; raise ValueError."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(SIZE_PATTERN, value)
    if m is None:
        raise ValueError(f"{show(value)} is not a size; write bytes as an integer or a "
                         'number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "10MiB"')
    units = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20,
             "GiB": 2**30}
    return int(m.group(1)) * units[m.group(2)]


def _mode(value: int | str) -> int:
    """A socket mode: ``"0660"``, ``"660"``, ``"0o660"`` or the integer ``0o660``."""
    if isinstance(value, str):
        m = re.fullmatch(r"(?:0o|0)?([0-7]{3})", value.strip())
        if m is None:
            raise ValueError(f'{show(value)} is not a file mode; write octal digits, e.g. "0660"')
        return int(m.group(1), 8)
    if not 0 <= value <= 0o777:
        raise ValueError(f'{value} is not a file mode; write a string of octal digits, '
                         'e.g. "0660" (or the TOML integer 0o660)')
    return value


def _under(base: Path, text: str) -> Path:
    """``text`` as a path, relative ones resolved against ``base``, normalised."""
    if text.startswith("~"):
        text = os.path.expanduser(text)
    return Path(os.path.normpath(os.path.join(base, text)))


def load_config(path: Path) -> DaemonConfig:
    """Read and validate the daemon config at ``path``; raise ``ConfigError`` with every
    problem. Relative paths resolve against the config file's directory (symlinks resolved)."""
    report = _Report(path)
    doc = _read_toml(path, report, "config file")
    if doc is None:
        raise ConfigError(report.problems)
    base = resolved(path).parent
    for name, value in doc.items():
        if name not in ("daemon", "pools", "celery", "http"):
            report.add("unknown table" + hint(name, ("daemon", "pools", "celery", "http")),
                       at=(name,),
                       key=name)
        elif not isinstance(value, dict):
            report.add(f"expected a table, got {describe(value)}", at=(name,), key=name)
    section = doc.get("daemon", {})
    t = _Table(report, ("daemon",), None, DAEMON_KEYS,
               section if isinstance(section, dict) else {}, prefix="daemon.")

    timezone = t.get("timezone")
    if timezone is None:
        timezone = machine_timezone()
    else:
        try:
            resolve_timezone(timezone)
        except ValueError as e:
            t.problem("timezone", str(e))
    kwargs: dict[str, Any] = {}
    for name, convert in (("socket_mode", _mode), ("log_max_bytes", _size)):
        if name in t.values:
            try:
                kwargs[name] = convert(t.values[name])
            except ValueError as e:
                t.problem(name, str(e))
    if kwargs.get("log_max_bytes", 1) < 1:
        t.problem("log_max_bytes", "must be at least 1 byte")
    grace = t.duration("shutdown_grace")
    days = t.duration("retention_days", positive=True)

    pools: dict[str, PoolConfig] = {}
    raw_pools = doc.get("pools", {})
    for name, value in (raw_pools.items() if isinstance(raw_pools, dict) else ()):
        where = ("pools", name)
        if not JOB_ID.fullmatch(name):
            report.add(f"{show(name)} is not a valid pool name (letters, digits, '_', '.', "
                       "'-'; at most 64)", at=where, key=f"pools.{name}")
            continue
        if not isinstance(value, dict):
            report.add(f"expected a table, got {describe(value)}", at=where, key=f"pools.{name}")
            continue
        p = _Table(report, where, None, POOL_KEYS, value, prefix=f"pools.{name}.")
        if "max_parallel" not in value:
            p.problem(None, "missing key max_parallel")
        elif p.ok:
            pools[name] = PoolConfig(name=name, max_parallel=p.values["max_parallel"])

    celery = None
    if isinstance(doc.get("celery"), dict):
        c = _Table(report, ("celery",), None, CELERY_KEYS, doc["celery"], prefix="celery.")
        celery = parse_celery(c.values, duration=lambda k: c.duration(k, positive=True),
                              path_of=lambda text: _under(base, text),
                              problem=lambda k, m: c.problem(k, m))
    raw_http = doc.get("http")
    http = _http(report, raw_http, base) if isinstance(raw_http, dict) else None

    if report.problems:
        raise ConfigError(sorted(report.problems, key=lambda p: p.line or 0))
    return DaemonConfig(
        path=path.absolute(),
        jobs_dir=_under(base, t.get("jobs_dir", "jobs.d")),
        state_dir=_under(base, t.get("state_dir", "/var/lib/jobd")),
        socket=_under(base, t.get("socket", "/run/jobd/jobd.sock")),
        max_parallel=t.get("max_parallel", 8),
        shutdown_grace=30.0 if grace is None else grace,
        timezone=timezone,
        pools=pools,
        socket_group=t.get("socket_group"),
        retention_runs=t.get("retention_runs", 1000),
        retention_days=30.0 if days is None else days / 86400.0,
        docker_host=t.get("docker_host"),
        docker_network=t.get("docker_network"),
        celery=celery,
        http=http,
        **kwargs,
    )


def _http(report: _Report, raw: Mapping[str, Any], base: Path) -> HttpConfig | None:
    """``[http]`` (docs/dashboard.md): an address, and a token beyond loopback."""
    t = _Table(report, ("http",), None, HTTP_KEYS, raw, prefix="http.")
    if "listen" not in raw:
        t.problem(None, 'missing key listen (e.g. listen = "127.0.0.1:8750")')
        return None
    if not t.ok:
        return None
    try:
        host, port, sock, loopback = parse_listen(t.values["listen"])
    except ValueError as e:
        t.problem("listen", str(e))
        return None
    if missing := missing_web_modules():
        t.problem(None, f"the dashboard needs jobd's web extra ({', '.join(missing)} not "
                  "installed): pip install 'jobd[web]', or remove [http]")
    token_file = _under(base, t.values["token_file"]) if "token_file" in t.values else None
    if token_file is None and not loopback:
        t.problem("listen", f"{show(t.values['listen'])} is reachable from other machines: "
                  "set http.token_file to a file holding a token (docs/dashboard.md), or "
                  'listen on loopback ("127.0.0.1:8750")')
    elif token_file is not None and (problem := token_problem(token_file)) is not None:
        t.problem("token_file", problem)
    return HttpConfig(listen=t.values["listen"], host=host, port=port,
                      path=_under(base, sock) if sock is not None else None,
                      token_file=token_file, loopback=loopback) if t.ok else None


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


def is_job_ref(name: str) -> bool:
    """A name that can be a job's id: a ``[jobs.<id>]`` id or a ``project:job`` one."""
    if JOB_ID.fullmatch(name):
        return True
    project, colon, job = name.partition(":")
    return bool(colon and project and SCHEDULED_KEY.fullmatch(job)
                and len(name) <= MAX_ID_CHARS)


def _is_pyproject(path: Path, doc: Mapping[str, Any]) -> bool:
    return (path.name == "pyproject.toml" or resolved(path).name == "pyproject.toml"
            or any(k in doc for k in ("tool", "project", "build-system")))


def parse_job_file(path: Path, config: DaemonConfig) -> FileResult:
    """Read and validate one job file, alone: no checks across files."""
    report = _Report(path)
    doc = _read_toml(path, report, "job file")
    if doc is None:
        return FileResult(path=path, problems=tuple(report.problems))
    base = resolved(path).parent
    pyproject = _is_pyproject(path, doc)
    jobs: list[JobDef] = []
    tables: dict[str, KeyPath] = {}

    if not pyproject:
        for name in doc:
            if name != "jobs":
                report.add("unknown key" + hint(name, ("jobs",)) +
                           " (a job file holds [jobs.<id>] tables)", at=(name,), key=name)

    def each(at: KeyPath, build: Callable[[str, _Table, int | None], JobDef | None],
             keys: Sequence[Key], namespace: str | None = None) -> None:
        container: Any = doc
        for part in at:
            container = container.get(part) if isinstance(container, dict) else None
        if container is None:
            return
        if not isinstance(container, dict):
            report.add(f"expected a table of jobs, got {describe(container)}", at=at,
                       key=".".join(map(str, at)))
            return
        for key, table in container.items():
            where = (*at, key)
            line = report.locs.nearest(where)
            if namespace is None and not JOB_ID.fullmatch(key):
                report.add(f"{show(key)} is not a valid job id: it must match "
                           f"{JOB_ID.pattern}", at=where)
                continue
            job_id = key if namespace is None else f"{namespace}:{key}"
            if namespace is not None and not SCHEDULED_KEY.fullmatch(key):
                report.add(f"{show(key)} is not a valid job id: it holds a control character"
                           if key else "an empty job id", at=where)
                continue
            if len(job_id) > MAX_ID_CHARS:
                report.add(f"job id {show(job_id)} is longer than {MAX_ID_CHARS} characters",
                           at=where)
                continue
            if not isinstance(table, dict):
                report.add(f"expected a table ([{'.'.join(map(str, where))}]), got "
                           f"{describe(table)}", at=where, job=job_id)
                continue
            if job_id in tables:
                first = report.locs.nearest(tables[job_id])
                report.add(f"job id defined twice in this file (also at line {first})",
                           at=where, job=job_id)
                continue
            tables[job_id] = where
            t = _Table(report, where, job_id, keys, table)
            job = build(job_id, t, line)
            if job is not None and t.ok:
                jobs.append(job)

    def build_jobs(job_id: str, t: _Table, line: int | None) -> JobDef | None:
        return _build_job(job_id, t, JobSource(file=path, line=line, form="jobs"), base, config)

    def build_scheduled(job_id: str, t: _Table, line: int | None) -> JobDef | None:
        return _build_scheduled(job_id, t, JobSource(file=path, line=line, form="tool.scheduled"),
                                base, config)

    each(("jobs",), build_jobs, JOB_KEYS)
    tool = doc.get("tool")
    if pyproject and isinstance(tool, dict):
        each(("tool", "scheduled"), build_scheduled, SCHEDULED_KEYS,
             namespace=project_namespace(path, doc))
    if not tables and not report.problems and path.name != "pyproject.toml" \
            and resolved(path).name != "pyproject.toml":
        report.add("no [jobs.<id>] or [tool.scheduled.<id>] tables: this file defines no jobs")
    if report.problems:
        problems = sorted(report.problems, key=lambda p: p.line or 0)
        return FileResult(path=path, problems=tuple(problems), locations=report.locs,
                          tables=tables)
    return FileResult(path=path, jobs=tuple(jobs), locations=report.locs, tables=tables)


def load_job_file(path: Path, config: DaemonConfig) -> list[JobDef]:
    """The jobs of one job file (no checks across files); raise ``ConfigError``."""
    result = parse_job_file(path, config)
    if result.problems:
        raise ConfigError(list(result.problems))
    return list(result.jobs)


# --- building one job ----------------------------------------------------------------------


def _scalar_table(t: _Table, name: str, pattern: re.Pattern[str], what: str,
                  template: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in t.get(name, {}).items():
        if not pattern.fullmatch(k):
            t.problem(name, f"{show(k)} is not a valid {what} name (it must match "
                      f"{pattern.pattern})", k)
        elif name == "env" and k.startswith("JOBD_"):
            t.problem(name, f"{k}: JOBD_* variables are set by jobd", k)
        elif not _is_scalar(v):
            t.problem(name, f"{k}: expected a string, got {describe(v)}", k)
        elif isinstance(v, str) and "\x00" in v:
            t.problem(name, f"{k}: must not hold a NUL character", k)
        else:
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if template:
                t.template(name, text, k)
            out[k] = text
    return out


def _condition(t: _Table) -> str | None:
    text: str | None = t.get("condition")
    if text is None:
        return None
    try:
        parse_condition(text)
    except ExpressionError as e:
        t.problem("condition", str(e))
        return None
    m = re.fullmatch(r"\s*\$\{\{(.*)\}\}\s*", text, re.DOTALL)
    if m and "${{" not in m.group(1) and "}}" not in m.group(1):
        return m.group(1).strip()
    return text.strip()


def _retry(t: _Table) -> RetryPolicy:
    delay = t.duration("retry_delay")
    max_delay = t.duration("retry_max_delay")
    return RetryPolicy(retries=t.get("retries", 0), delay=1.0 if delay is None else delay,
                       backoff=float(t.get("retry_backoff", 2.0)),
                       max_delay=600.0 if max_delay is None else max_delay)


def _python(t: _Table, base: Path) -> str | None:
    text: str | None = t.get("python")
    if text is None or "/" not in text:
        return text  # a bare name is looked up on PATH
    return str(_under(base, text))


def _step(t: _Table, runs: str, base: Path) -> StepAction | None:
    """The action of ``runs`` (command, entrypoint or script) in ``t``."""
    if runs not in t.values:
        return None
    if runs == "command":
        command = t.values["command"]
        if isinstance(command, list):
            if not command or not command[0]:
                t.problem("command", "the program (first element) must not be empty")
                return None
            for i, arg in enumerate(command):
                t.template("command", arg, i)
            return CommandAction(command=tuple(command))
        t.template("command", command, shell=True)
        return CommandAction(command=command)
    if runs == "entrypoint":
        entry: str = t.values["entrypoint"]
        if not ENTRYPOINT.fullmatch(entry):
            t.problem("entrypoint", f'{show(entry)} is not an entrypoint; write '
                      '"package.module:function"')
            return None
        return EntrypointAction(entrypoint=entry, python=_python(t, base), path=(base,))
    args: list[str] = t.get("args", [])
    for i, arg in enumerate(args):
        t.template("args", arg, i)
    return ScriptAction(script=_under(base, t.values["script"]), args=tuple(args),
                        python=_python(t, base))


def _what_runs(t: _Table, choices: Sequence[str], where: str) -> str | None:
    present = [k for k in choices if k in t.raw]
    if not present and "image" in t.raw:
        return None  # "image: only applies with command" says it
    if not present:
        also = " (or image with command)" if "stages" in choices else ""
        t.problem(None, f"nothing to run: {where} needs one of {_joined(choices)}{also}")
        return None
    if len(present) > 1:
        t.problem(present[1], f"{present[0]} and {present[1]} both say what runs; keep "
                  f"exactly one of {_joined(choices)}")
        return None
    return present[0]


def _stages(t: _Table, base: Path) -> StagesAction | None:
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(t.values["stages"]):
        s = _Table(t.report, (*t.at, "stages", i), t.job, STAGE_KEYS, raw,
                   prefix=f"stages[{i}].")
        s.requires()
        runs = _what_runs(s, STAGE_RUNS, "a stage")
        action = None if runs is None else _step(s, runs, base)
        name = s.get("name", f"stage-{i + 1}")
        if name in names:
            s.problem("name", f"{show(name)} is also the name of stages[{names[name]}]")
        names.setdefault(name, i)
        condition = _condition(s)
        timeout = s.duration("timeout", positive=True)
        retry = _retry(s)
        env = _scalar_table(s, "env", ENV_NAME, "environment variable", True)
        if action is not None and s.ok:
            stages.append(Stage(name=name, action=action, condition=condition, timeout=timeout,
                                retry=retry, env=env,
                                continue_on_error=s.get("continue_on_error", False)))
    return StagesAction(stages=tuple(stages))


def _time_triggers(t: _Table, job_id: str, timezone: str | None) -> tuple[TimeTrigger, ...]:
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


def _timezone(t: _Table, config: DaemonConfig) -> str | None:
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


def _watch(t: _Table, base: Path) -> WatchSpec | None:
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
        patterns.append(anchor(str(_under(base, pattern))))
    debounce = t.duration("debounce", positive=True)
    return WatchSpec(patterns=tuple(patterns), debounce=0.1 if debounce is None else debounce)


def _needs(t: _Table, job_id: str) -> tuple[str, ...]:
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


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return {k: _freeze(v) for k, v in value.items()}
    return value


def _matrix(t: _Table) -> MatrixSpec | None:
    raw = t.get("matrix")
    if raw is None:
        return None
    before = len(t.report.problems)
    dims: dict[str, tuple[Any, ...]] = {}
    extra: dict[str, list[dict[str, Any]]] = {}
    for name, values in raw.items():
        if name in ("include", "exclude"):
            if not TABLES.accepts(values):
                t.problem("matrix", f"{name}: expected a list of tables, got {describe(values)}",
                          name)
            elif name in t.raw:
                t.problem("matrix", f"{name} is given both in matrix and beside it; keep one",
                          name)
            else:
                extra[name] = values
        elif not PARAM_NAME.fullmatch(name):
            t.problem("matrix", f"{show(name)} is not a valid matrix dimension name (it must "
                      f"match {PARAM_NAME.pattern})", name)
        elif name in ("max_parallel", "fail_fast") and not isinstance(values, list):
            t.problem("matrix", f"{name} is a job key, not a matrix dimension: move it out of "
                      "matrix", name)
        elif not isinstance(values, list):
            t.problem("matrix", f"{name}: expected a list of values, got {describe(values)}",
                      name)
        elif not values:
            t.problem("matrix", f"{name}: a dimension needs at least one value", name)
        else:
            dims[name] = _freeze(values)
    include = extra.get("include", t.get("include", []))
    exclude = extra.get("exclude", t.get("exclude", []))
    if not raw:
        t.problem("matrix", "needs at least one dimension or include")
        return None
    spec = MatrixSpec(dimensions=dims, include=tuple(_freeze(i) for i in include),
                      exclude=tuple(_freeze(e) for e in exclude),
                      max_parallel=t.get("max_parallel"), fail_fast=t.get("fail_fast", True))
    if len(t.report.problems) > before:
        return None
    try:
        expand(spec)
    except ValueError as e:
        t.problem("matrix", str(e).removeprefix("matrix: "))
        return None
    return spec


def _build_job(job_id: str, t: _Table, source: JobSource, base: Path,
               config: DaemonConfig) -> JobDef | None:
    t.requires()
    runs = _what_runs(t, WHAT_RUNS, "a job")
    action: Action | None = None
    if runs == "stages" and "stages" in t.values:
        action = _stages(t, base)
    elif runs is not None:
        action = _step(t, runs, base)
        if "image" in t.values and isinstance(action, CommandAction):
            action = ContainerAction(image=t.values["image"], command=action.command)
    executor = _executor(t, action, config)
    timezone = _timezone(t, config)
    triggers = _time_triggers(t, job_id, timezone)
    watch = _watch(t, base)
    needs = _needs(t, job_id)
    pool: str | None = t.get("pool")
    if pool is not None and pool not in config.pools:
        defined = ", ".join(sorted(config.pools)) or "none"
        t.problem("pool", f"unknown pool {show(pool)} (the daemon config defines: {defined})"
                  + hint(pool, config.pools))
    env = _scalar_table(t, "env", ENV_NAME, "environment variable", True)
    params = _scalar_table(t, "params", PARAM_NAME, "parameter", False)
    condition = _condition(t)
    timeout = t.duration("timeout", positive=True)
    kill_grace = t.duration("kill_grace")
    start_deadline = t.duration("start_deadline", positive=True)
    retry = _retry(t)
    matrix = _matrix(t)
    if action is None or timezone is None or not t.ok:
        return None
    return JobDef(
        id=job_id,
        source=source,
        action=action,
        time_triggers=triggers,
        watch=watch,
        needs=needs,
        trigger_rule=TriggerRule(t.get("trigger_rule", TriggerRule.ALL_SUCCESS)),
        timezone=timezone,
        workdir=_under(base, t.get("workdir", ".")),
        env=env,
        env_file=None if "env_file" not in t.values else _under(base, t.values["env_file"]),
        user=t.get("user"),
        timeout=timeout,
        kill_grace=10.0 if kill_grace is None else kill_grace,
        retry=retry,
        overlap=Overlap(t.get("overlap", Overlap.QUEUE)),
        pool=pool,
        priority=t.get("priority", 0),
        catchup=Catchup(t.get("catchup", Catchup.LATEST)),
        start_deadline=start_deadline,
        condition=condition,
        params=params,
        matrix=matrix,
        enabled=t.get("enabled", True),
        executor=executor,
        queue=t.get("queue", DEFAULT_QUEUE),
    )


def _executor(t: _Table, action: Action | None, config: DaemonConfig) -> ExecutorKind:
    container = isinstance(action, ContainerAction)
    named = t.get("executor")
    kind = ExecutorKind(named) if named else (
        ExecutorKind.DOCKER if container else ExecutorKind.LOCAL)
    if kind is ExecutorKind.DOCKER and action is not None and not container:
        t.problem("executor", 'executor = "docker" runs an image: add image (with command)')
    if kind is not ExecutorKind.DOCKER and container:
        t.problem("image", f'image runs through Docker, not with executor = "{kind}"')
    if kind is ExecutorKind.CELERY and config.celery is None:
        where = display_path(config.path) if config.path else "the daemon config"
        t.problem("executor", f'executor = "celery" needs a [celery] table in {where} '
                  "(its broker and signing_key_file)")
    queue = t.get("queue")
    if queue is not None and not QUEUE_NAME.fullmatch(queue):
        t.problem("queue", f"{show(queue)} is not a valid queue name (letters, digits, '_', "
                  "'.', '-', ':'; at most 128)")
    elif queue is not None and kind is not ExecutorKind.CELERY:
        t.problem("queue", 'only applies with executor = "celery"')
    return kind


def _build_scheduled(job_id: str, t: _Table, source: JobSource, base: Path,
                     config: DaemonConfig) -> JobDef | None:
    """A ``[tool.scheduled.<id>]`` job, ``job_id`` being ``project:id``: ``every`` cadence and
    ``entrypoint`` "module:function", imported from the project directory (the resolved file's
    directory). Every period missed while the daemon was down runs once (``catchup = all``):
    the spec asks for at least one run per cadence."""
    for name in ("every", "entrypoint"):
        if name not in t.raw:
            t.problem(None, f"missing key {name} (the scheduled-jobs spec requires every and "
                      "entrypoint)")
    action = _step(t, "entrypoint", base)
    timezone = _timezone(t, config)
    triggers = _time_triggers(t, job_id, timezone)
    if action is None or timezone is None or not t.ok:
        return None
    return JobDef(id=job_id, source=source, action=action, time_triggers=triggers,
                  timezone=timezone, workdir=base, catchup=Catchup.ALL)


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


def load_job_files(paths: Sequence[Path], config: DaemonConfig, *,
                   previous: JobSet | None = None) -> JobLoad:
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
            report = _Report(r.path)
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
        return {j.id: j for j in previous.jobs.values()
                if j.source.file in rejected and j.id not in ids and j.id not in dropped}

    def reject(r: FileResult, job: JobDef, need: str, message: str) -> None:
        report = _Report(r.path)
        report.locs = r.locations
        report.add(message, at=(*r.tables.get(job.id, ()), "needs", job.needs.index(need)),
                   job=job.id, key="needs")
        rejected.setdefault(r.path, []).extend(report.problems)

    # Reject files (and drop kept jobs) until what is left is closed under needs and has no
    # cycle. A new file is rejected before a kept previous job is dropped.
    while True:
        kept_now = kept()
        effective = {j.id: j for r in accepted.values() for j in r.jobs} | kept_now
        rejected_now = False
        for r in list(accepted.values()):
            for j in r.jobs:
                for need in j.needs:
                    if need not in effective:
                        rejected_now = True
                        accepted.pop(r.path, None)
                        reject(r, j, need, f"unknown job {show(need)}" + hint(need, effective))
        if rejected_now:
            continue
        missing = {j.id: n for j in kept_now.values() for n in j.needs if n not in effective}
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
            note = Problem(file=one_line(display_path(job.source.file)), line=job.source.line,
                           job=job_id, message=f"previous definition no longer loaded: {why}")
            details[job.source.file] = (*details.get(job.source.file, ()), note)
            lines[job.source.file] = (*lines.get(job.source.file, ()), str(note))
    jobs = {j.id: j for r in accepted.values() for j in r.jobs} | kept()
    return JobLoad(jobs=dict(sorted(jobs.items())), problems=lines, details=details,
                   files=tuple(paths))


def load_jobs(config: DaemonConfig, *, previous: JobSet | None = None) -> JobSet:
    """Every ``*.toml`` of ``config.jobs_dir`` in sorted path order; a file that fails is
    rejected whole (its problem lines in ``JobSet.invalid``), keeping the jobs it held in
    ``previous``. When ``jobs_dir`` cannot be listed, every previous job is kept."""
    try:
        paths = job_files(config.jobs_dir)
    except (OSError, ValueError) as e:
        problem = Problem(file=one_line(display_path(config.jobs_dir)),
                          message=f"cannot read jobs_dir: {getattr(e, 'strerror', None) or e}")
        jobs = dict(previous.jobs) if previous is not None else {}
        return JobSet(jobs=jobs, invalid={config.jobs_dir: (str(problem),)})
    return load_job_files(paths, config, previous=previous).to_jobset()
