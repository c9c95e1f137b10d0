"""Building one job (``JobDef``) from its validated table."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from jobd._enums import Catchup, ExecutorKind, Overlap, TriggerRule
from jobd._exceptions import ExpressionError
from jobd.config.daemon_config import under
from jobd.config.jobwhen import (
    hooks_of,
    job_timezone,
    matrix_spec,
    needs_of,
    time_triggers,
    watch_spec,
)
from jobd.config.keys import (
    ENTRYPOINT,
    ENV_NAME,
    HOOK_KEYS,
    PARAM_NAME,
    QUEUE_NAME,
    STAGE_KEYS,
    STAGE_RUNS,
    WHAT_RUNS,
    is_scalar,
)
from jobd.config.messages import describe, display_path, hint, joined, show
from jobd.config.model import (
    DEFAULT_QUEUE,
    Action,
    CommandAction,
    ContainerAction,
    DaemonConfig,
    EntrypointAction,
    JobDef,
    JobSource,
    RetryPolicy,
    ScriptAction,
    Stage,
    StagesAction,
    StepAction,
)
from jobd.config.reading import Table
from jobd.expressions import parse_condition

# --- building one job ----------------------------------------------------------------------


# Shared by every job that has none (or the defaults): 10,000 jobs held 1.9 MB of copies.
_EMPTY: Mapping[str, str] = MappingProxyType({})
_DEFAULT_RETRY = RetryPolicy()


def _scalar_table(
    t: Table, name: str, pattern: re.Pattern[str], what: str, template: bool
) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for k, v in t.get(name, {}).items():
        if not pattern.fullmatch(k):
            t.problem(
                name, f"{show(k)} is not a valid {what} name (it must match {pattern.pattern})", k
            )
        elif name == "env" and k.startswith("JOBD_"):
            t.problem(name, f"{k}: JOBD_* variables are set by jobd", k)
        elif not is_scalar(v):
            t.problem(name, f"{k}: expected a string, got {describe(v)}", k)
        elif isinstance(v, str) and "\x00" in v:
            t.problem(name, f"{k}: must not hold a NUL character", k)
        else:
            text = str(v).lower() if isinstance(v, bool) else str(v)
            if template:
                t.template(name, text, k)
            out[k] = text
    return out or _EMPTY


def _condition(t: Table) -> str | None:
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


def _retry(t: Table) -> RetryPolicy:
    delay = t.duration("retry_delay")
    max_delay = t.duration("retry_max_delay")
    policy = RetryPolicy(
        retries=t.get("retries", 0),
        delay=1.0 if delay is None else delay,
        backoff=float(t.get("retry_backoff", 2.0)),
        max_delay=600.0 if max_delay is None else max_delay,
    )
    return _DEFAULT_RETRY if policy == _DEFAULT_RETRY else policy


@lru_cache(maxsize=1024)
def _workdir(base: Path, text: str) -> Path:
    """One ``Path`` for the jobs of a file that share a working directory."""
    return under(base, text)


def _python(t: Table, base: Path) -> str | None:
    text: str | None = t.get("python")
    if text is None or "/" not in text:
        return text  # a bare name is looked up on PATH
    return str(under(base, text))


def _step(t: Table, runs: str, base: Path) -> StepAction | None:
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
            t.problem(
                "entrypoint", f'{show(entry)} is not an entrypoint; write "package.module:function"'
            )
            return None
        return EntrypointAction(entrypoint=entry, python=_python(t, base), path=(base,))
    args: list[str] = t.get("args", [])
    for i, arg in enumerate(args):
        t.template("args", arg, i)
    return ScriptAction(
        script=under(base, t.values["script"]), args=tuple(args), python=_python(t, base)
    )


def _what_runs(t: Table, choices: Sequence[str], where: str) -> str | None:
    present = [k for k in choices if k in t.raw]
    if not present and "image" in t.raw:
        return None  # "image: only applies with command" says it
    if not present:
        also = " (or image with command)" if "stages" in choices else ""
        t.problem(None, f"nothing to run: {where} needs one of {joined(choices)}{also}")
        return None
    if len(present) > 1:
        t.problem(
            present[1],
            f"{present[0]} and {present[1]} both say what runs; keep "
            f"exactly one of {joined(choices)}",
        )
        return None
    return present[0]


def _stages(t: Table, base: Path) -> StagesAction | None:
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(t.values["stages"]):
        s = Table(t.report, (*t.at, "stages", i), t.job, STAGE_KEYS, raw, prefix=f"stages[{i}].")
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
            stages.append(
                Stage(
                    name=name,
                    action=action,
                    condition=condition,
                    timeout=timeout,
                    retry=retry,
                    env=env,
                    continue_on_error=s.get("continue_on_error", False),
                )
            )
    return StagesAction(stages=tuple(stages))


DOCKER_MISSING = (
    "container jobs need the docker extra, and aiodocker is not installed: "
    "pip install 'jobd[docker]' into jobd's environment"
)


def docker_available() -> bool:
    """Whether the container executor's library (the ``docker`` extra) can be imported."""
    return importlib.util.find_spec("aiodocker") is not None


