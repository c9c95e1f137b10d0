"""Carries one run from queued to finished: condition, attempts with retries, stages.

The journal gets the run as ``running`` (durably) before each attempt's process starts, and
its result (durably, in a shielded scope) after it ends. When the daemon itself stops the run
(shutdown), no final state is written: the run stays ``running`` in the journal and is re-run
as ``recovery`` at the next start."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from jobd._crashpoints import crash_point
from jobd._enums import ExecutorKind, RunState, TriggerKind
from jobd.config.model import (
    Action,
    ContainerAction,
    DaemonConfig,
    JobDef,
    RetryPolicy,
    StagesAction,
    StepAction,
)
from jobd.executors._logsink import open_log
from jobd.executors.abc import Cancel, Executor
from jobd.executors.actions import host_user, process_spec, read_env_file
from jobd.executors.celery import WorkerLost
from jobd.expressions import evaluate_condition
from jobd.journal.abc import RunRecord, run_key
from jobd.logs import run_end
from jobd.remote.protocol import WORKER_PYTHON
from jobd.supervisor import runfiles
from jobd.supervisor.clock import Clock
from jobd.supervisor.hooks import HookEvent, event_for, hook_env
from jobd.supervisor.ledger import Ledger
from jobd.supervisor.policy import outcome, retry_delay, retryable
from jobd.supervisor.rendering import (
    RunFailedToRender,
    expression_context,
    render,
    render_shell,
    render_step,
)
from jobd.supervisor.slotgate import SlotGate

if TYPE_CHECKING:
    from jobd.executors.celery import CeleryExecutor

log = logging.getLogger("jobd.runner")


FollowUps = Callable[[RunRecord, HookEvent | None, Mapping[str, str] | None], list[RunRecord]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerDeps:
    config: DaemonConfig
    ledger: Ledger  # writes the run's states (and publishes them)
    executor: Executor
    clock: Clock
    gate: SlotGate  # where runs admitted ahead of their slot wait for it
    instance: str  # JOBD_INSTANCE marker: finds this daemon's leftovers after a crash
    python: str  # absolute interpreter for entrypoints and scripts
    needs_context: Callable[[RunRecord], Awaitable[dict[str, Any]]]
    rng: random.Random
    environ: Mapping[str, str]  # the daemon's environment, read once (os.environ decodes per key)
    remote: Callable[[], CeleryExecutor] | None = None  # executor = "celery" jobs
    # Hook runs a result sets off, journaled with it, then handed to ``admit`` to queue.
    follow_ups: FollowUps = field(default=lambda run, event, facts: [])
    admit: Callable[[list[RunRecord]], None] = field(default=lambda runs: None)


def log_path(config: DaemonConfig, run: RunRecord) -> Path:
    return config.logs_dir / log_dir_name(run.job_id) / f"{run.run_id}.log"


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def log_dir_name(job_id: str) -> str:
    """The directory of a job's logs: its id when that is a plain name; else (a
    ``[tool.scheduled]`` id may hold ``/``, spaces, any letter, and be long) its plain
    characters, cut short, and a digest of the whole id, so that the name is safe and unique."""
    if _PLAIN_ID.fullmatch(job_id) and ".." not in job_id:
        return job_id
    plain = re.sub(r"[^A-Za-z0-9_.:-]+", "_", job_id).strip("._")[:64]
    return f"{plain}~{hashlib.sha256(job_id.encode()).hexdigest()[:16]}"


def output_path(config: DaemonConfig, run: RunRecord) -> Path:
    return runfiles.output_path(config, run)


def read_outputs(path: Path) -> dict[str, str]:
    """``key=value`` lines a run wrote to ``JOBD_OUTPUT``; other lines are ignored, and so is
    everything past its first ``MAX_OUTPUTS_BYTES`` (a job cannot make the daemon hold more)."""
    try:
        if os.stat(path).st_size == 0:  # most runs write none: no open, read and close
            return {}
        with path.open("rb") as f:
            data = f.read(runfiles.MAX_OUTPUTS_BYTES + 1)
    except OSError:
        return {}
    if len(data) > runfiles.MAX_OUTPUTS_BYTES:  # keep whole lines only
        data = data[: data.rfind(b"\n", 0, runfiles.MAX_OUTPUTS_BYTES) + 1]
    text = data.decode(errors="replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value
    return out


def base_env(
    deps: RunnerDeps, job: JobDef, run: RunRecord, extra: Mapping[str, str], ctx: Mapping[str, Any]
) -> dict[str, str]:
    """The daemon's environment, then ``env_file``, then ``env``, then the ``JOBD_*`` names."""
    config, instance = deps.config, deps.instance
    # a worker starts from its own environment: the daemon's means nothing on its host
    env = dict(deps.environ) if job.executor is not ExecutorKind.CELERY else {}
    if job.env_file is not None:
        env.update(read_env_file(job.env_file))
    for k, v in {**job.env, **extra}.items():
        env[k] = render(v, ctx)
    env.update(hook_env(run))
    env.update(
        {
            "JOBD_JOB_ID": job.id,
            "JOBD_RUN_ID": str(run.run_id),
            "JOBD_ATTEMPT": str(run.attempt),
            "JOBD_TRIGGER": str(run.trigger),
            "JOBD_OUTPUT": str(output_path(config, run)),
            "JOBD_INSTANCE": instance,
        }
    )
    env["JOBD_RUN_KEY"] = run_key(run)
    if run.scheduled_for is not None:
        env["JOBD_SCHEDULED_FOR"] = run.scheduled_for.isoformat()
    if run.folded_slots:
        env["JOBD_FOLDED_SLOTS"] = " ".join(d.isoformat() for d in run.folded_slots)
    env.update(runfiles.changed_paths_env(config, run, run.changed_paths))
    if run.flow_id is not None:
        env["JOBD_FLOW_ID"] = run.flow_id
    for k, v in (run.matrix or {}).items():
        env[f"JOBD_MATRIX_{k.upper()}"] = v if isinstance(v, str) else str(v)
    return env


