"""The container executor: one container per attempt, through the Docker Engine API (aiodocker).

How a run goes (docs/containers.md says it for users):

1. ``POST /containers/create`` from the job's ``image`` (never pulled: a missing image is the
   run's error), its command (a string runs under ``/bin/sh -c``), an environment made of the
   job's own variables and the ``JOBD_*`` ones only (``container_env``), labels naming the
   daemon instance and the run (crash recovery finds leftovers by them), ``Init`` on (so
   SIGTERM reaches the job as it would locally) and no log driver: output is read by attaching.
2. Attach to stdout and stderr *before* start, so no output is missed, then start, then
   ``on_started(State.Pid, None)``.
3. Output goes into the run's log with the local executor's cap semantics: bytes up to the
   cap, one ``[jobd: output truncated after N bytes]`` line, the rest drained and dropped.
4. On timeout, cancel or the caller's cancellation: ``POST /containers/{id}/stop?t=grace``
   (SIGTERM, SIGKILL after the grace). The container is always removed at the end, shielded.

Every Docker failure becomes ``ProcessResult(exit_code=None, error=...)``; ``run`` raises only
the caller's cancellation and whatever ``on_started`` raised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import aiodocker
import aiohttp
import anyio
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError
from aiodocker.stream import Stream

from jobd.config.model import ContainerAction
from jobd.executors._logsink import LogSink
from jobd.executors.abc import Cancel, Executor, ProcessResult, ProcessSpec, RunRef, StartedCallback
from jobd.executors.docker_config import (
    DEFAULT_DOCKER_URL,
    LABEL_INSTANCE,
    LABEL_JOB_ID,
    LABEL_RUN_ID,
    container_cmd,
    container_config,
    container_env,
    container_labels,
    docker_url,
    stop_grace,
)

logger = logging.getLogger("jobd.executors")

_CLEANUP_TIMEOUT = 30.0  # bound on removing a container, so shutdown cannot hang on Docker
# a client error of any kind: refused socket, HTTP error, timeout, a closed connection
_DOCKER_ERRORS = (DockerError, aiohttp.ClientError, OSError, TimeoutError)


class _StartError(Exception):
    """The container could not be created or started; the message is the result's ``error``."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DockerError):
        return str(exc.message).strip()
    if isinstance(exc, TimeoutError):
        return "the Docker engine did not answer in time"
    return str(exc) or type(exc).__name__


def create_error(exc: BaseException, image: str, url: str) -> str:
    """One clear line saying why the container could not be created."""
    if isinstance(exc, DockerError) and exc.status == 404 and "image" in str(exc.message).lower():
        return (
            f"image '{image}' is not present on the Docker host (jobd does not pull; "
            f"docker pull it first)"
        )
    if isinstance(exc, DockerError) and exc.status == 900:  # aiodocker: cannot connect
        return f"cannot reach the Docker engine at {url} ({_describe(exc)})"
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return f"cannot reach the Docker engine at {url} ({_describe(exc)})"
    return f"cannot create a container from image '{image}' ({_describe(exc)})"


def _label(spec: ProcessSpec, image: str) -> str:
    job, run = spec.env.get("JOBD_JOB_ID"), spec.env.get("JOBD_RUN_ID")
    if job is not None and run is not None:
        return f"job '{job}' run {run}"
    return f"container of {image!r}"


# --- Docker calls -------------------------------------------------------------------------


async def _pump(stream: Stream, sink: LogSink, eof: anyio.Event) -> None:
    """Copy the attached stdout+stderr into the log until the stream ends."""
    try:
        while (message := await stream.read_out()) is not None:
            sink.feed(message.data)
    except _DOCKER_ERRORS as exc:
        logger.error("%s: cannot read its output: %s", sink.label, _describe(exc))
    finally:
        eof.set()


