"""The daemon's executor: one ``Executor`` in front of the concrete ones, choosing by the work.

Local processes go to the local executor; container attempts (``ProcessSpec.container``) and
the leftovers of container jobs go to the container executor, made (and aiodocker imported)
on first use, since most daemons run no containers. A new executor (a remote worker queue)
is one more branch here and in ``kind_of``; nothing outside this package asks which one
runs a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from jobd.config.model import Action, ContainerAction, DaemonConfig
from jobd.executors.abc import Cancel, Executor, ProcessResult, ProcessSpec, RunRef, StartedCallback

if TYPE_CHECKING:
    from jobd.executors.celery import CeleryExecutor

LOCAL, CONTAINER = "local", "container"


def kind_of(action: Action | None) -> str:
    """Which executor runs an action's work (and holds its leftovers)."""
    return CONTAINER if isinstance(action, ContainerAction) else LOCAL


class RoutingExecutor(Executor):
    """``local`` runs processes; ``container()`` makes the container executor when first needed.

    Leftover ids are returned as ``kind:id`` so that ``stop_leftovers`` hands each to its own."""

    def __init__(self, local: Executor, container: Callable[[], Executor]) -> None:
        self.local = local
        self._make_container = container
        self._container: Executor | None = None

    def _by_kind(self, kind: str) -> Executor:
        if kind == LOCAL:
            return self.local
        if self._container is None:
            self._container = self._make_container()
        return self._container

    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ProcessResult:
        ex = self.local if spec.container is None else self._by_kind(CONTAINER)
        return await ex.run(spec, on_started=on_started, cancel=cancel)

    async def find_leftovers(self, ref: RunRef) -> list[str]:
        # Processes always (any run journals a pid); containers only for a container job:
        # asking an engine this host may not have would cost every recovery a timeout.
        kinds = [LOCAL] if kind_of(ref.action) == LOCAL else [LOCAL, CONTAINER]
        out: list[str] = []
        for kind in kinds:
            out += [f"{kind}:{i}" for i in await self._by_kind(kind).find_leftovers(ref)]
        return out

    async def stop_leftovers(self, ids: Sequence[str], grace: float) -> list[str]:
        left: list[str] = []
        for kind in (LOCAL, CONTAINER):
            mine = [i.partition(":")[2] for i in ids if i.partition(":")[0] == kind]
            if mine:
                left += [
                    f"{kind}:{i}" for i in await self._by_kind(kind).stop_leftovers(mine, grace)
                ]
        return left

    async def aclose(self) -> None:
        await self.local.aclose()
        if self._container is not None:
            await self._container.aclose()


def default_executor(
    *,
    instance: str,
    docker_host: str | None,
    docker_network: str | None,
    local: Executor | None = None,
) -> RoutingExecutor:
    """Local processes here, containers through the Docker Engine at ``docker_host``."""
    from jobd.executors.local import LocalExecutor

    def container() -> Executor:
        from jobd.executors.docker import DockerExecutor

        return DockerExecutor(url=docker_host, network=docker_network, instance=instance)

    return RoutingExecutor(local or LocalExecutor(), container)


class LazyCelery:
    """The Celery executor of ``executor = "celery"`` jobs, made (and celery imported) on
    first use; ``aclose`` at the daemon's end."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.executor: CeleryExecutor | None = None

    def __call__(self) -> CeleryExecutor:
        if self.executor is None:
            from jobd.executors.celery import CeleryExecutor
            from jobd.remote.instance import instance_id

            if self.config.celery is None:
                raise RuntimeError('executor = "celery" without a [celery] table')
            self.executor = CeleryExecutor(
                self.config.celery, instance=instance_id(self.config.state_dir)
            )
        return self.executor

    async def aclose(self) -> None:
        if self.executor is not None:
            await self.executor.aclose()