class Runner:
    """Runs one run of one job to its end; ``cancel`` stops it as ``cancelled``."""

    def __init__(
        self, job: JobDef, run: RunRecord, deps: RunnerDeps, *, adopt: bool = False
    ) -> None:
        self.job = job
        self.run = run
        self.deps = deps
        self.adopt = adopt  # a remote attempt journaled as running: attach to it
        self.cancel = Cancel()
        self.log = log_path(deps.config, run)

    def note(self, text: str) -> None:
        """A jobd line in the run's log, between the process's own output."""
        try:
            stamp = self.deps.clock.now().isoformat(timespec="milliseconds")
            fd = open_log(self.log)  # 0640, as the executors' own writes
            try:
                os.write(fd, f"[jobd {stamp}] {text}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("run %s: cannot write its log %s: %s", self.run.run_id, self.log, exc)

    async def _save(self, run: RunRecord, *, durable: bool = True) -> None:
        self.run = run
        await self.deps.ledger.write([run], durable=durable)

    async def execute(self) -> RunRecord:
        """Run it; returns the finished record (already journaled and published)."""
        deps, job = self.deps, self.job
        try:
            needs = await deps.needs_context(self.run)
            if job.condition is not None and not evaluate_condition(
                job.condition,
                expression_context(job, self.run, self._now(), deps.environ, needs),
            ):
                return await self._finish(
                    RunState.SKIPPED, None, f"condition is false: {job.condition}"
                )
        except Exception as exc:
            return await self._finish(RunState.FAILED, None, f"condition: {exc}")
        retry = job.retry
        state, code, message = RunState.FAILED, None, None
        first_start: datetime | None = None  # the run's time spans its retries
        while True:
            first_start = first_start or self._now()
            await self._save(
                self.run.evolve(
                    state=RunState.RUNNING,
                    started_at=first_start,
                    finished_at=None,
                    exit_code=None,
                    message=None,
                    log_path=str(self.log),
                )
            )
            crash_point("running-committed")
            if self.run.attempt > 1 or self.run.trigger is TriggerKind.RECOVERY:
                # A first attempt needs no note: creating a log file costs ~1 ms here, and a
                # quiet job that succeeds then leaves none.
                self.note(f"attempt {self.run.attempt} ({self.run.trigger}) started")
            await self._prepare_files()
            if self.adopt and deps.remote is not None:
                deps.remote().adopt(self.run.run_id, self.run.attempt)
                self.adopt = False
            try:
                state, code, message = await self._attempt(needs)
            except RunFailedToRender as exc:
                state, code, message = RunState.FAILED, None, str(exc)
            except WorkerLost as exc:  # fenced: the next attempt, as a recovery
                self.note(f"attempt {self.run.attempt}: {exc}; re-run as a recovery")
                self.run = self.run.evolve(
                    attempt=self.run.attempt + 1, trigger=TriggerKind.RECOVERY
                )
                continue
            if state is not RunState.SUCCEEDED:
                self.note(
                    f"attempt {self.run.attempt} ended: {state}"
                    + (f" ({message})" if message else "")
                )
            done_attempts = self.run.attempt
            if (
                not retryable(state)
                or self.cancel.is_set()
                or self._retries_used(done_attempts) >= retry.retries
            ):
                break
            delay = retry_delay(retry, self._retries_used(done_attempts) + 1, deps.rng)
            self.note(f"retrying in {delay:.2f}s")
            await self._retry_hooks(state, code, message)
            with anyio.move_on_after(delay):
                await self.cancel.wait()
            if self.cancel.is_set():
                state, message = RunState.CANCELLED, "cancelled while waiting to retry"
                break
            self.run = self.run.evolve(attempt=self.run.attempt + 1)
        return await self._finish(state, code, message)

    def _now(self) -> datetime:
        """The run's now: never before its slot (the timer may admit it ahead of it)."""
        now, slot = self.deps.clock.now(), self.run.scheduled_for
        return slot if slot is not None and slot > now else now

    async def _hold_until_slot(self) -> bool:
        """Wait for the run's slot if it was admitted ahead of it; False if cancelled."""
        slot = self.run.scheduled_for
        if slot is not None:
            await self.deps.gate.wait(slot, self.cancel)
        return not self.cancel.is_set()

    def _retries_used(self, attempt: int) -> int:
        # Attempts spent on earlier daemon lives (recovery) count against retries too.
        return attempt - 1

    async def _finish(self, state: RunState, code: int | None, message: str | None) -> RunRecord:
        out = output_path(self.deps.config, self.run)
        outputs = read_outputs(out)
        now, started = self.deps.clock.now(), self.run.started_at
        final = self.run.evolve(
            state=state,
            exit_code=code,
            message=message,
            outputs=outputs,
            # cancelled while held before its slot: it never started
            started_at=started if started is None or started <= now else None,
            finished_at=now,
            log_path=str(self.log),
        )
        extra = self.deps.follow_ups(final, event_for(state), None)
        crash_point("after-exit")
        with anyio.CancelScope(shield=True):
            self.run = final
            # The hook runs share the result's commit: a crash keeps both or neither.
            await self.deps.ledger.write([final, *extra])
            self.deps.admit(extra)
            if self.job.executor is ExecutorKind.CELERY and self.deps.remote is not None:
                await self.deps.remote().settle(final.run_id)
        runfiles.remove(self.deps.config, self.run)  # the journal holds the outputs now
        log.log(*run_end(final))
        return final

    async def _retry_hooks(self, state: RunState, code: int | None, message: str | None) -> None:
        """``on_retry``: the failed attempt's facts, journaled before the retry waits."""
        failed = self.run.evolve(
            state=state, exit_code=code, message=message, log_path=str(self.log)
        )
        extra = self.deps.follow_ups(failed, HookEvent.RETRIED, None)
        if extra:
            with anyio.CancelScope(shield=True):
                await self.deps.ledger.write(extra)
                self.deps.admit(extra)

    async def _prepare_files(self) -> None:
        owner = None
        if self.job.user is not None and os.geteuid() == 0 and host_user(self.job.action):
            owner = await anyio.to_thread.run_sync(runfiles.run_owner, self.job.user)
        try:
            runfiles.prepare(self.deps.config, self.run, owner)
        except OSError as exc:
            log.warning("run %s: cannot prepare its output file: %s", self.run.run_id, exc)

    async def _attempt(self, needs: dict[str, Any]) -> tuple[RunState, int | None, str | None]:
        job, deps = self.job, self.deps
        ctx = expression_context(job, self.run, self._now(), deps.environ, needs)
        action: Action = job.action
        if isinstance(action, StagesAction):
            return await self._stages(action, ctx)
        env = base_env(deps, job, self.run, {}, ctx)
        step, values = render_step(action, ctx)
        return await self._process(step, {**env, **values}, job.timeout, ctx)

    async def _process(
        self,
        action: StepAction | ContainerAction,
        env: dict[str, str],
        time_limit: float | None,
        ctx: Mapping[str, Any] | None = None,
    ) -> tuple[RunState, int | None, str | None]:
        job, deps = self.job, self.deps
        remote = job.executor is ExecutorKind.CELERY and deps.remote is not None
        spec = process_spec(
            action,
            default_python=WORKER_PYTHON if remote else deps.python,
            env=env,
            cwd=job.workdir,
            log_path=self.log,
            log_max_bytes=deps.config.log_max_bytes,
            timeout=time_limit,
            kill_grace=job.kill_grace,
            user=job.user,
            env_keys=job.env,
            env_file=job.env_file,
            render=None if ctx is None else lambda text: render(text, ctx),
            render_shell=None if ctx is None else lambda text: render_shell(text, ctx),
        )

        async def started(pid: int, ticks: int | None) -> None:
            crash_point("after-spawn")
            await self._save(self.run.evolve(pid=pid or None, pid_start=ticks), durable=False)

        if not await self._hold_until_slot():  # everything but the spawn is done
            return RunState.CANCELLED, None, "cancelled before its slot"
        crash_point("before-spawn")
        if remote and deps.remote is not None:
            result = await deps.remote().run_remote(spec, queue=job.queue, cancel=self.cancel)
        else:
            result = await deps.executor.run(spec, on_started=started, cancel=self.cancel)
        state, message = outcome(result)
        return state, result.exit_code, message

    async def _stages(
        self, action: StagesAction, ctx: dict[str, Any]
    ) -> tuple[RunState, int | None, str | None]:
        job, deps = self.job, self.deps
        start = deps.clock.now()
        overall: RunState = RunState.SUCCEEDED
        last_code: int | None = 0
        message: str | None = None
        stages_ctx: dict[str, Any] = {}
        for stage in action.stages:
            sctx = {**ctx, "stages": stages_ctx}
            if stage.condition is not None and not evaluate_condition(stage.condition, sctx):
                self.note(f"stage {stage.name}: skipped (condition is false)")
                stages_ctx[stage.name] = {"result": "skipped"}
                continue
            timeout = stage.timeout
            if job.timeout is not None:
                left = job.timeout - (deps.clock.now() - start).total_seconds()
                if left <= 0:
                    return RunState.TIMED_OUT, None, f"timed out before stage {stage.name}"
                timeout = left if timeout is None else min(timeout, left)
            env = base_env(deps, job, self.run, stage.env, sctx)
            env["JOBD_STAGE"] = stage.name
            step, values = render_step(stage.action, sctx)
            env.update(values)
            state, code, msg = await self._stage_attempts(
                stage.name, stage.retry, step, env, timeout
            )
            stages_ctx[stage.name] = {"result": result_word(state), "exit_code": code}
            if state is RunState.CANCELLED:
                return state, code, f"stage {stage.name}: {msg}"
            if state is not RunState.SUCCEEDED:
                if stage.continue_on_error:
                    self.note(f"stage {stage.name}: {state}, continuing (continue_on_error)")
                    continue
                return state, code, f"stage {stage.name}: {msg}"
            last_code = code
        return overall, last_code, message

    async def _stage_attempts(
        self,
        name: str,
        retry: RetryPolicy,
        action: StepAction | ContainerAction,
        env: dict[str, str],
        time_limit: float | None,
    ) -> tuple[RunState, int | None, str | None]:
        tries = 0
        while True:
            tries += 1
            self.note(f"stage {name}: started (try {tries})")
            state, code, msg = await self._process(action, env, time_limit)
            self.note(f"stage {name}: {state}" + (f" ({msg})" if msg else ""))
            if not retryable(state) or tries > retry.retries or self.cancel.is_set():
                return state, code, msg
            delay = retry_delay(retry, tries, self.deps.rng)
            with anyio.move_on_after(delay):
                await self.cancel.wait()
            if self.cancel.is_set():
                return RunState.CANCELLED, None, "cancelled while waiting to retry"


def result_word(state: RunState) -> str:
    """A run state in the words of ``needs.<id>.result`` (GitHub's: a job not run because a
    need failed is ``skipped`` there)."""
    return {
        RunState.SUCCEEDED: "success",
        RunState.SKIPPED: "skipped",
        RunState.UPSTREAM_FAILED: "skipped",
        RunState.CANCELLED: "cancelled",
    }.get(state, "failure")