async def _wait(container: DockerContainer, cancel: Cancel | None) -> tuple[bool, int]:
    """Wait for the container's exit or for ``cancel``: (cancel came first, exit status)."""
    if cancel is None:
        return False, int((await container.wait()).get("StatusCode", -1))
    status: int | None = None
    failure: BaseException | None = None

    async def wait_exit(scope: anyio.CancelScope) -> None:
        nonlocal status, failure
        try:
            status = int((await container.wait()).get("StatusCode", -1))
        except _DOCKER_ERRORS as exc:  # raised plainly below, not in an ExceptionGroup
            failure = exc
        scope.cancel()

    async def watch_cancel(scope: anyio.CancelScope, event: Cancel) -> None:
        await event.wait()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_exit, tg.cancel_scope)
        tg.start_soon(watch_cancel, tg.cancel_scope, cancel)
    if failure is not None:
        raise failure
    return status is None, -1 if status is None else status


class DockerExecutor(Executor):
    """Runs each attempt of a container job (``image`` with ``command``) in a fresh container.

    ``url``: the Docker host (default ``$DOCKER_HOST``, else ``unix:///var/run/docker.sock``).
    ``network``: the container's ``NetworkMode`` (default: the engine's default network).
    ``instance``: the ``jobd.instance`` label (default: ``JOBD_INSTANCE`` from the run's env).
    ``init``: run Docker's init as PID 1, so the job's process gets SIGTERM as a local one does.
    ``drain_timeout``: after the exit, how long to wait for the end of the output stream."""

    def __init__(
        self,
        *,
        url: str | None = None,
        network: str | None = None,
        instance: str | None = None,
        init: bool = True,
        drain_timeout: float = 2.0,
    ) -> None:
        self.url = docker_url(url)
        self.network = network
        self.instance = instance
        self.init = init
        self.drain_timeout = drain_timeout

    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ProcessResult:
        """The ``Executor`` entry: ``spec.container`` says what to run (see ``run_container``)."""
        c = spec.container
        if c is None:
            raise ValueError("the container executor needs a ProcessSpec with a container")
        return await self.run_container(
            ContainerAction(image=c.image, command=c.command),
            spec,
            on_started=on_started,
            cancel=cancel,
            passthrough=c.passthrough,
        )

    async def find_leftovers(self, ref: RunRef) -> list[str]:
        """The run's containers, running or not (found by their labels)."""
        try:
            return await find_container_leftovers(ref.instance, ref.run_id, url=self.url)
        except Exception as exc:  # the engine may be down: the re-run goes ahead regardless
            logger.warning(
                "run %s: cannot look for leftover containers: %s", ref.run_id, _describe(exc)
            )
            return []

    async def stop_leftovers(self, ids: Sequence[str], grace: float) -> list[str]:
        try:
            return await remove_containers(ids, grace, url=self.url)
        except Exception as exc:
            logger.warning("cannot remove leftover containers: %s", _describe(exc))
            return list(ids)

    async def run_container(
        self,
        action: ContainerAction,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
        passthrough: Collection[str] = (),
    ) -> ProcessResult:
        """Run ``action`` in a new container to its end and return how it ended.

        ``spec`` gives the environment (filtered by ``container_env``: ``JOBD_*`` plus the
        ``passthrough`` keys), the log, its cap, the timeout and the kill grace; its ``cwd``
        is not used (the image's working directory applies) and its ``argv`` neither (the
        command comes from ``action``, already rendered). On timeout or ``cancel``: the
        container is stopped (SIGTERM, SIGKILL after ``kill_grace``) and the result says
        ``timed_out`` / ``cancelled``. When the calling scope is cancelled, the container is
        stopped in a shielded scope before the cancellation propagates. The container is
        always removed. Docker errors come back as ``error``, never raised."""
        label = _label(spec, action.image)
        sink = LogSink(spec.log_path, spec.log_max_bytes, label)
        try:
            if cancel is not None and cancel.is_set():
                sink.note("cancelled before it started")
                return ProcessResult(exit_code=None, cancelled=True)
            config = container_config(
                action,
                spec,
                passthrough=passthrough,
                instance=self.instance,
                network=self.network,
                init=self.init,
            )
            docker = aiodocker.Docker(url=self.url)
            try:
                return await self._run(docker, action, config, spec, sink, on_started, cancel)
            finally:
                with anyio.CancelScope(shield=True):
                    await docker.close()
        finally:
            sink.close()

    async def _run(
        self,
        docker: aiodocker.Docker,
        action: ContainerAction,
        config: dict[str, Any],
        spec: ProcessSpec,
        sink: LogSink,
        on_started: StartedCallback | None,
        cancel: Cancel | None,
    ) -> ProcessResult:
        # the timeout counts from the start, creating the container included
        deadline = math.inf if spec.timeout is None else anyio.current_time() + spec.timeout
        try:
            container = await docker.containers.create(config)
        except _DOCKER_ERRORS as exc:
            error = create_error(exc, action.image, self.url)
            logger.error("%s: %s", sink.label, error)
            sink.note(error)
            return ProcessResult(exit_code=None, error=error)
        try:
            return await self._supervise(container, spec, sink, deadline, on_started, cancel)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
                try:
                    await container.delete(force=True)
                except _DOCKER_ERRORS as exc:
                    if not (isinstance(exc, DockerError) and exc.status == 404):
                        logger.warning(
                            "%s: cannot remove container %.12s: %s",
                            sink.label,
                            container.id,
                            _describe(exc),
                        )

    async def _supervise(
        self,
        container: DockerContainer,
        spec: ProcessSpec,
        sink: LogSink,
        deadline: float,
        on_started: StartedCallback | None,
        cancel: Cancel | None,
    ) -> ProcessResult:
        label = f"{sink.label} (container {container.id:.12})"
        grace = stop_grace(spec.kill_grace)
        outcome: str | None = None
        status = -1
        raised: Exception | None = None

        async def stop(why: str) -> None:
            # shielded: once begun, a stop runs to its end (bounded by the grace + cleanup)
            with anyio.CancelScope(shield=True), anyio.move_on_after(grace + _CLEANUP_TIMEOUT):
                sink.note(f"{why}: stopping the container (SIGTERM, SIGKILL after {grace}s)")
                logger.info("%s: %s", label, why)
                try:
                    await container.stop(t=grace)
                except DockerError as exc:
                    if exc.status != 304:  # 304: it had already stopped
                        logger.warning("%s: cannot stop it: %s", label, _describe(exc))
                        return
                except _DOCKER_ERRORS as exc:
                    logger.warning("%s: cannot stop it: %s", label, _describe(exc))
                    return
                try:
                    state = (await container.show())["State"]
                except _DOCKER_ERRORS:
                    return
                if state.get("ExitCode") == 137 and not state.get("OOMKilled"):
                    sink.note(f"still running {grace}s after SIGTERM: SIGKILL sent")

        try:
            stream = container.attach(stdout=True, stderr=True)
            await stream.__aenter__()  # attached before start: no output is missed
        except _DOCKER_ERRORS as exc:
            with anyio.CancelScope(shield=True):
                await stream.close()
            return self._fail(sink, label, f"cannot attach to the container ({_describe(exc)})")
        try:
            try:
                await container.start()
                pid = int((await container.show())["State"].get("Pid") or 0)
            except _DOCKER_ERRORS as exc:
                return self._fail(sink, label, f"cannot start the container ({_describe(exc)})")
            logger.debug("%s: started (pid %d on the Docker host)", label, pid)
            eof = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, stream, sink, eof)
                try:
                    if on_started is not None:
                        await on_started(pid, None)
                    with anyio.CancelScope(deadline=deadline) as timer:
                        cancelled, status = await _wait(container, cancel)
                        outcome = "cancel" if cancelled else None
                    if timer.cancelled_caught:
                        outcome = "timeout"
                    if outcome is not None and not (await container.show())["State"]["Running"]:
                        outcome = None  # it ended as the timeout or cancel came
                    if outcome == "timeout":
                        await stop(f"timed out after {spec.timeout:g}s")
                    elif outcome == "cancel":
                        await stop("cancelled")
                    if status < 0:
                        status = int((await container.wait()).get("StatusCode", -1))
                except _DOCKER_ERRORS as exc:
                    raised = _StartError(f"lost the container ({_describe(exc)})")
                    await stop("stopped: the Docker engine failed while the run was watched")
                except Exception as exc:  # from on_started: stop the container, then re-raise
                    raised = exc
                    await stop(f"stopped: {type(exc).__name__} in the daemon")
                except BaseException:  # the caller's scope was cancelled (daemon shutdown)
                    await stop("stopped: the daemon cancelled the run (shutting down?)")
                    raise
                finally:
                    with anyio.move_on_after(self.drain_timeout, shield=True) as draining:
                        await eof.wait()
                    if draining.cancelled_caught:
                        logger.warning(
                            "%s: its output stream did not end; no longer reading it", label
                        )
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await stream.close()
        if isinstance(raised, _StartError):
            return self._fail(sink, label, str(raised))
        if raised is not None:
            raise raised
        logger.debug("%s: exited with %s", label, status)
        killed = outcome is not None and status > 128
        return ProcessResult(
            exit_code=None if killed or status < 0 else status,
            signal=status - 128 if killed else None,
            timed_out=outcome == "timeout",
            cancelled=outcome == "cancel",
            error="the container's exit status is unknown" if status < 0 else None,
        )

    @staticmethod
    def _fail(sink: LogSink, label: str, error: str) -> ProcessResult:
        logger.error("%s: %s", label, error)
        sink.note(error)
        return ProcessResult(exit_code=None, error=error)