def build_job(
    job_id: str, t: Table, source: JobSource, base: Path, config: DaemonConfig
) -> JobDef | None:
    t.requires()
    runs = _what_runs(t, WHAT_RUNS, "a job")
    action: Action | None = None
    if runs == "stages" and "stages" in t.values:
        action = _stages(t, base)
    elif runs is not None:
        action = _step(t, runs, base)
        if "image" in t.values and isinstance(action, CommandAction):
            action = ContainerAction(image=t.values["image"], command=action.command)
            if not docker_available():
                t.problem("image", DOCKER_MISSING)
    executor = _executor(t, action, config)
    timezone = job_timezone(t, config)
    triggers = time_triggers(t, job_id, timezone)
    watch = watch_spec(t, base)
    needs = needs_of(t, job_id)
    pool: str | None = t.get("pool")
    if pool is not None and pool not in config.pools:
        defined = ", ".join(sorted(config.pools)) or "none"
        t.problem(
            "pool",
            f"unknown pool {show(pool)} (the daemon config defines: {defined})"
            + hint(pool, config.pools),
        )
    env = _scalar_table(t, "env", ENV_NAME, "environment variable", True)
    params = _scalar_table(t, "params", PARAM_NAME, "parameter", False)
    condition = _condition(t)
    timeout = t.duration("timeout", positive=True)
    kill_grace = t.duration("kill_grace")
    start_deadline = t.duration("start_deadline", positive=True)
    retry = _retry(t)
    matrix = matrix_spec(t)
    hooks = {key: hooks_of(t, job_id, key) for key in HOOK_KEYS}
    stale_after = t.duration("stale_after", positive=True)
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
        workdir=_workdir(base, t.get("workdir", ".")),
        env=env,
        env_file=None if "env_file" not in t.values else under(base, t.values["env_file"]),
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
        description=t.get("description"),
        on_failure=hooks["on_failure"],
        on_success=hooks["on_success"],
        on_retry=hooks["on_retry"],
        stale_after=stale_after,
    )


def _executor(t: Table, action: Action | None, config: DaemonConfig) -> ExecutorKind:
    container = isinstance(action, ContainerAction)
    named = t.get("executor")
    kind = (
        ExecutorKind(named) if named else (ExecutorKind.DOCKER if container else ExecutorKind.LOCAL)
    )
    if kind is ExecutorKind.DOCKER and action is not None and not container:
        t.problem("executor", 'executor = "docker" runs an image: add image (with command)')
    if kind is not ExecutorKind.DOCKER and container:
        t.problem("image", f'image runs through Docker, not with executor = "{kind}"')
    if kind is ExecutorKind.CELERY and config.celery is None:
        where = display_path(config.path) if config.path else "the daemon config"
        t.problem(
            "executor",
            f'executor = "celery" needs a [celery] table in {where} '
            "(its broker and signing_key_file)",
        )
    queue = t.get("queue")
    if queue is not None and not QUEUE_NAME.fullmatch(queue):
        t.problem(
            "queue",
            f"{show(queue)} is not a valid queue name (letters, digits, '_', "
            "'.', '-', ':'; at most 128)",
        )
    elif queue is not None and kind is not ExecutorKind.CELERY:
        t.problem("queue", 'only applies with executor = "celery"')
    return kind


def build_scheduled_job(
    job_id: str, t: Table, source: JobSource, base: Path, config: DaemonConfig
) -> JobDef | None:
    """A ``[tool.scheduled.<id>]`` job, ``job_id`` being ``project:id``: ``every`` cadence and
    ``entrypoint`` "module:function", imported from the project directory (the resolved file's
    directory). Every period missed while the daemon was down runs once (``catchup = all``):
    the spec asks for at least one run per cadence."""
    for name in ("every", "entrypoint"):
        if name not in t.raw:
            t.problem(
                None, f"missing key {name} (the scheduled-jobs spec requires every and entrypoint)"
            )
    action = _step(t, "entrypoint", base)
    timezone = job_timezone(t, config)
    triggers = time_triggers(t, job_id, timezone)
    if action is None or timezone is None or not t.ok:
        return None
    return JobDef(
        id=job_id,
        source=source,
        action=action,
        time_triggers=triggers,
        timezone=timezone,
        workdir=base,
        catchup=Catchup.ALL,
    )
