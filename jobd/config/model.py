"""Typed, immutable definitions: what the daemon config and job files say, once validated.

Parsed once at the edge (``jobd.config.loader``); everything inside the daemon reads these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobd._enums import Catchup, ExecutorKind, Overlap, TriggerRule
from jobd.triggers.abc import TimeTrigger


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    name: str
    max_parallel: int


DEFAULT_QUEUE = "jobd.default"


@dataclass(frozen=True, slots=True, kw_only=True)
class CeleryConfig:
    """``[celery]``: the broker that carries runs of ``executor = "celery"`` jobs to workers.

    The same table configures the daemon and the workers (``jobd.remote.worker``)."""

    broker: str  # redis://, rediss:// or unix:// URL, without credentials
    signing_key: bytes  # HMAC-SHA256 key of every task payload (read from signing_key_file)
    signing_key_file: Path
    username: str | None = None  # Redis ACL user
    password: str | None = None  # read from password_file
    password_file: Path | None = None
    ca_file: Path | None = None  # rediss://: CA bundle that signs the server's certificate
    max_parallel: int = 8  # remote runs at once, beside [daemon] max_parallel
    lease: float = 30.0  # a worker's lease on a run; lapsed: the run is fenced and re-run
    claim_timeout: float = 600.0  # published but not claimed this long: the attempt fails
    max_lost: int = 3  # lost workers a run survives (each a recovery) before it fails


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    """``[http]``: where the dashboard listens. Exactly one of ``host``/``port`` (TCP) and
    ``path`` (a unix socket) is set; ``token_file`` holds the token that requests must carry."""

    listen: str  # as written, for messages
    host: str | None = None
    port: int | None = None
    path: Path | None = None
    token_file: Path | None = None
    loopback: bool = True  # only this machine can connect (127.0.0.0/8, ::1 or a unix socket)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """``[daemon]`` and ``[pools.*]`` of the daemon config, paths made absolute."""

    path: Path | None  # the config file; None when built in code
    jobs_dir: Path
    state_dir: Path
    socket: Path
    max_parallel: int = 8
    shutdown_grace: float = 30.0
    timezone: str = "UTC"  # an IANA name; the machine's zone when the config names none
    pools: Mapping[str, PoolConfig] = field(default_factory=dict)
    socket_group: str | None = None  # group that may change things through the socket
    socket_mode: int = 0o660
    log_max_bytes: int = 10 * 1024 * 1024  # per run log; the tail beyond is dropped
    retention_runs: int = 1000  # finished runs kept per job (with their logs)
    retention_days: float = 30.0  # finished runs older than this are pruned
    docker_host: str | None = None  # container jobs: the Engine API; None: $DOCKER_HOST
    docker_network: str | None = None  # container jobs: network mode; None: the engine's
    celery: CeleryConfig | None = None  # [celery]: remote runs on Celery workers
    http: HttpConfig | None = None  # the dashboard endpoint; None: no port, no web stack

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "jobd.db"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"


RELOADABLE = (
    "max_parallel",
    "pools",
    "shutdown_grace",
    "timezone",
    "log_max_bytes",
    "retention_runs",
    "retention_days",
)
"""Daemon settings a reload applies; every other one needs a restart."""


def restart_needed(old: DaemonConfig, new: DaemonConfig) -> list[str]:
    """The settings that changed but a reload cannot apply (the socket, the journal's place,
    the Docker connection, the dashboard, ...), in the config's order, as the config file names
    them: ``daemon.socket_mode``, ``http``."""
    return [
        f if f in _TABLES else f"daemon.{f}"
        for f in old.__dataclass_fields__
        if f not in (*RELOADABLE, "path") and getattr(old, f) != getattr(new, f)
    ]


_TABLES = ("http", "celery")  # fields that are whole tables of the config file, not [daemon] keys


# --- what runs ---------------------------------------------------------------------------
# String fields may hold ``${{ }}`` expressions; they were parsed at load, and are rendered
# per run by ``jobd.expressions``.


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandAction:
    """``command``: a list is exec'd without a shell; a string runs with ``/bin/sh -c``."""

    command: tuple[str, ...] | str

    @property
    def shell(self) -> bool:
        return isinstance(self.command, str)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntrypointAction:
    """``entrypoint = "pkg.mod:func"``: imported and called in a fresh Python process."""

    entrypoint: str
    python: str | None = None  # interpreter; default: the daemon's own (absolute path)
    path: tuple[Path, ...] = ()  # extra sys.path entries (a pyproject's project directory)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptAction:
    script: Path
    args: tuple[str, ...] = ()
    python: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerAction:
    """``image`` with ``command``: run in a container through the Docker Engine API."""

    image: str
    command: tuple[str, ...] | str | None = None


StepAction = CommandAction | EntrypointAction | ScriptAction


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    name: str
    action: StepAction
    condition: str | None = None  # the expression inside ``${{ }}``, or None
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    env: Mapping[str, str] = field(default_factory=dict)
    continue_on_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StagesAction:
    stages: tuple[Stage, ...]


Action = CommandAction | EntrypointAction | ScriptAction | StagesAction | ContainerAction


# --- triggers and fan-out ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchSpec:
    """``watch``: paths or globs, absolute after resolving against the job file's directory."""

    patterns: tuple[str, ...]
    debounce: float = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixSpec:
    """``matrix`` with ``include``/``exclude``; expand with ``jobd.matrix.expand``."""

    dimensions: Mapping[str, tuple[Any, ...]]
    include: tuple[Mapping[str, Any], ...] = ()
    exclude: tuple[Mapping[str, Any], ...] = ()
    max_parallel: int | None = None
    fail_fast: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSource:
    """Where a job was defined: for messages and for ``jobctl show``."""

    file: Path  # the file as found in jobs_dir (not resolved through symlinks)
    line: int | None  # line of the job's table header
    form: str = "jobs"  # "jobs" or "tool.scheduled"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDef:
    """One validated job. Equal definitions compare equal, which is how reload finds changes."""

    id: str
    source: JobSource
    action: Action
    time_triggers: tuple[TimeTrigger, ...] = ()
    watch: WatchSpec | None = None
    needs: tuple[str, ...] = ()
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    timezone: str = "UTC"  # zone for cron and calendar cadences, resolved
    workdir: Path = Path(".")
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    user: str | None = None
    timeout: float | None = None
    kill_grace: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    overlap: Overlap = Overlap.QUEUE
    pool: str | None = None
    priority: int = 0
    catchup: Catchup = Catchup.LATEST
    start_deadline: float | None = None
    condition: str | None = None  # the expression inside ``${{ }}``, or None
    params: Mapping[str, str] = field(default_factory=dict)
    matrix: MatrixSpec | None = None
    enabled: bool = True
    executor: ExecutorKind = ExecutorKind.LOCAL  # DOCKER when ``image`` is set
    queue: str = DEFAULT_QUEUE  # the Celery queue of an ``executor = "celery"`` job
    description: str | None = None
    on_failure: tuple[str, ...] = ()  # hook jobs: run with the triggering run's facts
    on_success: tuple[str, ...] = ()
    on_retry: tuple[str, ...] = ()
    stale_after: float | None = None  # seconds without a success before the job is stale

    @property
    def hooks(self) -> tuple[str, ...]:
        """Every job this one names as a hook, once each."""
        return tuple(dict.fromkeys((*self.on_failure, *self.on_success, *self.on_retry)))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSet:
    """What a load of ``jobs_dir`` gave: the valid jobs and the problems of rejected files."""

    jobs: Mapping[str, JobDef]
    invalid: Mapping[Path, tuple[str, ...]]  # rejected file -> its problem lines