# --- crash recovery -----------------------------------------------------------------------


async def find_container_leftovers(
    instance: str, run_id: int, *, url: str | None = None
) -> list[str]:
    """Ids of the containers, running or not, labelled with this instance and run id.

    Raises ``DockerError`` (or an ``aiohttp``/``OSError``) when the engine cannot answer:
    recovery decides whether a run may be retried without knowing."""
    filters = {"label": [f"{LABEL_INSTANCE}={instance}", f"{LABEL_RUN_ID}={run_id}"]}
    async with aiodocker.Docker(url=docker_url(url)) as docker:
        found = await docker.containers.list(all=True, filters=filters)
    return [c.id for c in found]


async def remove_containers(
    ids: Iterable[str], grace: float, *, url: str | None = None
) -> list[str]:
    """Stop (SIGTERM, SIGKILL after ``grace``) and remove each container; gone ones are fine.

    Returns the ids that could not be removed (each logged)."""
    failed: list[str] = []
    async with aiodocker.Docker(url=docker_url(url)) as docker, anyio.create_task_group() as tg:

        async def remove(cid: str) -> None:
            container = docker.containers.container(cid)
            try:
                try:
                    await container.stop(t=stop_grace(grace))
                except DockerError as exc:
                    if exc.status not in (304, 404):  # 304: already stopped
                        raise
                await container.delete(force=True)
            except _DOCKER_ERRORS as exc:
                if isinstance(exc, DockerError) and exc.status == 404:
                    return
                logger.error("cannot remove leftover container %.12s: %s", cid, _describe(exc))
                failed.append(cid)

        for cid in ids:
            tg.start_soon(remove, cid)
    return failed


__all__ = [
    "DEFAULT_DOCKER_URL",
    "LABEL_INSTANCE",
    "LABEL_JOB_ID",
    "LABEL_RUN_ID",
    "DockerExecutor",
    "container_cmd",
    "container_config",
    "container_env",
    "container_labels",
    "create_error",
    "docker_url",
    "find_container_leftovers",
    "remove_containers",
    "stop_grace",
]
